"""Checkpoints through orbax: the only module that talks to it.

A checkpoint is the whole `TrainState` (step, params, batch statistics, optimizer state,
loss-weighting state, PRNG key) under `<workdir>/checkpoints/<step>/`. Orbax writes it
asynchronously to `<step>.orbax-checkpoint-tmp` and renames it when complete, so a process
killed during a save never leaves a half-written `<step>`; leftover temporary directories are
removed when the next run starts. The data stream needs no saved state: it is a function of the
step (see `mtnets.data.pipeline`).

Restoring for training (`restore_latest`) walks back from the newest checkpoint: one that cannot
be read (corrupted files, a disk error) is moved to `<workdir>/checkpoints_unreadable/` with a
warning naming it, never deleted, and the previous one is tried. A checkpoint that reads fine but
holds another model's state is an error (`CheckpointMismatchError`), not a reason to fall back.
"""

from __future__ import annotations

import os
import shutil
import time
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

from mtnets import pytrees


class CheckpointMismatchError(ValueError):
    """A checkpoint whose arrays do not fit the state of the configured model."""


class Checkpointer:
    """Periodic, asynchronous saves keeping the newest `max_to_keep`; restore by step."""

    def __init__(self, workdir: str, *, max_to_keep: int = 3, read_only: bool = False):
        self.workdir = os.path.abspath(workdir)
        self.directory = os.path.join(self.workdir, "checkpoints")
        self.read_only = read_only
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep,
            create=not read_only,
            cleanup_tmp_directories=not read_only,
            enable_async_checkpointing=not read_only,
        )
        self.manager = ocp.CheckpointManager(
            self.directory, options=options, item_handlers=ocp.StandardCheckpointHandler()
        )

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def save(self, step: int, state, *, force: bool = False) -> bool:
        """Starts writing `state` as checkpoint `step` (returns at once; see `wait`)."""
        return self.manager.save(step, args=ocp.args.StandardSave(state), force=force)

    def restore(self, target, step: int | None = None):
        """Checkpoint `step` (default: the latest) laid out like `target`.

        `target` is the state's `jax.eval_shape` with shardings (or a state): it gives the
        structure, dtypes and placement of the restored arrays. A missing step, a checkpoint of
        another model or an unreadable one is an error naming the directory.
        """
        steps = self.all_steps()
        if not steps:
            raise FileNotFoundError(f"No checkpoint in {self.directory}.")
        step = steps[-1] if step is None else step
        if step not in steps:
            raise FileNotFoundError(
                f"No checkpoint of step {step} in {self.directory}; the saved steps are {steps}."
            )
        self.check_matches(step, target)
        return self._restore(step, target)

    def restore_latest(self, target):
        """The newest readable checkpoint (None if there is none); see the module docstring."""
        for step in reversed(self.all_steps()):
            try:
                metadata = self.manager.item_metadata(step)
            except Exception as error:  # noqa: BLE001  (any read failure means unreadable)
                self._set_aside(step, error)
                continue
            _check_metadata(self._path(step), metadata, target)
            try:
                return self._restore(step, target)
            except Exception as error:  # noqa: BLE001
                self._set_aside(step, error)
        return None

    def check_matches(self, step: int, target) -> None:
        """Raises `CheckpointMismatchError` if checkpoint `step` does not fit `target`."""
        _check_metadata(self._path(step), self.manager.item_metadata(step), target)

    def wait(self) -> None:
        """Blocks until every started save is on disk."""
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.close()

    # -----------------------------------------------------------------------------------------
    def _path(self, step: int) -> str:
        return os.path.join(self.directory, str(step))

    def _restore(self, step: int, target):
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        return self.manager.restore(step, args=ocp.args.StandardRestore(abstract))

    def _set_aside(self, step: int, error: Exception) -> None:
        path = self._path(step)
        reason = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        if self.read_only:
            logging.warning("Checkpoint %s is unreadable (%s); skipping it.", path, reason)
            return
        destination = os.path.join(self.workdir, "checkpoints_unreadable", str(step))
        if os.path.exists(destination):
            destination += f".{int(time.time())}"
        if jax.process_index() == 0:
            os.makedirs(os.path.dirname(destination), exist_ok=True)
            shutil.move(path, destination)
        logging.warning(
            "Checkpoint %s is unreadable (%s); moved it to %s and trying an earlier one.",
            path,
            reason,
            destination,
        )
        self.manager.reload()


