"""The jitted train step: sharded over 8 simulated devices it matches 1 device."""

import flax.linen as nn
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
from tests.train.toy_models import ToyNet

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
    weights = config.weighting.fixed.weights
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


def _strategy_run(overrides, steps=3, tasks=("semseg", "depth")):
    """`steps` SGD steps of a two-task toy model under the weighting in `overrides`."""
    config = get_config("optimizer.name=sgd,optimizer.learning_rate=0.05," + overrides)
    config.tasks = tasks
    batches = [random_batch(config, 2, seed) for seed in range(steps)]
    mesh = sharding.create_mesh(1)
    specs = task_specs(config.tasks, config.dataset.name)
    model = ToyNet({t: s.channels for t, s in specs.items()})
    tx = create_optimizer(config, create_schedule(config))
    weighting = create_weighting(config, config.tasks, steps_per_epoch=1)
    init = jax.tree_util.Partial(
        create_train_state, model, tx, weighting, (HEIGHT, WIDTH, 3), config.seed
    )
    shardings = jax.tree.map(lambda _: sharding.replicated(mesh), jax.eval_shape(init))
    state = jax.jit(init, out_shardings=shardings)()
    initial = jax.device_get(state)
    train_step, _ = compile_steps(model, tx, weighting, specs, mesh, shardings)
    scalars = []
    for batch in batches:
        state, out = train_step(state, jax.device_put(batch, sharding.batch_sharding(mesh)))
        scalars.append(jax.device_get(out))
    assert train_step._cache_size() == 1  # changing weights never recompiles
    return initial, jax.device_get(state), scalars


def test_uncertainty_log_vars_are_trained_by_the_optimizer():
    initial, state, scalars = _strategy_run("weighting.name=uncertainty", steps=2)
    s0 = np.asarray(initial.weighting["params"]["log_vars"])
    np.testing.assert_array_equal(s0, [-0.5, -0.5])
    # One SGD step (lr 0.05, coupled weight decay 1e-4) on d/ds = -L / (2 e^s) + 1/2.
    losses = np.array([scalars[0]["loss/semseg"], scalars[0]["loss/depth"]])
    grad = -losses / (2 * np.exp(s0)) + 0.5 + 1e-4 * s0
    after_one = s0 - 0.05 * grad
    weights_2 = np.array([scalars[1]["weight/semseg"], scalars[1]["weight/depth"]])
    np.testing.assert_allclose(weights_2, 0.5 * np.exp(-after_one), rtol=1e-5)
    total = np.sum(losses / (2 * np.exp(s0)) + s0 / 2)
    np.testing.assert_allclose(scalars[0]["loss"], total, rtol=1e-5)


def test_dwa_weights_change_per_epoch_in_the_step():
    _, state, scalars = _strategy_run("weighting.name=dwa", steps=4)
    used = np.array([[s["weight/semseg"], s["weight/depth"]] for s in scalars])
    np.testing.assert_array_equal(used[:2], 1.0)
    losses = np.array([[s["loss/semseg"], s["loss/depth"]] for s in scalars])
    w = losses[1] / losses[0]  # one step per epoch
    np.testing.assert_allclose(used[2], 2 * np.exp(w / 2) / np.exp(w / 2).sum(), rtol=1e-5)
    assert int(state.weighting["epochs"]) == 4


def test_gradnorm_model_update_equals_weighted_sum_and_weights_move():
    fixed_initial, fixed_state, _ = _strategy_run("weighting.name=equal", steps=1)
    _, grad_state, scalars = _strategy_run("weighting.name=gradnorm", steps=2)
    # Step 1: GradNorm's weights are 1, so its per-task VJPs must give the equal-weights update.
    _, one_step, _ = _strategy_run("weighting.name=gradnorm", steps=1)
    for a, b, p0 in zip(
        *(jax.tree.leaves(s) for s in (fixed_state.params, one_step.params, fixed_initial.params)),
        strict=True,
    ):
        np.testing.assert_allclose(b, a, atol=1e-6 + 1e-4 * np.abs(a - p0).max())
    w = np.asarray(grad_state.weighting["params"]["weights"])
    np.testing.assert_allclose(w.sum(), 2.0, rtol=1e-6)
    assert not np.allclose(w, 1.0)
    assert all(np.isfinite(s["loss"]) for s in scalars)


def test_pcgrad_and_rlw_steps_train():
    for name in ("pcgrad", "rlw"):
        initial, state, scalars = _strategy_run(f"weighting.name={name}", steps=2)
        assert all(np.isfinite(s["loss"]) for s in scalars), name
        moved = [
            np.abs(a - b).max()
            for a, b in zip(
                jax.tree.leaves(state.params), jax.tree.leaves(initial.params), strict=True
            )
        ]
        assert max(moved) > 0, name


class _DeepSupervised(nn.Module):
    """Final semseg/depth at full resolution and, at half resolution, intermediate semseg,
    depth and edge (an auxiliary task), as MTI-Net outputs them."""

    @nn.compact
    def __call__(self, x, train: bool = False):
        small = nn.avg_pool(x, (2, 2), (2, 2))
        return {
            "semseg": nn.Conv(7, (1, 1), name="semseg")(x),
            "depth": nn.Conv(1, (1, 1), name="depth")(x),
            "intermediate": {
                "scale_0": {
                    "semseg": nn.Conv(7, (1, 1), name="semseg_0")(small),
                    "depth": nn.Conv(1, (1, 1), name="depth_0")(small),
                    "edge": nn.Conv(1, (1, 1), name="edge_0")(small),
                }
            },
        }


def test_config_steps_train_auxiliary_tasks_and_intermediate_predictions():
    """The step `train.py` and the benchmarks compile (`compile_config_steps`) gives every main
    and auxiliary task its loss over final and intermediate predictions, resized to the label
    size, and the total is the weighted sum."""
    import functools

    from mtnets import loss_schemes, losses
    from mtnets.train.step import compile_config_steps, trained_tasks

    config = get_config()
    config.tasks, config.aux_tasks = ("semseg", "depth"), ("edge",)
    model = _DeepSupervised()
    tx = create_optimizer(config, create_schedule(config))
    weighting = create_weighting(config, trained_tasks(config))
    mesh = sharding.create_mesh(1)
    init = jax.tree_util.Partial(
        create_train_state, model, tx, weighting, (HEIGHT, WIDTH, 3), config.seed
    )
    shardings = jax.tree.map(lambda _: sharding.replicated(mesh), jax.eval_shape(init))
    state = jax.jit(init, out_shardings=shardings)()
    batch = random_batch(config, 2)
    outputs = model.apply({"params": state.params}, batch["image"])  # before the state is donated
    train_step, _ = compile_config_steps(config, model, tx, weighting, mesh, shardings)
    _, scalars = train_step(state, jax.device_put(batch, sharding.batch_sharding(mesh)))

    specs = task_specs(("semseg", "depth", "edge"), config.dataset.name)
    loss_fn = functools.partial(losses.task_loss, edge_pos_weight=config.loss.edge_pos_weight)
    expected = loss_schemes.task_losses(specs, outputs, batch, loss_fn)
    assert set(expected) == {"semseg", "depth", "edge"}
    for task, value in expected.items():
        np.testing.assert_allclose(scalars[f"loss/{task}"], value, rtol=1e-5)
    weights = config.weighting.fixed.weights
    total = sum(weights[t] * float(v) for t, v in expected.items())
    np.testing.assert_allclose(scalars["loss"], total, rtol=1e-5)
