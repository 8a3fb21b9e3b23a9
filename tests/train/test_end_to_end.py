"""Train, checkpoint, resume and evaluate on the tiny synthetic dataset, as a user would."""

import json
import os
import shutil
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest

from configs.synthetic.tiny import get_config
from mtnets.data.pipeline import InputPipeline
from mtnets.train import checkpointing, loop

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def tiny_config(data_dir, **overrides):
    config = get_config()
    config.dataset.data_dir = data_dir
    for key, value in overrides.items():
        config[key] = value
    return config


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tfds_data_dir, straight_run):
    """An uninterrupted 6-step run, and the same run as if killed after its step-3 checkpoint
    (its workdir copied without checkpoint 6) and then restarted."""
    straight, straight_state = straight_run
    resumed = str(tmp_path_factory.mktemp("resumed") / "workdir")
    shutil.copytree(straight, resumed)
    shutil.rmtree(os.path.join(resumed, "checkpoints", "6"))
    os.remove(os.path.join(resumed, "eval_6.json"))
    first_steps = checkpointing.Checkpointer(resumed, read_only=True).all_steps()
    resumed_state = loop.train_and_evaluate(tiny_config(tfds_data_dir), resumed)
    return dict(
        resumed=resumed,
        first_steps=first_steps,
        resumed_state=resumed_state,
        straight=straight,
        straight_state=straight_state,
    )


def test_workdir_holds_checkpoints_summaries_results_and_pictures(trained):
    workdir = trained["straight"]
    assert checkpointing.Checkpointer(workdir, read_only=True).all_steps() == [3, 6]
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(workdir))
    for step in (3, 6):
        with open(os.path.join(workdir, f"eval_{step}.json")) as f:
            results = json.load(f)
        assert results["step"] == step
        for key in (
            "semseg/mIoU",
            "depth/rmse",
            "normals/mean",
            "sal/maxF",
            "edge/loss",
            "human_parts/mIoU",
        ):
            assert np.isfinite(results[key]), key
        assert 0.0 <= results["semseg/mIoU"] <= 1.0
        assert os.path.getsize(os.path.join(workdir, f"predictions_{step}.png")) > 0


def test_restart_resumes_at_the_saved_step_and_matches_an_uninterrupted_run(trained):
    assert trained["first_steps"] == [3]
    assert os.path.exists(os.path.join(trained["resumed"], "eval_6.json"))
    resumed, straight = trained["resumed_state"], trained["straight_state"]
    assert int(resumed.step) == int(straight.step) == 6
    # The same program on the same data and keys: bit for bit the same state, every field.
    leaves = zip(jax.tree.leaves(resumed), jax.tree.leaves(straight), strict=True)
    for a, b in leaves:
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_eval_py_evaluates_a_saved_checkpoint(trained, tfds_data_dir):
    workdir = trained["resumed"]
    os.remove(os.path.join(workdir, "eval_3.json"))
    command = [
        sys.executable,
        "eval.py",
        "--config=configs/synthetic/tiny.py",
        f"--config.dataset.data_dir={tfds_data_dir}",
        f"--workdir={workdir}",
        "--step=3",
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(os.path.join(workdir, "eval_3.json")) as f:
        results = json.load(f)
    assert results["step"] == 3 and "semseg/mIoU" in results


def test_eval_without_checkpoint_is_a_clear_error(tmp_path, tfds_data_dir):
    with pytest.raises(FileNotFoundError, match="No checkpoint"):
        loop.evaluate_checkpoint(tiny_config(tfds_data_dir), str(tmp_path))


def test_eval_of_a_missing_step_is_a_clear_error(trained, tfds_data_dir):
    with pytest.raises(FileNotFoundError, match="step 4"):
        loop.evaluate_checkpoint(tiny_config(tfds_data_dir), trained["straight"], step=4)


def test_sigterm_saves_the_current_step_and_a_restart_continues(
    tmp_path, tfds_data_dir, monkeypatch
):
    """Preemption: SIGTERM after step 2 (no checkpoint is due there) saves step 2 and stops."""
    original = InputPipeline.train_batches

    def preempted_during_step_two(self, start_step=0):
        for count, batch in enumerate(original(self, start_step)):
            if count == 1:
                os.kill(os.getpid(), signal.SIGTERM)
            yield batch

    monkeypatch.setattr(InputPipeline, "train_batches", preempted_during_step_two)
    workdir = str(tmp_path)
    state = loop.train_and_evaluate(tiny_config(tfds_data_dir), workdir)
    assert int(state.step) == 2  # the step in flight when the signal came completes
    assert checkpointing.Checkpointer(workdir, read_only=True).all_steps() == [2]
    monkeypatch.setattr(InputPipeline, "train_batches", original)
    state = loop.train_and_evaluate(tiny_config(tfds_data_dir), workdir)
    assert int(state.step) == 6
    assert checkpointing.Checkpointer(workdir, read_only=True).all_steps() == [2, 3, 6]