def _check_metadata(path: str, metadata, target) -> None:
    """Compares the saved arrays' paths and shapes with those of `target`."""
    tree = metadata.tree if hasattr(metadata, "tree") else metadata
    diff = pytrees.differences(tree, target)
    if not diff:
        return
    details = []
    for label, entries in (
        ("missing", diff.missing),
        ("not in this model", diff.unexpected),
        ("other shape", diff.reshaped),
    ):
        keys = [entry[0] for entry in entries]
        if keys:
            details.append(f"{len(keys)} {label} (e.g. {', '.join(keys[:3])})")
    raise CheckpointMismatchError(
        f"Checkpoint {path} holds the state of another model than this config's: "
        + "; ".join(details)
        + ". Use the config it was trained with, or another --workdir."
    )


def restore_variables(workdir: str, step: int | None = None) -> dict[str, Any]:
    """The model variables `{"params", "batch_stats"}` of checkpoint `step` (default: the latest)
    of a training run in `workdir`, as NumPy arrays on the host, without that run's config.

    Only those two parts of the saved `TrainState` are read (orbax partial restore; the
    optimizer state, often twice the parameters, stays on disk); their tree, shapes and dtypes
    come from the checkpoint's metadata. For initialising another model from a trained one
    (`mtnets.train.warm_start`). A workdir without checkpoints or a missing step is a
    FileNotFoundError naming the directory.
    """
    directory = os.path.join(os.path.abspath(workdir), "checkpoints")
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            f"No checkpoint directory {directory}: {workdir} is not the workdir of a training run."
        )
    options = ocp.CheckpointManagerOptions(
        create=False, cleanup_tmp_directories=False, enable_async_checkpointing=False
    )
    manager = ocp.CheckpointManager(
        directory, options=options, item_handlers=ocp.PyTreeCheckpointHandler()
    )
    try:
        steps = sorted(manager.all_steps())
        if not steps:
            raise FileNotFoundError(f"No checkpoint in {directory}.")
        step = steps[-1] if step is None else step
        if step not in steps:
            raise FileNotFoundError(
                f"No checkpoint of step {step} in {directory}; the saved steps are {steps}."
            )
        metadata = manager.item_metadata(step)
        tree = metadata.tree if hasattr(metadata, "tree") else metadata
        if "params" not in tree:
            raise ValueError(f"Checkpoint {directory}/{step} holds no 'params'.")
        abstract = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype), dict(tree))
        item = {name: abstract[name] for name in ("params", "batch_stats") if abstract.get(name)}
        as_numpy = ocp.RestoreArgs(restore_type=np.ndarray)
        try:
            args = ocp.args.PyTreeRestore(
                item=item,
                restore_args=jax.tree.map(lambda _: as_numpy, item),
                partial_restore=True,
            )
        except TypeError:  # an orbax without partial restore (before 0.11.14): read it all
            args = ocp.args.PyTreeRestore(
                item=abstract, restore_args=jax.tree.map(lambda _: as_numpy, abstract)
            )
        restored = manager.restore(step, args=args)
    finally:
        manager.close()
    return {"params": restored["params"], "batch_stats": restored.get("batch_stats", {})}


def state_bytes(state) -> int:
    """Bytes of all arrays of a state (or of its `jax.eval_shape`)."""
    return sum(int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(state))


def check_workdir(workdir: str, needed_bytes: int) -> None:
    """Fails at start, not hours later, if checkpoints cannot be written to `workdir`: it must
    be creatable and writable, with room for `needed_bytes`."""
    try:
        os.makedirs(workdir, exist_ok=True)
        probe = os.path.join(workdir, f".write_test.{os.getpid()}")
        with open(probe, "wb") as f:
            f.write(b"\0" * 4096)
            f.flush()
            os.fsync(f.fileno())
        os.remove(probe)
    except OSError as error:
        raise OSError(
            f"The workdir {workdir} is not writable ({error.strerror or error}); "
            "choose another --workdir or fix its permissions."
        ) from error
    free = shutil.disk_usage(workdir).free
    if free < needed_bytes:
        raise OSError(
            f"Only {free / 2**20:.1f} MiB are free on the disk of {workdir}, but the checkpoints "
            f"of this run need about {needed_bytes / 2**20:.1f} MiB. Free some space or choose "
            "another --workdir."
        )
