"""The mesh from the config: data parallelism, and large parameters split over `model`."""

import jax
import numpy as np
import optax
import pytest

from configs.synthetic.tiny import get_config
from mtnets import sharding
from mtnets.models import create_model
from mtnets.tasks import task_specs
from mtnets.train.state import create_train_state
from mtnets.train.step import compile_steps
from mtnets.weighting import create_weighting


def test_array_sharding_splits_large_arrays_along_a_divisible_dimension():
    mesh = sharding.create_mesh(8, model=2)
    assert mesh.shape == {"data": 4, "model": 2}
    spec = lambda shape: sharding.array_sharding(mesh, shape, min_shard_size=64).spec  # noqa: E731
    assert spec((3, 3, 16, 33)) == jax.sharding.PartitionSpec(None, None, "model", None)
    assert spec((64, 128)) == jax.sharding.PartitionSpec(None, "model")
    assert spec((7, 9)) == jax.sharding.PartitionSpec()  # small: replicated
    assert spec((65, 3)) == jax.sharding.PartitionSpec()  # no dimension divisible by 2
    assert sharding.array_sharding(sharding.create_mesh(8), (512, 512)).spec == (
        jax.sharding.PartitionSpec()
    )


def test_model_parallelism_must_divide_the_devices():
    with pytest.raises(ValueError, match="model_parallelism=3"):
        sharding.create_mesh(8, model=3)


def run(mesh, config, batches, min_shard_size):
    model = create_model(config)
    tx = optax.sgd(0.05)
    weighting = create_weighting(config, config.tasks)
    specs = task_specs(config.tasks, config.dataset.name)
    init = jax.tree_util.Partial(create_train_state, model, tx, weighting, (32, 40, 3), 0)
    shardings = sharding.state_shardings(mesh, jax.eval_shape(init), min_shard_size)
    state = jax.jit(init, out_shardings=shardings)()
    initial = jax.device_get(state.params)
    train_step, _ = compile_steps(model, tx, weighting, specs, mesh, shardings)
    losses = []
    for batch in batches:
        state, scalars = train_step(state, jax.device_put(batch, sharding.batch_sharding(mesh)))
        losses.append(float(scalars["loss"]))
    return initial, jax.device_get(state), losses, shardings


@pytest.mark.skipif(jax.device_count() < 8, reason="needs 8 (simulated) devices")
def test_a_single_process_feeds_every_row_of_the_global_batch():
    for model in (1, 2):
        mesh = sharding.create_mesh(-1, model)
        rows = sharding.process_rows(16, mesh)
        assert rows == range(0, 16)
        assert sharding.local_batch_size(16, mesh) == 16
    with pytest.raises(ValueError, match="batch_size=12 is not divisible by the 8 devices"):
        sharding.process_rows(12, sharding.create_mesh(-1, 1))


def test_data_and_model_sharded_steps_match_one_device():
    from tests.train.test_step import random_batch

    config = get_config()
    batches = [random_batch(config, 8, seed) for seed in range(2)]
    initial, state_1, losses_1, _ = run(sharding.create_mesh(1), config, batches, 1024)
    _, state_2d, losses_2d, shardings = run(sharding.create_mesh(8, model=2), config, batches, 1024)

    split = [s for s in jax.tree.leaves(shardings.params) if "model" in s.spec]
    assert len(split) > 5  # the test really exercises split parameters
    np.testing.assert_allclose(losses_2d, losses_1, rtol=2e-5)
    # Equal up to float32 reduction order: within 0.1 % of how far the steps moved each tensor
    # (as tests/train/test_step.py).
    trees = (initial, state_1.params, state_2d.params)
    for p0, p1, p2 in zip(*(jax.tree.leaves(t) for t in trees), strict=True):
        assert np.abs(p2 - p1).max() <= 1e-3 * np.abs(p1 - p0).max() + 1e-7
