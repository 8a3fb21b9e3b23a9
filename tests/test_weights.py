"""ImageNet weight files: resolving `model.pretrained`, and the download code against a real
HTTP server on the loopback address (hash check, partial download and resume, retries, errors),
with every error message checked."""

import hashlib
import http.server
import os
import re
import threading

import numpy as np
import pytest

from mtnets import weights
from tests.experiment_configs import experiment_config

PAYLOAD = np.random.default_rng(0).integers(0, 256, 3 * 2**20 + 17, np.uint8).tobytes()
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()


class Server:
    """A threaded `http.server` serving `PAYLOAD` at /file with HTTP Range support. `plan` is
    a list of behaviours for the next requests: "ok", "cut" (headers for the whole rest, half
    of it sent, connection closed), "no-range" (a 200 with the whole file whatever the Range),
    or an HTTP status code to answer with."""

    def __init__(self):
        self.plan: list = []
        self.ranges: list = []  # the Range header of each request (None: none)
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.ranges.append(self.headers.get("Range"))
                what = server.plan.pop(0) if server.plan else "ok"
                if isinstance(what, int):
                    self.send_error(what)
                    return
                start = 0
                if self.headers.get("Range") and what != "no-range":
                    start = int(self.headers["Range"].split("=")[1].rstrip("-"))
                    if start >= len(PAYLOAD):
                        self.send_error(416)
                        return
                body = PAYLOAD[start:]
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if what == "cut" else body)
                if what == "cut":
                    self.wfile.flush()
                    self.close_connection = True

            def log_message(self, *args):  # keep the test output quiet
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/file"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def download(server, tmp_path, prefix=DIGEST[:8], **kwargs):
    kwargs.setdefault("retry_wait", 0)
    return weights.download(server.url, str(tmp_path / "w.pth"), prefix, **kwargs)


def test_download_checks_the_hash_and_leaves_only_the_whole_file(server, tmp_path):
    path = download(server, tmp_path)
    assert open(path, "rb").read() == PAYLOAD
    assert sorted(os.listdir(tmp_path)) == ["w.pth"]
    assert server.ranges == [None]


def test_a_wrong_hash_deletes_the_file_and_says_both_digests(server, tmp_path):
    with pytest.raises(weights.DownloadError) as error:
        download(server, tmp_path, prefix="00000000")
    message = str(error.value)
    assert server.url in message and DIGEST in message
    assert "does not start with 00000000" in message and "was deleted" in message
    assert os.listdir(tmp_path) == []


def test_a_broken_connection_is_resumed_with_a_range_request(server, tmp_path):
    server.plan = ["cut", "ok"]
    path = download(server, tmp_path)
    assert open(path, "rb").read() == PAYLOAD
    half = len(PAYLOAD) // 2
    assert server.ranges == [None, f"bytes={half}-"]


def test_a_partial_file_from_an_earlier_run_is_resumed(server, tmp_path):
    (tmp_path / "w.pth.part").write_bytes(PAYLOAD[:1000])
    path = download(server, tmp_path)
    assert open(path, "rb").read() == PAYLOAD and server.ranges == ["bytes=1000-"]


def test_a_complete_partial_file_is_checked_without_downloading_again(server, tmp_path):
    (tmp_path / "w.pth.part").write_bytes(PAYLOAD)
    path = download(server, tmp_path)  # the server answers 416 to bytes=<size>-
    assert open(path, "rb").read() == PAYLOAD


def test_a_server_that_ignores_the_range_restarts_the_file(server, tmp_path):
    (tmp_path / "w.pth.part").write_bytes(b"x" * 1000)  # not even the right bytes
    server.plan = ["no-range"]
    path = download(server, tmp_path)
    assert open(path, "rb").read() == PAYLOAD


def test_server_errors_are_retried(server, tmp_path):
    server.plan = [503, 500, "ok"]
    path = download(server, tmp_path, attempts=3)
    assert open(path, "rb").read() == PAYLOAD and len(server.ranges) == 3


def test_persistent_server_errors_end_with_a_message_that_keeps_the_part(server, tmp_path):
    server.plan = ["cut", 500, 500]
    with pytest.raises(weights.DownloadError) as error:
        download(server, tmp_path, attempts=3)
    part = str(tmp_path / "w.pth.part")
    assert str(error.value) == (
        f"Could not download {server.url}: HTTP 500 Internal Server Error. What arrived is kept "
        f"in {part}, and the next `python -m mtnets.weights fetch` resumes it; or download the "
        f"file yourself and put it at {tmp_path / 'w.pth'}."
    )
    assert os.path.getsize(part) == len(PAYLOAD) // 2


def test_a_missing_file_is_not_retried(server, tmp_path):
    server.plan = [404]
    with pytest.raises(weights.DownloadError, match="HTTP 404 Not Found"):
        download(server, tmp_path, attempts=3)
    assert len(server.ranges) == 1


def test_an_unreachable_server_names_the_cause(tmp_path):
    with pytest.raises(weights.DownloadError) as error:
        weights.download("http://127.0.0.1:9/x", str(tmp_path / "x"), None, retry_wait=0)
    assert re.fullmatch(
        r"Could not download http://127.0.0.1:9/x: URLError: .*refused.*\. Try again later, or "
        rf"download the file yourself and put it at {re.escape(str(tmp_path / 'x'))}\.",
        str(error.value),
    )


