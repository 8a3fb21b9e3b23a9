"""The device mesh and the shardings of the train state and the batches.

The mesh has two axes: `data` and `model`. A global batch is split along its first axis over
`data` (and held whole by each device of a `model` group). Parameters, and the optimizer
moments that mirror them, are replicated, except those with at least `min_shard_size`
elements when the `model` axis has more than one device: those are split along their largest
dimension that `model` divides (a FSDP/ZeRO-3 style layout that `jax.jit` turns into the
needed all-gathers and reduce-scatters). With the default `model` size 1 this is plain data
parallelism.

Both `mtnets/data` (to assemble global batches) and `mtnets/train` (to place the state and
compile the step) use these functions, so the two always agree.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"
MODEL_AXIS = "model"
MIN_SHARD_SIZE = 2**18  # elements; smaller arrays are cheaper replicated than gathered


def create_mesh(num_devices: int = -1, model: int = 1, devices: list | None = None) -> Mesh:
    """A `(data, model)` mesh over `num_devices` devices (-1: all), `model` of them per group.

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
    if model < 1 or num_devices % model:
        raise ValueError(
            f"config.model_parallelism={model} does not divide the {num_devices} devices."
        )
    grid = np.array(devices[:num_devices]).reshape(num_devices // model, model)
    return Mesh(grid, (DATA_AXIS, MODEL_AXIS), axis_types=(AxisType.Auto, AxisType.Auto))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Arrays whose leading (batch) axis is split over `data`."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    """Arrays held whole by every device (small parameters, metrics, scalars)."""
    return NamedSharding(mesh, PartitionSpec())


def array_sharding(mesh: Mesh, shape, min_shard_size: int = MIN_SHARD_SIZE) -> NamedSharding:
    """Replicated, or split over `model` along the largest dimension it divides (see above)."""
    model = mesh.shape[MODEL_AXIS]
    if model == 1 or int(np.prod(shape)) < min_shard_size:
        return replicated(mesh)
    for dim in sorted(range(len(shape)), key=lambda d: -shape[d]):
        if shape[dim] % model == 0:
            spec = [None] * len(shape)
            spec[dim] = MODEL_AXIS
            return NamedSharding(mesh, PartitionSpec(*spec))
    return replicated(mesh)


def state_shardings(mesh: Mesh, abstract_state, min_shard_size: int = MIN_SHARD_SIZE):
    """The sharding of every array of a train state (from its `jax.eval_shape`)."""
    return jax.tree.map(lambda x: array_sharding(mesh, x.shape, min_shard_size), abstract_state)


def local_batch_size(global_batch_size: int, mesh: Mesh) -> int:
    """This process's share of the global batch; a clear error if it does not divide evenly."""
    return len(process_rows(global_batch_size, mesh))


def process_rows(global_batch_size: int, mesh: Mesh) -> range:
    """The rows of a global batch that this process's devices hold.

    `jax.make_array_from_process_local_data` assembles a global batch from one contiguous block
    of rows per process; this is that block, so that the input pipeline can feed exactly it.
    """
    data = mesh.shape[DATA_AXIS]
    if global_batch_size % data:
        raise ValueError(
            f"config.batch_size={global_batch_size} is not divisible by the {data} devices of "
            "the mesh's data axis."
        )
    shards = batch_sharding(mesh).addressable_devices_indices_map((global_batch_size,))
    blocks = {index[0].indices(global_batch_size)[:2] for index in shards.values()}
    start, stop = min(b[0] for b in blocks), max(b[1] for b in blocks)
    if sum(b[1] - b[0] for b in blocks) != stop - start:
        raise ValueError(
            f"The devices of process {jax.process_index()} hold rows {sorted(blocks)} of the "
            "global batch, not one contiguous block; order the mesh's devices by process."
        )
    return range(start, stop)
