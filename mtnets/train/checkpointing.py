"""Checkpoints through orbax: the only module that talks to it.

A checkpoint is the whole `TrainState` (step, params, batch statistics, optimizer state,
loss-weighting state, PRNG key) under `<workdir>/checkpoints/<step>/`. Orbax writes it
asynchronously to a temporary directory and renames it when complete, so an interrupted write
never shadows the previous good checkpoint. The data stream needs no saved state: it is a
function of the step (see `mtnets.data.pipeline`).
"""

from __future__ import annotations

import os

import jax
import orbax.checkpoint as ocp


class Checkpointer:
    """Periodic, asynchronous saves keeping the newest `max_to_keep`; restore by step."""

    def __init__(self, workdir: str, *, max_to_keep: int = 3, read_only: bool = False):
        self.directory = os.path.join(os.path.abspath(workdir), "checkpoints")
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep,
            create=not read_only,
            read_only=read_only,
            enable_async_checkpointing=not read_only,
        )
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def save(self, step: int, state, *, force: bool = False) -> bool:
        """Starts writing `state` as checkpoint `step` (returns at once; see `wait`)."""
        return self.manager.save(step, args=ocp.args.StandardSave(state), force=force)

    def restore(self, target, step: int | None = None):
        """The checkpoint `step` (default: the latest) laid out like `target`.

        `target` is a state, or its `jax.eval_shape` with shardings, that gives the structure,
        dtypes and placement of the restored arrays.
        """
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"No checkpoint in {self.directory}.")
        if step not in self.all_steps():
            raise FileNotFoundError(
                f"No checkpoint of step {step} in {self.directory}; "
                f"the saved steps are {self.all_steps()}."
            )
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        return self.manager.restore(step, args=ocp.args.StandardRestore(abstract))

    def wait(self) -> None:
        """Blocks until every started save is on disk."""
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.close()
