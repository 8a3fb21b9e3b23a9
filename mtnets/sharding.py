"""The device mesh and the shardings of the train state and the batches.

Data parallelism over the mesh axis `data`: a global batch is split along its first axis over
the devices of that axis, and the state is replicated. Both `mtnets/data` (to assemble global
batches) and `mtnets/train` (to place the state and compile the step) use these functions, so
the two always agree.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def create_mesh(num_devices: int = -1, devices: list | None = None) -> Mesh:
    """A 1-D mesh over `num_devices` devices (-1: all of them) with axis `data`.

    Axes are `Auto`, so `jax.jit` with `NamedSharding`s partitions the computation the way pjit
    did (jax >= 0.10 makes `Explicit` axes by default).
    """
    devices = list(jax.devices() if devices is None else devices)
    if num_devices == -1:
        num_devices = len(devices)
    if not 0 < num_devices <= len(devices):
        raise ValueError(
            f"config.num_devices={num_devices} but {len(devices)} devices are available."
        )
    return Mesh(np.array(devices[:num_devices]), (DATA_AXIS,), axis_types=(AxisType.Auto,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Arrays whose leading (batch) axis is split over `data`."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    """Arrays held whole by every device (parameters, optimizer state, metrics)."""
    return NamedSharding(mesh, PartitionSpec())


def local_batch_size(global_batch_size: int, mesh: Mesh) -> int:
    """This process's share of the global batch; a clear error if it does not divide evenly."""
    num_devices = mesh.devices.size
    if global_batch_size % num_devices:
        raise ValueError(
            f"config.batch_size={global_batch_size} is not divisible by the {num_devices} "
            "devices of the mesh."
        )
    return global_batch_size // jax.process_count()
