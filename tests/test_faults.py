"""Reliability: every way a run can be interrupted or fed bad input, on the tiny dataset.

Each scenario checks what is guaranteed (docs/training.md, "What a run guarantees"): an interrupted
run
resumes to exactly the state of an uninterrupted one; nothing written is lost or deleted
silently; and bad input stops with an error that names the step, task, file or field.
"""

import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from configs.synthetic.tiny import get_config
from mtnets.data.pipeline import InputPipeline
from mtnets.train import checkpointing, loop

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_config(data_dir, arg=None):
    config = get_config(arg)
    config.dataset.data_dir = data_dir
    return config


def assert_same_state(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def steps(workdir):
    return checkpointing.Checkpointer(workdir, read_only=True).all_steps()


def patch_batches(monkeypatch, at_batch, action):
    """Runs `action(batch)` on the `at_batch`-th training batch of the next run."""
    original = InputPipeline.train_batches

    def patched(self, start_step=0):
        for count, batch in enumerate(original(self, start_step)):
            yield action(batch) if count == at_batch else batch

    monkeypatch.setattr(InputPipeline, "train_batches", patched)


# ------------------------------------------------------------------------------------------
# 1. kill -9, then restart.
KILLED_RUN = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, {root!r})
    from configs.synthetic.tiny import get_config
    from mtnets.data.pipeline import InputPipeline
    from mtnets.train import loop

    original = InputPipeline.train_batches

    def killed_during_step_five(self, start_step=0):
        for count, batch in enumerate(original(self, start_step)):
            if count == 4:
                os.kill(os.getpid(), signal.SIGKILL)
            yield batch

    InputPipeline.train_batches = killed_during_step_five
    config = get_config()
    config.dataset.data_dir = {data_dir!r}
    loop.train_and_evaluate(config, {workdir!r})
    """
)


def test_kill_9_then_restart_ends_exactly_as_an_uninterrupted_run(
    tmp_path, tfds_data_dir, straight_run
):
    workdir = str(tmp_path / "run")
    script = KILLED_RUN.format(root=ROOT, data_dir=tfds_data_dir, workdir=workdir)
    killed = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, timeout=600
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    assert max(steps(workdir), default=0) < 6  # it really died before the end

    state = loop.train_and_evaluate(tiny_config(tfds_data_dir), workdir)
    straight_dir, straight_state = straight_run
    assert_same_state(state, straight_state)  # params, optimizer, weighting state, key, step
    with (
        open(os.path.join(workdir, "eval_6.json")) as a,
        open(os.path.join(straight_dir, "eval_6.json")) as b,
    ):
        assert a.read() == b.read()


# ------------------------------------------------------------------------------------------
# 2. SIGTERM (preemption): see tests/train/test_end_to_end.py
#    ::test_sigterm_saves_the_current_step_and_a_restart_continues.


# ------------------------------------------------------------------------------------------
# 2b. Ctrl-C (SIGINT) on train.py: the first saves the current step and stops cleanly, a second
#     stops at once without saving.
INTERRUPTED_TRAIN_PY = textwrap.dedent(
    """
    import os, runpy, signal, sys
    sys.path.insert(0, {root!r})
    from mtnets.data.pipeline import InputPipeline

    original = InputPipeline.train_batches

    def interrupted(self, start_step=0):
        for count, batch in enumerate(original(self, start_step)):
            if count == {at_batch}:
                for _ in range({presses}):
                    os.kill(os.getpid(), signal.SIGINT)
            yield batch

    InputPipeline.train_batches = interrupted
    sys.argv = [
        "train.py",
        "--config=configs/synthetic/tiny.py",
        "--config.dataset.data_dir={data_dir}",
        "--workdir={workdir}",
    ]
    runpy.run_path(os.path.join({root!r}, "train.py"), run_name="__main__")
    """
)


def run_interrupted_train_py(data_dir, workdir, at_batch, presses):
    script = INTERRUPTED_TRAIN_PY.format(
        root=ROOT, data_dir=data_dir, workdir=workdir, at_batch=at_batch, presses=presses
    )
    return subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_ctrl_c_saves_the_current_step_and_a_restart_ends_as_an_uninterrupted_run(
    tmp_path, tfds_data_dir, straight_run
):
    workdir = str(tmp_path / "run")
    interrupted = run_interrupted_train_py(tfds_data_dir, workdir, at_batch=1, presses=1)
    assert interrupted.returncode == 0, interrupted.stderr[-3000:]
    assert "Ctrl-C (SIGINT) received: saving a checkpoint" in interrupted.stderr
    assert steps(workdir) == [2]  # step 2 was in flight; no checkpoint was due there

    state = loop.train_and_evaluate(tiny_config(tfds_data_dir), workdir)
    straight_dir, straight_state = straight_run
    assert_same_state(state, straight_state)
    with (
        open(os.path.join(workdir, "eval_6.json")) as a,
        open(os.path.join(straight_dir, "eval_6.json")) as b,
    ):
        assert a.read() == b.read()


def test_second_ctrl_c_stops_at_once_and_keeps_what_is_on_disk_readable(
    tmp_path, tfds_data_dir, monkeypatch, caplog
):
    """In-process (the same handlers as train.py, without a second compilation): two Ctrl-C
    during step 5 raise KeyboardInterrupt (train.py exits with 130) without saving step 5."""

    def press_twice(batch):
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
        return batch

    patch_batches(monkeypatch, 4, press_twice)  # the batch of step 5
    workdir = str(tmp_path / "run")
    with caplog.at_level(logging.WARNING), pytest.raises(KeyboardInterrupt):
        loop.train_and_evaluate(tiny_config(tfds_data_dir), workdir)
    assert any("Second Ctrl-C" in r.getMessage() for r in caplog.records)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored
    assert steps(workdir) == [3]  # step 5 was in flight: not saved
    restored = checkpointing.restore_variables(workdir, 3)
    assert jax.tree.leaves(restored["params"])  # checkpoint 3 reads back whole


# ------------------------------------------------------------------------------------------
# 3. A corrupted latest checkpoint.
def corrupt_arrays(checkpoint_dir):
    """Overwrites the array data files of a checkpoint with garbage of the same size."""
    corrupted = 0
    for folder, _, files in os.walk(os.path.join(checkpoint_dir, "default")):
        if os.path.basename(folder) == "d":
            for name in files:
                path = os.path.join(folder, name)
                size = os.path.getsize(path)
                with open(path, "wb") as f:
                    f.write(b"\x5a" * size)
                corrupted += 1
    assert corrupted


def test_corrupted_latest_checkpoint_falls_back_and_is_kept(
    tmp_path, tfds_data_dir, straight_run, caplog
):
    workdir = str(tmp_path / "run")
    shutil.copytree(straight_run[0], workdir)
    corrupt_arrays(os.path.join(workdir, "checkpoints", "6"))
    os.remove(os.path.join(workdir, "eval_6.json"))

    with caplog.at_level(logging.WARNING):
        state = loop.train_and_evaluate(tiny_config(tfds_data_dir), workdir)
    bad = os.path.join(workdir, "checkpoints", "6")
    assert any(bad in r.getMessage() and "unreadable" in r.getMessage() for r in caplog.records)
    # Set aside, not deleted; training went on from step 3 to the same end state.
    assert os.path.isdir(os.path.join(workdir, "checkpoints_unreadable", "6", "default"))
    assert steps(workdir) == [3, 6]
    assert_same_state(state, straight_run[1])


def test_half_written_checkpoint_is_ignored(tmp_path, tfds_data_dir, straight_run):
    """A save killed mid-way leaves only orbax's temporary directory, never `<step>/`."""
    workdir = str(tmp_path / "run")
    shutil.copytree(straight_run[0], workdir)
    checkpoints = os.path.join(workdir, "checkpoints")
    os.rename(os.path.join(checkpoints, "6"), os.path.join(checkpoints, "6.orbax-checkpoint-tmp"))
    assert steps(workdir) == [3]
    state = loop.train_and_evaluate(tiny_config(tfds_data_dir), workdir)
    assert steps(workdir) == [3, 6]
    assert_same_state(state, straight_run[1])


