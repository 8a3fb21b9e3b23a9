"""The train and eval steps: pure functions of (state, batch), compiled once by `compile_steps`.

Neither imports TensorFlow, so they run on machines that have only JAX.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import optax
from clu import metrics as clu_metrics

from mtnets import losses as losses_lib
from mtnets import metrics as metrics_lib
from mtnets import sharding
from mtnets.tasks import TaskSpec
from mtnets.train.state import TrainState


def task_losses(specs: Mapping[str, TaskSpec], predictions, batch, *, edge_pos_weight: float):
    """Unweighted loss of every task, float32, over its valid pixels of the real examples."""
    out = {}
    for name, spec in specs.items():
        target = batch[name]
        mask = spec.valid_mask(target) & batch["mask"][:, None, None]
        out[name] = losses_lib.task_loss(
            spec, predictions[name], target, mask, edge_pos_weight=edge_pos_weight
        )
    return out


def train_step(state: TrainState, batch, *, model, tx, weighting, specs, edge_pos_weight):
    """One optimizer step on the weighted sum of task losses.

    Returns the new state and per-step scalars: `loss` (weighted total) and, per task,
    `loss/<task>` (unweighted) and `weight/<task>`.
    """
    tasks = list(specs)

    def loss_fn(params):
        predictions, updates = model.apply(
            {"params": params, "batch_stats": state.batch_stats},
            batch["image"],
            train=True,
            mutable=["batch_stats"],
            rngs={"dropout": state.step_key()},
        )
        per_task = task_losses(specs, predictions, batch, edge_pos_weight=edge_pos_weight)
        losses = jnp.stack([per_task[t] for t in tasks])
        weights = weighting.weights(state.weighting)
        return jnp.sum(weights * losses), (losses, weights, updates)

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    (total, (losses, weights, updates)), grads = grad_fn(state.params)
    param_updates, opt_state = tx.update(grads, state.opt_state, state.params)
    new_state = state.replace(
        step=state.step + 1,
        params=optax.apply_updates(state.params, param_updates),
        batch_stats=updates.get("batch_stats", state.batch_stats),
        opt_state=opt_state,
        weighting=weighting.update(state.weighting, jax.lax.stop_gradient(losses)),
    )
    scalars = {"loss": total}
    for i, task in enumerate(tasks):
        scalars[f"loss/{task}"] = losses[i]
        scalars[f"weight/{task}"] = weights[i]
    return new_state, scalars


def eval_step(state: TrainState, batch, *, model, specs):
    """Predictions and clu metrics of one (possibly padded) batch."""
    predictions = model.apply(state.variables(), batch["image"], train=False)
    task_metrics = {}
    for name, spec in specs.items():
        target = batch[name]
        mask = spec.valid_mask(target) & batch["mask"][:, None, None]
        task_metrics[name] = metrics_lib.metric_for(spec).from_model_output(
            predictions[name], target, mask
        )
    return task_metrics, {name: predictions[name] for name in specs}


def compile_steps(
    model,
    tx,
    weighting,
    specs: Mapping[str, TaskSpec],
    mesh,
    state_shardings,
    *,
    edge_pos_weight: float = 0.95,
):
    """`jax.jit`-compiled train and eval steps with the batch split over the mesh's `data` axis.

    The train step donates the incoming state, so a step updates it in place in device memory.
    """
    batch = sharding.batch_sharding(mesh)
    repl = sharding.replicated(mesh)
    train = jax.jit(
        functools.partial(
            train_step,
            model=model,
            tx=tx,
            weighting=weighting,
            specs=specs,
            edge_pos_weight=edge_pos_weight,
        ),
        in_shardings=(state_shardings, batch),
        out_shardings=(state_shardings, repl),
        donate_argnums=0,
    )
    evaluate = jax.jit(
        functools.partial(eval_step, model=model, specs=specs),
        in_shardings=(state_shardings, batch),
        out_shardings=(repl, batch),
    )
    return train, evaluate


def mean_scalars(history: Sequence[Mapping[str, jax.Array]]) -> dict[str, float]:
    """Averages per-step scalars over the steps since the last log (clu `Average`)."""
    totals: dict[str, clu_metrics.Average] = {}
    for scalars in history:
        for name, value in scalars.items():
            metric = clu_metrics.Average.from_model_output(value)
            totals[name] = totals[name].merge(metric) if name in totals else metric
    return {name: float(metric.compute()) for name, metric in totals.items()}
