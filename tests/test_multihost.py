"""Multi-process training: 2 processes of 2 CPU devices train exactly as 1 process of 4.

`train.py` is launched as real processes joined by `jax.distributed` (gloo collectives on CPU),
as on a TPU pod or a multi-GPU cluster; the per-step losses of the two layouts, and the final
evaluation, must agree to float32 reduction-order rounding.
"""

import glob
import json
import os
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.util import tensor_util

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 3
CONFIG = (
    "--config=configs/synthetic/tiny.py:"
    f"tasks=semseg+depth,num_train_steps={STEPS},log_every_steps=1,eval_every_steps={STEPS},"
    f"checkpoint_every_steps={STEPS}"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _launch(workdir, data_dir, devices_per_process, distributed_flags=(), script="train.py"):
    env = dict(
        os.environ,
        JAX_PLATFORMS="cpu",
        XLA_FLAGS=f"--xla_force_host_platform_device_count={devices_per_process}",
        JAX_COMPILATION_CACHE_DIR=os.path.join(
            os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "mtnets", "jax_cache"
        ),
        TF_CPP_MIN_LOG_LEVEL="2",
    )
    command = [
        sys.executable,
        script,
        CONFIG,
        f"--config.dataset.data_dir={data_dir}",
        f"--workdir={workdir}",
        *distributed_flags,
    ]
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _finish(process) -> str:
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output[-4000:]
    return output


def _train_losses(workdir) -> dict[str, np.ndarray]:
    """Every `train/loss*` scalar that process 0 wrote to TensorBoard, by tag, in step order."""
    values: dict[str, dict[int, float]] = {}
    for path in glob.glob(os.path.join(workdir, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag.startswith("train/loss"):
                    scalar = float(tensor_util.make_ndarray(value.tensor))
                    values.setdefault(value.tag, {})[event.step] = scalar
    return {tag: np.array([by_step[s] for s in sorted(by_step)]) for tag, by_step in values.items()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tfds_data_dir):
    single = str(tmp_path_factory.mktemp("one_process_4_devices"))
    _finish(_launch(single, tfds_data_dir, 4))  # also builds the dataset when it is missing
    multi = str(tmp_path_factory.mktemp("two_processes_2_devices"))
    address = f"localhost:{_free_port()}"
    processes = [_launch(multi, tfds_data_dir, 2, _distributed(i, address)) for i in range(2)]
    outputs = [_finish(p) for p in processes]
    return single, multi, outputs


def _distributed(index: int, address: str) -> tuple[str, ...]:
    return (f"--coordinator_address={address}", "--num_processes=2", f"--process_id={index}")


def test_each_process_saw_its_share_of_the_devices(runs):
    _, _, outputs = runs
    for index, output in enumerate(outputs):
        assert f"JAX process {index} of 2" in output
        assert "on 4 device(s), global batch 8" in output


def test_two_processes_train_as_one_process_with_the_same_devices(runs):
    single, multi, _ = runs
    expected, actual = _train_losses(single), _train_losses(multi)
    assert "train/loss" in expected and len(expected["train/loss"]) == STEPS
    assert expected.keys() == actual.keys()
    for tag in expected:
        np.testing.assert_allclose(actual[tag], expected[tag], rtol=2e-5, err_msg=tag)
    # The losses change from step to step, so equal curves mean equal batches and updates.
    assert len(set(expected["train/loss"].tolist())) == STEPS


def test_two_processes_evaluate_a_checkpoint_as_one_process(runs, tmp_path, tfds_data_dir):
    """eval.py in 2 processes (each evaluating its half of the split) on the 1-process run's
    checkpoint gives that run's results. (The two runs' own final evaluations differ by ~1e-4:
    Adam turns the 1e-7 rounding differences of near-zero gradients into larger steps.)"""
    single, multi, _ = runs
    assert os.path.isdir(os.path.join(multi, "checkpoints", str(STEPS)))
    copy = str(tmp_path / "evaluated_by_two_processes")
    shutil.copytree(single, copy)
    os.remove(os.path.join(copy, f"eval_{STEPS}.json"))
    address = f"localhost:{_free_port()}"
    processes = [
        _launch(copy, tfds_data_dir, 2, _distributed(i, address), script="eval.py")
        for i in range(2)
    ]
    for process in processes:
        _finish(process)
    with open(os.path.join(single, f"eval_{STEPS}.json")) as f:
        expected = json.load(f)
    with open(os.path.join(copy, f"eval_{STEPS}.json")) as f:
        actual = json.load(f)
    assert expected.keys() == actual.keys()
    for key in expected:
        np.testing.assert_allclose(actual[key], expected[key], rtol=1e-5, atol=1e-7, err_msg=key)


def test_a_process_id_outside_the_process_count_is_a_clear_error():
    from mtnets import distributed

    with pytest.raises(ValueError, match="--process_id=2 must be in 0 .. 1"):
        distributed.initialize("localhost:1", 2, 2)