def test_fetch_downloads_a_torchvision_file_into_the_weights_directory(
    server, tmp_path, monkeypatch
):
    spec = weights.WeightFile(f"resnet18-{DIGEST[:8]}.pth", server.url, DIGEST[:8])
    monkeypatch.setitem(weights.FILES, "resnet18", spec)
    monkeypatch.setenv(weights.ENV, str(tmp_path / "w"))
    path = weights.fetch("resnet18")
    assert path == str(tmp_path / "w" / spec.name) == weights.imagenet_path("resnet18")
    assert weights.fetch("resnet18") == path and len(server.ranges) == 1  # already there


def test_fetch_of_an_hrnet_says_where_to_get_it_and_where_to_put_it(tmp_path):
    with pytest.raises(weights.DownloadError) as error:
        weights.fetch("hrnet_w18_small_v2", str(tmp_path))
    message = str(error.value)
    assert "hrnet_w18_small_model_v2.pth" in message and "no stable download address" in message
    assert "https://github.com/HRNet/HRNet-Image-Classification" in message
    assert "HRNet-W18-C-Small-v2" in message
    assert f"put it at {tmp_path / 'hrnet_w18_small_model_v2.pth'}; or save timm's " in message
    assert f"`hrnet_w18_small_v2` weights as {tmp_path / 'hrnet_w18_small_model_v2.npz'}" in message


# ---------------------------------------------------------------------------------------------
# Resolving config.model.pretrained.
def config(pretrained, backbone="resnet50", **singles):
    fields = {"model.pretrained": pretrained, "model.backbone": backbone}
    fields.update({f"model.single_task_checkpoints.{t}": path for t, path in singles.items()})
    return experiment_config(fields)


def test_a_missing_imagenet_file_names_file_directory_fetch_command_and_opt_out(
    tmp_path, monkeypatch
):
    monkeypatch.setenv(weights.ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError) as error:
        weights.pretrained_path(config("imagenet"))
    assert str(error.value) == (
        "config.model.pretrained='imagenet' needs the ImageNet file resnet50-0676ba61.pth (or "
        f"resnet50-0676ba61.npz) of backbone 'resnet50' in the weights directory {tmp_path} "
        "($MTNETS_WEIGHTS, default ~/.cache/mtnets/weights), and it is not there. Fetch it with "
        "`python -m mtnets.weights fetch resnet50` (from "
        "https://download.pytorch.org/models/resnet50-0676ba61.pth). Or train from scratch "
        "with model.pretrained=none."
    )


def test_the_npz_is_preferred_and_none_means_from_scratch(tmp_path, monkeypatch):
    monkeypatch.setenv(weights.ENV, str(tmp_path))
    (tmp_path / "resnet50-0676ba61.pth").write_bytes(b"")
    assert weights.pretrained_path(config("imagenet")) == str(tmp_path / "resnet50-0676ba61.pth")
    (tmp_path / "resnet50-0676ba61.npz").write_bytes(b"")
    assert weights.pretrained_path(config("imagenet")) == str(tmp_path / "resnet50-0676ba61.npz")
    assert weights.weight_source(config("imagenet")).startswith("ImageNet file ")
    for value in (None, "none", "None"):
        assert weights.pretrained_path(config(value)) is None
        assert weights.weight_source(config(value)) == "from scratch"


def test_the_default_directory_and_other_errors(tmp_path, monkeypatch):
    monkeypatch.delenv(weights.ENV, raising=False)
    assert weights.weights_dir() == os.path.expanduser("~/.cache/mtnets/weights")
    with pytest.raises(FileNotFoundError, match=r"no file '/no/such.pth'\. Give an existing"):
        weights.pretrained_path(config("/no/such.pth"))
    with pytest.raises(ValueError, match="backbone 'hrnet_tiny' has no ImageNet file"):
        weights.pretrained_path(config("imagenet", "hrnet_tiny"))
    # Single-task checkpoints replace every task network: they are the source, no file needed.
    assert weights.weight_source(config("imagenet", semseg="/a", depth="/b")) == (
        "single-task checkpoints depth=/b, semseg=/a"
    )


def test_command_line_list_and_fetch(tmp_path, capsys):
    assert weights.main(["--dir", str(tmp_path), "list"]) == 0
    out = capsys.readouterr().out
    assert "resnet18-f37072fd.pth" in out and "missing" in out
    assert weights.main(["--dir", str(tmp_path), "fetch", "hrnet_w48"]) == 1
    assert "hrnetv2_w48_imagenet_pretrained.pth" in capsys.readouterr().err


def test_without_torch_the_fetch_says_how_to_get_an_npz(server, tmp_path, monkeypatch, capsys):
    spec = weights.WeightFile(f"resnet18-{DIGEST[:8]}.pth", server.url, DIGEST[:8])
    monkeypatch.setitem(weights.FILES, "resnet18", spec)
    monkeypatch.setattr(weights, "torch_available", lambda: False)
    assert weights.main(["--dir", str(tmp_path), "fetch", "resnet18"]) == 0
    err = capsys.readouterr().err
    assert f"python -m mtnets.weights convert {tmp_path / spec.name}" in err
    assert f"copy {tmp_path / spec.stem}.npz into {tmp_path}" in err


def test_convert_without_torch_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "torch", None)  # import torch fails
    path = tmp_path / "resnet18-f37072fd.pth"
    path.write_bytes(b"not read")
    with pytest.raises(ImportError) as error:
        weights.convert(str(path))
    assert str(error.value) == (
        f"Reading {str(path)!r} needs PyTorch: install torch (CPU is enough), or run "
        "`python -m mtnets.weights convert FILE` on a machine that has it and use the .npz it "
        "writes."
    )
