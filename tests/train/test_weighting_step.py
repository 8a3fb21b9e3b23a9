"""Weightings inside the jitted train step: FAMO's extra forward pass and a composed weighting,
against NumPy transcriptions, with one compilation over several steps."""


import jax
import numpy as np

from configs.synthetic.tiny import get_config
from mtnets import sharding
from mtnets.tasks import task_specs
from mtnets.train.optim import create_optimizer, create_schedule
from mtnets.train.state import create_train_state
from mtnets.train.step import compile_steps, task_losses
from mtnets.weighting import create_weighting
from mtnets.weighting.pcgrad import random_orders
from tests.train.toy_models import ToyNet

HEIGHT, WIDTH, LR = 16, 20, 0.05
TASKS = ("semseg", "depth")
# Plain SGD with a constant rate: the update is -LR times the gradient the weighting chose.
PLAIN_SGD = (
    "optimizer.name=sgd,optimizer.momentum=0.0,optimizer.weight_decay=0.0,"
    f"optimizer.learning_rate={LR},schedule.name=constant,"
)


def _batch(seed):
    rng = np.random.default_rng(seed)
    shape = (2, HEIGHT, WIDTH)
    return {
        "image": rng.normal(size=(*shape, 3)).astype(np.float32),
        "mask": np.ones(2, bool),
        "semseg": rng.integers(0, 7, shape).astype(np.int32),
        "depth": rng.uniform(0.5, 8.0, shape).astype(np.float32),
    }


def _run(overrides, steps):
    """Host copies of the state before every step and after the last, the scalars, and the
    loss function of the step (for transcriptions)."""
    config = get_config(PLAIN_SGD + overrides)
    config.tasks = TASKS
    specs = task_specs(TASKS, config.dataset.name)
    model = ToyNet({t: s.channels for t, s in specs.items()}, width=4)
    tx = create_optimizer(config, create_schedule(config))
    weighting = create_weighting(config, TASKS, steps_per_epoch=1)
    mesh = sharding.create_mesh(1)
    init = jax.tree_util.Partial(
        create_train_state, model, tx, weighting, (HEIGHT, WIDTH, 3), config.seed
    )
    shardings = jax.tree.map(lambda _: sharding.replicated(mesh), jax.eval_shape(init))
    state = jax.jit(init, out_shardings=shardings)()
    train_step, _ = compile_steps(model, tx, weighting, specs, mesh, shardings)
    states, scalars, batches = [], [], [_batch(s) for s in range(steps)]
    for batch in batches:
        states.append(jax.device_get(state))
        state, out = train_step(state, jax.device_put(batch, sharding.batch_sharding(mesh)))
        scalars.append(jax.device_get(out))
    states.append(jax.device_get(state))
    assert train_step._cache_size() == 1  # weights that change never recompile

    def losses(params, batch):
        predictions = model.apply({"params": params}, batch["image"], train=True)
        per_task = task_losses(specs, predictions, batch, edge_pos_weight=0.95)
        return np.array([per_task[t] for t in TASKS], np.float64)

    return states, scalars, batches, losses


def test_famo_step_matches_the_paper_with_the_losses_after_the_step():
    states, scalars, batches, losses_fn = _run("weighting.name=famo", steps=4)
    xi, m, v = np.zeros(2), np.zeros(2), np.zeros(2)
    for t, (before, after, out, batch) in enumerate(
        zip(states, states[1:], scalars, batches, strict=False), start=1
    ):
        loss = np.array([out[f"loss/{task}"] for task in TASKS], np.float64)
        np.testing.assert_allclose(loss, losses_fn(before.params, batch), rtol=1e-5)
        z = np.exp(xi) / np.exp(xi).sum()
        weights = (z / (loss + 1e-8)) / np.sum(z / (loss + 1e-8))
        got = np.array([out[f"weight/{task}"] for task in TASKS])
        np.testing.assert_allclose(got, weights, rtol=1e-5)
        # The logits step on the losses of the same batch after the parameter update.
        delta = np.log(loss + 1e-8) - np.log(losses_fn(after.params, batch) + 1e-8)
        g = (np.diag(z) - np.outer(z, z)) @ delta + 1e-3 * xi
        m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g**2
        xi = xi - 0.025 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
        np.testing.assert_allclose(after.weighting["logits"], xi, rtol=1e-5, atol=1e-6)
    assert abs(xi[0] - xi[1]) > 1e-2


def test_dwa_then_pcgrad_step_equals_the_numpy_transcription():
    """DWA's weights (every step here) applied to the task gradients, then PCGrad's projection
    on `backbone/conv2`; every other parameter gets the DWA-weighted sum."""
    overrides = (
        "weighting.name=dwa+pcgrad,weighting.dwa.update_every_steps=1,"
        "weighting.pcgrad.shared_path=backbone/conv2"
    )
    states, scalars, batches, _ = _run(overrides, steps=3)
    losses = np.array([[s[f"loss/{t}"] for t in TASKS] for s in scalars], np.float64)
    # lorenmt's DWA with one-step epochs: weights 1, 1, then K softmax(L(1) / L(0) / T).
    ratio = losses[1] / losses[0]
    dwa_weights = len(TASKS) * np.exp(ratio / 2) / np.exp(ratio / 2).sum()
    got = np.array([scalars[2][f"weight/{t}"] for t in TASKS])
    np.testing.assert_allclose(got, dwa_weights, rtol=1e-5)
    assert not np.allclose(got, 1.0)

    before, after, batch = states[2], states[3], batches[2]
    specs = task_specs(TASKS, get_config().dataset.name)
    model = ToyNet({t: s.channels for t, s in specs.items()}, width=4)

    def task_loss(params, task):
        predictions = model.apply({"params": params}, batch["image"], train=True)
        return task_losses(specs, predictions, batch, edge_pos_weight=0.95)[task]

    grads = [jax.grad(task_loss)(before.params, t) for t in TASKS]  # unweighted, per task
    step_key = jax.random.fold_in(jax.random.wrap_key_data(before.rng), before.step)
    order = np.asarray(random_orders(step_key, 2))
    flat = lambda tree: np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)])  # noqa: E731
    for name in ("conv1", "conv2", "head_semseg", "head_depth"):
        new, old = after.params["backbone"][name], before.params["backbone"][name]
        moved = flat(jax.tree.map(lambda a, b: (a - b) / -LR, new, old))
        weighted = np.stack(
            [w * flat(g["backbone"][name]) for w, g in zip(dwa_weights, grads, strict=True)]
        )
        if name == "conv2":
            expected = _pcgrad_numpy(weighted, order)
        else:
            expected = weighted.sum(axis=0)
        np.testing.assert_allclose(moved, expected, rtol=2e-4, atol=2e-5 * np.abs(expected).max())


def _pcgrad_numpy(grads, order):
    """Yu et al. 2020, Algorithm 1."""
    out = np.zeros(grads.shape[1])
    for i in range(grads.shape[0]):
        g = grads[i].copy()
        for j in order[i]:
            if j != i and g @ grads[j] < 0:
                g = g - (g @ grads[j]) / (grads[j] @ grads[j]) * grads[j]
        out += g
    return out