# ------------------------------------------------------------------------------------------
# 4. NaN or Inf loss.
def test_non_finite_loss_names_the_step_and_task_and_keeps_checkpoints(
    tmp_path, tfds_data_dir, monkeypatch
):
    def poison_normals(batch):
        normals = np.asarray(batch["normals"]).copy()
        normals[0, 0, 0] = np.inf  # a valid pixel with an infinite target
        return {**batch, "normals": jax.device_put(normals, batch["normals"].sharding)}

    patch_batches(monkeypatch, 4, poison_normals)  # the batch of step 5
    workdir = str(tmp_path)
    with pytest.raises(FloatingPointError, match="Step 5: the loss of task 'normals' is inf"):
        loop.train_and_evaluate(tiny_config(tfds_data_dir, "log_every_steps=1"), workdir)
    assert steps(workdir) == [3]  # the last good checkpoint, and nothing after the bad step


# ------------------------------------------------------------------------------------------
# 6. Bad config: clear errors before anything is built or compiled.
@pytest.mark.parametrize(
    "arg, message",
    [
        ("tasks=semseg+surface", "Unknown task 'surface'"),
        ("model.name=mti_nett", "config.model.name 'mti_nett'"),
        ("model.backbone=resnet17", "config.model.backbone 'resnet17'"),
        ("weighting.name=dwaa", "config.weighting.name 'dwaa'"),
        ("optimizer.name=adamw2", "config.optimizer.name 'adamw2'"),
        ("schedule.name=cosine2", "config.schedule.name 'cosine2'"),
        ("batch_size=12", "config.batch_size=12 is not divisible by the 8 devices"),
        (
            "model.name=mti_net,model.backbone=hrnet_tiny",
            "'mti_net' needs an input height and width divisible by 32, but synthetic_scenes "
            "gives 32x40",
        ),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path, tfds_data_dir, arg, message):
    with pytest.raises(ValueError, match=message):
        loop.train_and_evaluate(tiny_config(tfds_data_dir, arg), str(tmp_path))
    assert not os.path.exists(os.path.join(tmp_path, "checkpoints"))


def test_unknown_dataset_and_missing_task_are_clear_errors(tmp_path, tfds_data_dir):
    config = tiny_config(tfds_data_dir)
    config.dataset.name = "nyud_mtt"
    with pytest.raises(ValueError, match="Unknown dataset 'nyud_mtt'"):
        loop.train_and_evaluate(config, str(tmp_path))
    config = tiny_config(tfds_data_dir, "tasks=semseg+sal")
    config.dataset.name = "nyud_mt"
    with pytest.raises(ValueError, match="'nyud_mt' has no labels for task 'sal'"):
        loop.train_and_evaluate(config, str(tmp_path))


# ------------------------------------------------------------------------------------------
# 7. eval.py on an empty workdir, a missing step, another model's checkpoint.
def test_eval_errors(tmp_path, tfds_data_dir, straight_run):
    with pytest.raises(FileNotFoundError, match="No checkpoint in .*checkpoints"):
        loop.evaluate_checkpoint(tiny_config(tfds_data_dir), str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"step 4 .* saved steps are \[3, 6\]"):
        loop.evaluate_checkpoint(tiny_config(tfds_data_dir), straight_run[0], step=4)
    other_model = tiny_config(tfds_data_dir, "model.head_width=16")
    with pytest.raises(checkpointing.CheckpointMismatchError, match="another model"):
        loop.evaluate_checkpoint(other_model, straight_run[0])


def test_training_on_another_models_checkpoint_is_an_error_not_a_fallback(
    tmp_path, tfds_data_dir, straight_run
):
    workdir = str(tmp_path / "run")
    shutil.copytree(straight_run[0], workdir)
    with pytest.raises(checkpointing.CheckpointMismatchError, match="other shape"):
        loop.train_and_evaluate(tiny_config(tfds_data_dir, "model.head_width=16"), workdir)
    assert steps(workdir) == [3, 6]  # nothing moved or deleted


# ------------------------------------------------------------------------------------------
# 8. A disk-full or read-only workdir: a clear error at start.
def test_unwritable_workdir_fails_at_start(tmp_path, tfds_data_dir):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(OSError, match="is not writable"):
        loop.train_and_evaluate(tiny_config(tfds_data_dir), str(blocker / "workdir"))


def test_full_disk_fails_at_start(tmp_path, tfds_data_dir, monkeypatch):
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(
        checkpointing.shutil, "disk_usage", lambda path: usage._replace(free=1 << 20)
    )
    with pytest.raises(OSError, match=r"Only 1.0 MiB are free .* need about"):
        loop.train_and_evaluate(tiny_config(tfds_data_dir), str(tmp_path))
    assert not os.path.exists(os.path.join(tmp_path, "checkpoints"))


# ------------------------------------------------------------------------------------------
# 5. Bad data reaching the pipeline: a clear error that names the example (the builders name
#    the file: tests/data/test_{nyud_mt,pascal_context_mt,nyuv2_mtan}.py).
@pytest.fixture(scope="module")
def pipeline(tfds_data_dir):
    from mtnets import sharding

    return InputPipeline(tiny_config(tfds_data_dir), sharding.create_mesh(-1))


def bad_example(**overrides):
    import tensorflow as tf

    rng = np.random.default_rng(0)
    example = {
        "id": "train/00007",
        "image": rng.integers(0, 255, (32, 40, 3)).astype(np.uint8),
        "semseg": rng.integers(0, 7, (32, 40, 1)).astype(np.uint8),
        "depth": rng.uniform(1, 5, (32, 40)).astype(np.float32),
        "normals": np.tile(np.array([0, 0, -1], np.float32), (32, 40, 1)),
        "edge": np.zeros((32, 40, 1), np.uint8),
        "sal": np.ones((32, 40, 1), np.uint8),
        "human_parts": np.full((32, 40, 1), 255, np.uint8),
    }
    example.update(overrides)
    return tf.data.Dataset.from_tensors(example)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            {"semseg": np.full((32, 40, 1), 9, np.uint8)},
            r"train/00007 has semseg values outside the class ids \(0..6 or 255\)",
        ),
        (
            {"depth": np.full((32, 40), -1.0, np.float32)},
            "train/00007 has depth values outside finite values >= 0",
        ),
        (
            {"depth": np.ones((30, 40), np.float32)},
            "train/00007 has a depth label of size 30 40 but an image of size 32 40",
        ),
        ({"edge": np.full((32, 40, 1), 2, np.uint8)}, r"train/00007 has edge values outside"),
    ],
)
def test_bad_labels_name_the_example(pipeline, overrides, message):
    dataset = bad_example(**overrides).map(pipeline._fields).batch(1)
    with pytest.raises(ValueError, match="Bad data in synthetic_scenes/tiny") as error:
        next(pipeline._global(dataset))
    assert __import__("re").search(message, str(error.value)), str(error.value)


def test_good_labels_pass_the_checks(pipeline):
    batch = next(pipeline._global(bad_example().map(pipeline._fields).repeat(8).batch(8)))
    assert batch["semseg"].shape == (8, 32, 40, 1)


def test_resume_restores_the_dwa_loss_history_exactly(tmp_path, tfds_data_dir):
    """DWA's carried epoch means decide its weights: a restart must continue from the saved
    history (here updated every step, so the weights already move by step 3)."""
    arg = "weighting.name=dwa,weighting.dwa.update_every_steps=1"
    straight = str(tmp_path / "straight")
    straight_state = loop.train_and_evaluate(tiny_config(tfds_data_dir, arg), straight)
    resumed = str(tmp_path / "resumed")
    shutil.copytree(straight, resumed)
    shutil.rmtree(os.path.join(resumed, "checkpoints", "6"))
    state = loop.train_and_evaluate(tiny_config(tfds_data_dir, arg), resumed)
    weights = np.asarray(state.weighting["weights"])
    assert not np.allclose(weights, 1.0)  # DWA really reweighted
    assert_same_state(state, straight_state)
