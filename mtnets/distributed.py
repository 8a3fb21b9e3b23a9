"""Multi-process start-up for `train.py` and `eval.py`: `jax.distributed` when asked.

One process runs per host (TPU pod), per GPU or per node (multi-GPU clusters), or several on one
machine (CPU tests). Each process is started with the same config and workdir; the coordinator
(process 0) is told by flags, or found by JAX's cluster detection (Cloud TPU, SLURM, Open MPI,
Kubernetes) with `--distributed` alone.
"""

from __future__ import annotations

import jax
from absl import flags, logging

_DISTRIBUTED = flags.DEFINE_bool(
    "distributed",
    False,
    "Start jax.distributed; without the flags below JAX detects the cluster (TPU pod, SLURM, "
    "Open MPI, Kubernetes).",
)
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address",
    None,
    "host:port of process 0 (or env JAX_COORDINATOR_ADDRESS); implies --distributed.",
)
_NUM_PROCESSES = flags.DEFINE_integer(
    "num_processes", None, "Number of processes; implies --distributed."
)
_PROCESS_ID = flags.DEFINE_integer(
    "process_id", None, "This process's index, 0 .. num_processes - 1; implies --distributed."
)


def initialize_from_flags() -> None:
    """Joins the processes when the flags ask for it; a single process otherwise."""
    given = (_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    if not _DISTRIBUTED.value and given == (None, None, None):
        return
    initialize(*given)


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> None:
    """`jax.distributed.initialize`, with collectives across processes on CPU too (gloo).

    Must run before anything touches a JAX device."""
    if num_processes is not None and not (
        process_id is not None and 0 <= process_id < num_processes
    ):
        raise ValueError(
            f"--process_id={process_id} must be in 0 .. {num_processes - 1} (--num_processes)."
        )
    # CPU backends have no cross-process collectives unless told to use gloo; GPUs and TPUs
    # ignore this setting.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
    logging.info(
        "jax.distributed: process %d of %d, %d local of %d devices.",
        jax.process_index(),
        jax.process_count(),
        jax.local_device_count(),
        jax.device_count(),
    )
