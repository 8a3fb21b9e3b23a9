"""ImageNet weight files: where they live, how to fetch them, and where a run's weights come from.

`config.model.pretrained` is one of:
- None or "none": the backbone starts from scratch;
- "imagenet": the backbone's ImageNet file in the weights directory (`$MTNETS_WEIGHTS`, default
  `~/.cache/mtnets/weights`), as `<stem>.npz` (read with NumPy) or the original `.pth` (read
  with torch);
- any other string: the path of a checkpoint file.

The torchvision ResNets have stable addresses: `python -m mtnets.weights fetch resnet18 resnet50`
downloads them (resuming a partial file), checks the SHA-256 prefix that torchvision puts in each
file name, and, when torch is installed, writes the `.npz` beside the `.pth` so that later runs
need no torch. The HRNet files have no stable address: the command says where to get them and
where to put them. No module of this file imports JAX, so the command starts fast.

Usage:
    python -m mtnets.weights list                     # every known file and whether it is there
    python -m mtnets.weights fetch resnet18 resnet50  # download, check, convert (with torch)
    python -m mtnets.weights convert FILE.pth         # FILE.npz beside it (needs torch)
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import http.client
import os
import sys
import time
import urllib.error
import urllib.request

from absl import logging

from mtnets.progress import Progress

ENV = "MTNETS_WEIGHTS"
DEFAULT_DIR = os.path.join("~", ".cache", "mtnets", "weights")
FETCH = "python -m mtnets.weights fetch"
OPT_OUT = "model.pretrained=none"
HRNET_SOURCE = "https://github.com/HRNet/HRNet-Image-Classification"
_CHUNK = 1 << 20
_MB = 1_000_000


@dataclasses.dataclass(frozen=True)
class WeightFile:
    """The ImageNet file of one backbone: its name and, when it has one, a stable address."""

    name: str  # the published file name
    url: str | None = None  # None: no stable address
    sha256_prefix: str | None = None  # the digest's first hex digits, as in torchvision names
    row: str = ""  # HRNets: the row of the HRNet-Image-Classification table that links the file
    timm: str = ""  # HRNets: timm's name of the same weights

    @property
    def stem(self) -> str:
        return os.path.splitext(self.name)[0]


def _torchvision(name: str, prefix: str) -> WeightFile:
    file = f"{name}-{prefix}.pth"
    return WeightFile(file, f"https://download.pytorch.org/models/{file}", prefix)


def _hrnet(file: str, row: str, timm: str) -> WeightFile:
    return WeightFile(file, row=row, timm=timm)


# The torchvision ImageNet1K_V1 weights (what `torchvision.models.resnetX(pretrained=True)`
# loads, the reference's start) and the HRNet-Image-Classification files the MTL reference reads.
FILES = {
    "resnet18": _torchvision("resnet18", "f37072fd"),
    "resnet34": _torchvision("resnet34", "b627a593"),
    "resnet50": _torchvision("resnet50", "0676ba61"),
    "resnet101": _torchvision("resnet101", "63fe2227"),
    "hrnet_w18_small_v2": _hrnet(
        "hrnet_w18_small_model_v2.pth", "HRNet-W18-C-Small-v2", "hrnet_w18_small_v2"
    ),
    "hrnet_w18": _hrnet("hrnetv2_w18_imagenet_pretrained.pth", "HRNet-W18-C", "hrnet_w18"),
    "hrnet_w48": _hrnet("hrnetv2_w48_imagenet_pretrained.pth", "HRNet-W48-C", "hrnet_w48"),
}


def weights_dir() -> str:
    """`$MTNETS_WEIGHTS`, else `~/.cache/mtnets/weights` (expanded)."""
    return os.path.expanduser(os.environ.get(ENV) or DEFAULT_DIR)


def weight_file(backbone: str) -> WeightFile:
    if backbone not in FILES:
        raise ValueError(
            f"config.model.pretrained='imagenet': backbone {backbone!r} has no ImageNet file; "
            f"the ones that do: {', '.join(FILES)}. Set {OPT_OUT} to train it from scratch."
        )
    return FILES[backbone]


def imagenet_path(backbone: str, directory: str | None = None) -> str:
    """The ImageNet file of `backbone` in the weights directory: `<stem>.npz` if present, else
    the `.pth`; a FileNotFoundError that says how to get it when neither is there."""
    directory = directory or weights_dir()
    spec = weight_file(backbone)
    for name in (f"{spec.stem}.npz", spec.name):
        path = os.path.join(directory, name)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(missing_message(backbone, directory))


def missing_message(backbone: str, directory: str) -> str:
    spec = FILES[backbone]
    where = os.path.join(directory, spec.name)
    if spec.url:
        how = f"Fetch it with `{FETCH} {backbone}` (from {spec.url})"
    else:
        how = (
            f"It has no stable download address: {where_to_get(spec)}, and put it at {where}; "
            f"or save timm's `{spec.timm}` weights as {os.path.join(directory, spec.stem)}.npz "
            "(np.savez(path, **{k: v.numpy() for k, v in model.state_dict().items()}))"
        )
    return (
        f"config.model.pretrained='imagenet' needs the ImageNet file {spec.name} (or "
        f"{spec.stem}.npz) of backbone {backbone!r} in the weights directory {directory} "
        f"(${ENV}, default {DEFAULT_DIR}), and it is not there. {how}. Or train from scratch "
        f"with {OPT_OUT}."
    )


def where_to_get(spec: WeightFile) -> str:
    return f"download it from the '{spec.row}' row of the ImageNet table of {HRNET_SOURCE}"


def pretrained_path(config) -> str | None:
    """The ImageNet checkpoint `config.model.pretrained` stands for (None: from scratch).
    Raises before anything is built when the file is missing."""
    value = config.model.pretrained
    if value is None or str(value).lower() == "none":
        return None
    if value == "imagenet":
        return imagenet_path(config.model.backbone)
    if not os.path.exists(value):
        raise FileNotFoundError(
            f"config.model.pretrained: no file {value!r}. Give an existing checkpoint, "
            f"'imagenet' (the weights directory {weights_dir()}), or {OPT_OUT}."
        )
    return value


def weight_source(config) -> str:
    """Where the run's weights start, in words, checking that the files exist: single-task
    checkpoints (cross-stitch / NDDR-CNN; they replace every task's whole network, so they take
    precedence over an ImageNet start), an ImageNet file, or "from scratch"."""
    singles = {t: p for t, p in config.model.single_task_checkpoints.items() if p}
    if singles:
        return "single-task checkpoints " + ", ".join(f"{t}={p}" for t, p in singles.items())
    path = pretrained_path(config)
    return f"ImageNet file {path}" if path else "from scratch"


# ---------------------------------------------------------------------------------------------
# Downloading.
class DownloadError(RuntimeError):
    pass


def fetch(backbone: str, directory: str | None = None, *, attempts: int = 3) -> str:
    """Downloads the ImageNet file of `backbone` into `directory` (a no-op when it is there)
    and returns its path. HRNets: a DownloadError that says where to get the file."""
    directory = directory or weights_dir()
    spec = weight_file(backbone)
    target = os.path.join(directory, spec.name)
    if os.path.exists(target):
        logging.info("%s is already in %s.", spec.name, directory)
        return target
    if not spec.url:
        raise DownloadError(missing_message(backbone, directory))
    os.makedirs(directory, exist_ok=True)
    return download(spec.url, target, spec.sha256_prefix, attempts=attempts)


def download(
    url: str,
    target: str,
    sha256_prefix: str | None,
    *,
    attempts: int = 3,
    timeout: float = 60,
    retry_wait: float = 2.0,
) -> str:
    """Downloads `url` to `target` through `<target>.part`: a partial file is resumed with an
    HTTP Range request, a broken connection or a server error (5xx) is retried up to `attempts`
    times, and the SHA-256 prefix is checked. The file appears at `target` only once it is
    whole and checked."""
    part = target + ".part"
    for attempt in range(1, attempts + 1):
        retry = True
        try:
            _transfer(url, part, timeout)
            break
        except urllib.error.HTTPError as error:
            if error.code == 416:  # Range not satisfiable: the part already holds everything
                break
            problem = f"HTTP {error.code} {error.reason}"
            retry = error.code >= 500  # a 4xx is a wrong address: asking again will not help
        except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
            problem = f"{type(error).__name__}: {getattr(error, 'reason', error)}"
        logging.warning("Download of %s, attempt %d of %d: %s", url, attempt, attempts, problem)
        if not retry or attempt == attempts:
            kept = (
                f"What arrived is kept in {part}, and the next `{FETCH}` resumes it; or "
                if os.path.exists(part) and os.path.getsize(part)
                else "Try again later, or "
            )
            raise DownloadError(
                f"Could not download {url}: {problem}. {kept}download the file yourself and put "
                f"it at {target}."
            )
        time.sleep(retry_wait * attempt)
    _check_hash(part, sha256_prefix, url)
    os.replace(part, target)
    logging.info("Saved %s.", target)
    return target


def _transfer(url: str, part: str, timeout: float) -> None:
    """Appends the rest of `url` to `part` (a Range from its size on)."""
    have = os.path.getsize(part) if os.path.exists(part) else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        if have and response.status != 206:  # the server ignored the Range: start again
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        progress = Progress(
            f"Downloading {os.path.basename(url)}",
            None if total is None else -(-(total - have) // _MB),
            unit="MB",
            every_secs=5.0,
        ).start()
        received = 0
        with open(part, "ab" if have else "wb") as out:
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                received += len(chunk)
                progress(received // _MB)
        progress(-(-received // _MB))  # the last line, with the whole transfer
    size = os.path.getsize(part)
    if total is not None and size < total:
        raise http.client.IncompleteRead(b"", total - size)


def _check_hash(part: str, prefix: str | None, url: str) -> None:
    if not prefix:
        return
    digest = sha256(part)
    if not digest.startswith(prefix):
        os.remove(part)
        raise DownloadError(
            f"{url}: the SHA-256 of the downloaded file is {digest}, which does not start with "
            f"{prefix} as the file name says; the file was deleted. Run the fetch again, or "
            "download it yourself and compare."
        )


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# Converting.
def convert(path: str) -> str:
    """Writes `<path without suffix>.npz` from a torch checkpoint (torch must be installed),
    so that runs read it with NumPy alone."""
    import numpy as np

    from mtnets.porting.imagenet import read_checkpoint

    state = read_checkpoint(path)
    out = os.path.splitext(path)[0] + ".npz"
    np.savez(out, **state)
    logging.info("Wrote %s (%d arrays).", out, len(state))
    return out


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


NO_TORCH = (
    "torch is not installed, so {path} stays a .pth, which runs can read only with torch. "
    "Either install torch (CPU is enough: pip install torch --index-url "
    "https://download.pytorch.org/whl/cpu) and run `python -m mtnets.weights convert {path}`, or "
    "convert it on any machine that has torch and copy {npz} into {directory}."
)


# ---------------------------------------------------------------------------------------------
# Command line.
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mtnets.weights", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--dir", default=None, help=f"weights directory (default ${ENV}, else {DEFAULT_DIR})"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="the known files and whether each is there")
    get = commands.add_parser("fetch", help="download, check and convert ImageNet files")
    get.add_argument("backbones", nargs="+", choices=list(FILES))
    to_npz = commands.add_parser("convert", help="write FILE.npz from a torch FILE (needs torch)")
    to_npz.add_argument("file")
    args = parser.parse_args(argv)
    logging.set_verbosity(logging.INFO)
    directory = os.path.expanduser(args.dir) if args.dir else weights_dir()
    if args.command == "list":
        for backbone, spec in FILES.items():
            try:
                state = imagenet_path(backbone, directory)
            except FileNotFoundError:
                state = "missing" + ("" if spec.url else f" ({where_to_get(spec)})")
            print(f"{backbone:20s} {spec.name:40s} {state}")
        return 0
    if args.command == "convert":
        print(convert(args.file))
        return 0
    failed = False
    for backbone in args.backbones:
        try:
            path = fetch(backbone, directory)
        except DownloadError as error:
            print(f"{backbone}: {error}", file=sys.stderr)
            failed = True
            continue
        npz = os.path.join(directory, FILES[backbone].stem + ".npz")
        if os.path.exists(npz):
            continue
        if torch_available():
            convert(path)
        else:
            print(NO_TORCH.format(path=path, npz=npz, directory=directory), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
