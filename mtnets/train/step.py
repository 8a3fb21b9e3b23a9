"""The train and eval steps: pure functions of (state, batch), compiled once by `compile_steps`.

Neither imports TensorFlow, so they run on machines that have only JAX.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import optax
from clu import metrics as clu_metrics

from mtnets import loss_schemes, sharding
from mtnets import losses as losses_lib
from mtnets import metrics as metrics_lib
from mtnets.data import resize as resize_lib
from mtnets.tasks import TaskSpec, task_specs
from mtnets.train.state import TrainState
from mtnets.weighting import base as weighting_lib


def task_losses(
    specs: Mapping[str, TaskSpec],
    predictions,
    batch,
    *,
    edge_pos_weight: float,
    convention: str = "mtl",
):
    """Unweighted loss of every task, float32, over its valid pixels of the real examples."""
    out = {}
    for name, spec in specs.items():
        target = batch[name]
        mask = spec.valid_mask(target) & batch["mask"][:, None, None]
        out[name] = losses_lib.task_loss(
            spec,
            predictions[name],
            target,
            mask,
            edge_pos_weight=edge_pos_weight,
            convention=convention,
        )
    return out


def train_step(
    state: TrainState,
    batch,
    *,
    model,
    tx,
    weighting: weighting_lib.Weighting,
    specs,
    edge_pos_weight,
    loss_convention: str = "mtl",
    loss_tasks: Sequence[str] | None = None,
    losses_fn: Callable | None = None,
):
    """One optimizer step on the weighted combination of task losses.

    `loss_tasks` (default: the tasks of `specs`) orders the losses the weighting sees.
    `losses_fn(predictions, batch) -> {task: scalar}` replaces `task_losses` over `specs` (e.g.
    `mtnets.loss_schemes.task_losses` over main + auxiliary tasks with intermediate
    predictions); it must return every task of `loss_tasks`.

    The weighting (`mtnets.weighting.base`) decides the gradient: the VJP of the stacked losses
    is pulled back with the task weights `d total / d losses`. Its trainable parameters, if any,
    are updated by the same optimizer `tx`. A weighting with a `surgery` hook gets the per-task
    gradients of the parameters under its `shared_path` (one backward pass per task, a `vmap`
    over the VJP); one that `needs_new_losses` gets the losses of the same batch after the
    step (one more forward pass, without gradients).

    Returns the new state and per-step scalars: `loss` (the differentiated total) and, per task,
    `loss/<task>` (unweighted) and `weight/<task>` (the weight applied in this step).
    """
    tasks = list(loss_tasks) if loss_tasks is not None else list(specs)
    wstate = state.weighting
    trainable = weighting_lib.trainable_params(wstate)
    key = state.step_key()

    def forward(params):
        predictions, updates = model.apply(
            {"params": params, "batch_stats": state.batch_stats},
            batch["image"],
            train=True,
            mutable=["batch_stats"],
            rngs={"dropout": key},
        )
        if losses_fn is None:
            per_task = task_losses(
                specs,
                predictions,
                batch,
                edge_pos_weight=edge_pos_weight,
                convention=loss_convention,
            )
        else:
            per_task = losses_fn(predictions, batch)
        return jnp.stack([per_task[t] for t in tasks]), updates

    losses, vjp_fn, updates = jax.vjp(forward, state.params, has_aux=True)
    # The weights are the gradient of the total with respect to the losses.
    total_fn = jax.value_and_grad(weighting.total, argnums=(0, 2))
    total, (trainable_grads, weights) = total_fn(trainable, wstate, losses)
    if weighting.surgery is None:
        (grads,) = vjp_fn(weights)
    else:
        grads, surgery_grads = _surgery_gradients(
            vjp_fn, state.params, weighting, wstate, weights, losses, key
        )
        trainable_grads = weighting_lib.override(trainable_grads, surgery_grads)

    param_updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, param_updates)
    losses = jax.lax.stop_gradient(losses)
    new_losses = None
    if weighting.needs_new_losses:
        # Same batch and dropout key, so the change is the step's; the batch-norm statistics
        # of this pass are discarded (the step already updated them once).
        new_losses = jax.lax.stop_gradient(forward(params)[0])
    wstate = weighting_lib.apply_gradients(wstate, trainable_grads, tx)
    new_state = state.replace(
        step=state.step + 1,
        params=params,
        batch_stats=updates.get("batch_stats", state.batch_stats),
        opt_state=opt_state,
        weighting=weighting.update(wstate, losses, new_losses),
    )
    scalars = {"loss": total}
    for i, task in enumerate(tasks):
        scalars[f"loss/{task}"] = losses[i]
        scalars[f"weight/{task}"] = weights[i]
    return new_state, scalars


def _surgery_gradients(vjp_fn, params, weighting, wstate, weights, losses, key):
    """Model gradients, and the surgery's trainable-parameter gradients (or None).

    The VJP of the stacked losses `[T]` is pulled back once per task (`vmap` over the rows of
    the identity), which gives the per-task gradients `[T, ...]` of every parameter. The model
    gradient is `sum_t w_t g_t`, except under `shared_path` where the hook may replace it
    (PCGrad).
    """
    num_tasks = losses.shape[0]
    (task_grads,) = jax.vmap(vjp_fn)(jnp.eye(num_tasks, dtype=losses.dtype))
    grads = jax.tree.map(lambda g: jnp.tensordot(weights, g, axes=1).astype(g.dtype), task_grads)
    path = weighting_lib.resolve_path(params, weighting.shared_path)
    shared_grad, trainable_grads = weighting.surgery(
        wstate, weights, losses, weighting_lib.get_path(task_grads, path), key
    )
    if shared_grad is not None:
        grads = weighting_lib.set_path(grads, path, shared_grad)
    return grads, trainable_grads


def eval_step(state: TrainState, batch, *, model, specs):
    """Predictions and clu metrics of one (possibly padded) batch.

    When the batch carries `orig_size` (PASCAL evaluation: labels at each image's original size
    padded to a canvas), predictions are first resized back to the original size, as the
    reference evaluates, and the canvas padding is masked out.
    """
    predictions = model.apply(state.variables(), batch["image"], train=False)
    predictions = {name: predictions[name] for name in specs}
    region = None
    if "orig_size" in batch:
        canvas = batch[next(iter(specs))].shape[1:3]
        predictions = resize_lib.resize_predictions(predictions, batch["orig_size"], canvas)
        region = resize_lib.canvas_mask(batch["orig_size"], canvas)
    task_metrics = {}
    for name, spec in specs.items():
        target = batch[name]
        mask = spec.valid_mask(target) & batch["mask"][:, None, None]
        if region is not None:  # sal and edge have no ignore value: mask the padding
            mask = mask & region
        task_metrics[name] = metrics_lib.metric_for(spec).from_model_output(
            predictions[name], target, mask
        )
    return task_metrics, predictions


def compile_steps(
    model,
    tx,
    weighting,
    specs: Mapping[str, TaskSpec],
    mesh,
    state_shardings,
    *,
    edge_pos_weight: float = 0.95,
    loss_convention: str = "mtl",
    loss_tasks: Sequence[str] | None = None,
    losses_fn: Callable | None = None,
):
    """`jax.jit`-compiled train and eval steps with the batch split over the mesh's `data` axis.

    The train step donates the incoming state, so a step updates it in place in device memory.
    `loss_convention` ("mtl" or "lorenmt") picks the task losses; `loss_tasks` the order of the
    losses the weighting sees (default: the tasks of `specs`); `losses_fn` see `train_step`.
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
            loss_convention=loss_convention,
            loss_tasks=None if loss_tasks is None else tuple(loss_tasks),
            losses_fn=losses_fn,
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


