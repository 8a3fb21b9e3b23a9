"""The jitted train step: sharded over 8 simulated devices it matches 1 device."""

import jax
import numpy as np
import pytest

from configs.synthetic.tiny import get_config
from mtnets import sharding
from mtnets.models import create_model
from mtnets.tasks import task_specs
from mtnets.train.loop import create_optimizer, create_schedule
from mtnets.train.state import create_train_state
from mtnets.train.step import compile_steps
from mtnets.weighting import create_weighting

HEIGHT, WIDTH = 32, 40


def random_batch(config, batch_size, seed=0):
    """A batch in the pipeline's conventions, with ignored pixels in every label."""
    rng = np.random.default_rng(seed)
    shape = (batch_size, HEIGHT, WIDTH)
    semseg = rng.integers(0, 7, shape).astype(np.int32)
    semseg[:, :3] = 255
    depth = rng.uniform(0.5, 8.0, shape).astype(np.float32)
    depth[:, :, :2] = 0.0
    normals = rng.normal(size=(*shape, 3)).astype(np.float32)
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    normals[:, -2:] = 0.0
    parts = rng.integers(0, 4, shape).astype(np.int32)
    parts[0] = 255
    return {
        "image": rng.normal(size=(*shape, 3)).astype(np.float32),
        "mask": np.ones(batch_size, bool),
        "semseg": semseg,
        "depth": depth,
        "normals": normals,
        "edge": (rng.uniform(size=shape) < 0.1).astype(np.int32),
        "sal": (rng.uniform(size=shape) < 0.3).astype(np.int32),
        "human_parts": parts,
    }


def run_steps(config, mesh, batches):
    model = create_model(config)
    tx = create_optimizer(config, create_schedule(config))
    weighting = create_weighting(config, config.tasks)
    specs = task_specs(config.tasks, config.dataset.name)
    init = jax.tree_util.Partial(
        create_train_state, model, tx, weighting, (HEIGHT, WIDTH, 3), config.seed
    )
    shardings = jax.tree.map(lambda _: sharding.replicated(mesh), jax.eval_shape(init))
    state = jax.jit(init, out_shardings=shardings)()
    initial = jax.device_get(state.params)
    train_step, _ = compile_steps(model, tx, weighting, specs, mesh, shardings)
    losses = []
    for batch in batches:
        batch = jax.device_put(batch, sharding.batch_sharding(mesh))
        state, scalars = train_step(state, batch)
        losses.append(jax.device_get(scalars))
    return initial, jax.device_get(state), losses


@pytest.mark.skipif(jax.device_count() < 8, reason="needs 8 (simulated) devices")
def test_sharded_step_matches_single_device():
    # SGD: its update is linear in the gradient, so float32 reduction-order differences stay
    # at float precision (Adam divides by sqrt(v) and turns noise in ~0 gradients into steps).
    config = get_config("optimizer.name=sgd,optimizer.learning_rate=0.05")
    batches = [random_batch(config, 8, seed) for seed in range(2)]
    initial, state_1, losses_1 = run_steps(config, sharding.create_mesh(1), batches)
    _, state_8, losses_8 = run_steps(config, sharding.create_mesh(8), batches)

    for step_1, step_8 in zip(losses_1, losses_8, strict=True):
        assert set(step_1) == set(step_8)
        for name in step_1:
            np.testing.assert_allclose(step_8[name], step_1[name], rtol=2e-5, err_msg=name)
    assert int(state_8.step) == int(state_1.step) == 2
    # The 8-device update equals the 1-device one up to float32 reduction order: within 0.1 %
    # of how far the two steps moved each parameter tensor.
    for p0, p1, p8 in zip(
        *(jax.tree.leaves(t) for t in (initial, state_1.params, state_8.params)), strict=True
    ):
        moved = np.abs(p1 - p0).max()
        assert moved > 0
        assert np.abs(p8 - p1).max() <= 1e-3 * moved + 1e-7  # 1e-7: float32 at |p| ~ 1
    # The step really trained: parameters moved and the weighted loss is the weighted sum.
    weights = config.weighting.weights
    first = losses_1[0]
    expected = sum(weights[t] * first[f"loss/{t}"] for t in config.tasks)
    np.testing.assert_allclose(first["loss"], expected, rtol=1e-6)
    for task in config.tasks:
        assert first[f"weight/{task}"] == weights[task]


def test_batch_sharded_over_data_axis():
    mesh = sharding.create_mesh(-1)
    batch = jax.device_put(np.zeros((8, 4, 4, 3), np.float32), sharding.batch_sharding(mesh))
    assert batch.sharding.spec == jax.sharding.PartitionSpec("data")
    shards = batch.addressable_shards
    assert len(shards) == jax.device_count()
    assert {s.data.shape[0] for s in shards} == {8 // jax.device_count()}


def test_batch_size_not_divisible_by_devices_is_an_error():
    mesh = sharding.create_mesh(-1)
    if jax.device_count() == 1:
        pytest.skip("every batch size divides over one device")
    with pytest.raises(ValueError, match="not divisible"):
        sharding.local_batch_size(jax.device_count() + 1, mesh)