def trained_tasks(config) -> tuple[str, ...]:
    """The tasks that carry a loss: `config.tasks`, then the auxiliary ones, each once."""
    return tuple(dict.fromkeys((*config.tasks, *config.aux_tasks)))


def compile_config_steps(config, model, tx, weighting, mesh, state_shardings):
    """`compile_steps` as `config` trains: every task of `trained_tasks(config)` gets its loss
    over its final and intermediate predictions (`mtnets.loss_schemes`), in the configured loss
    convention, and `config.tasks` are evaluated. `train.py` and the benchmarks both use this,
    so a benchmark times the step that training runs."""
    loss_fn = functools.partial(
        losses_lib.task_loss,
        edge_pos_weight=config.loss.edge_pos_weight,
        convention=config.loss.convention,
    )
    loss_specs = task_specs(trained_tasks(config), config.dataset.name)
    return compile_steps(
        model,
        tx,
        weighting,
        task_specs(config.tasks, config.dataset.name),
        mesh,
        state_shardings,
        loss_tasks=tuple(loss_specs),
        losses_fn=functools.partial(loss_schemes.task_losses, loss_specs, loss_fn=loss_fn),
    )


def mean_scalars(history: Sequence[Mapping[str, jax.Array]]) -> dict[str, float]:
    """Averages per-step scalars over the steps since the last log (clu `Average`)."""
    totals: dict[str, clu_metrics.Average] = {}
    for scalars in history:
        for name, value in scalars.items():
            metric = clu_metrics.Average.from_model_output(value)
            totals[name] = totals[name].merge(metric) if name in totals else metric
    return {name: float(metric.compute()) for name, metric in totals.items()}
