"""Dynamic Weight Average (Liu, Johns and Davison, "End-to-End Multi-Task Learning with
Attention", CVPR 2019, Eq. 7), exactly as lorenmt/mtan's `im2im_pred/utils.py`."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mtnets.weighting.base import State, Weighting, scale_by_state_weights
from mtnets.weighting.registry import Context, register

# lorenmt/mtan's `--temp` default.
DWA_TEMPERATURE = 2.0


def dwa(num_tasks: int, period: int, temperature: float = DWA_TEMPERATURE) -> Weighting:
    """DWA over `num_tasks` losses, with an "epoch" of `period` steps.

    The state carries the running sum of the *unweighted* training losses of the current epoch
    (`sums [T]`, `count`), the means of the last two epochs (`means [2, T]`, oldest first), the
    number of finished epochs and the current weights. After `period` steps the epoch mean
    enters `means` and, once two epochs are done, `lambda_k = K * softmax(w / T)_k` with
    `w_k = mean_k(e-1) / mean_k(e-2)`; before that the weights are 1. Within an epoch the
    weights are constant (lorenmt computes them once per epoch).
    """
    if period < 1:
        raise ValueError(f"DWA needs an update period of at least 1 step, got {period}.")
    if temperature <= 0:
        raise ValueError(f"config.weighting.dwa.temperature must be > 0, got {temperature}.")

    def init() -> State:
        return {
            "sums": jnp.zeros((num_tasks,), jnp.float32),
            "count": jnp.zeros((), jnp.int32),
            "means": jnp.ones((2, num_tasks), jnp.float32),
            "epochs": jnp.zeros((), jnp.int32),
            "weights": jnp.ones((num_tasks,), jnp.float32),
        }

    def update(state: State, losses: jax.Array, new_losses: jax.Array | None = None) -> State:
        del new_losses
        sums = state["sums"] + losses.astype(jnp.float32)
        count = state["count"] + 1
        done = count >= period
        mean = sums / count.astype(jnp.float32)  # lorenmt: the epoch mean of the batch losses
        means = jnp.where(done, jnp.stack([state["means"][1], mean]), state["means"])
        epochs = state["epochs"] + done.astype(jnp.int32)
        ratio = means[1] / means[0]
        dynamic = num_tasks * jax.nn.softmax(ratio / temperature)
        weights = jnp.where(done & (epochs >= 2), dynamic, state["weights"])
        return {
            "sums": jnp.where(done, 0.0, sums),
            "count": jnp.where(done, 0, count),
            "means": means,
            "epochs": epochs,
            "weights": weights,
        }

    return Weighting(num_tasks=num_tasks, init=init, weigh=scale_by_state_weights, update=update)


@register("dwa", temperature=DWA_TEMPERATURE, update_every_steps=0)
def build(cfg, ctx: Context) -> Weighting:
    """`temperature`: T; `update_every_steps`: the period, 0 = one epoch of the train split."""
    period = int(cfg.update_every_steps)
    if period <= 0:
        if not ctx.steps_per_epoch:
            raise ValueError(
                "DWA updates its weights every epoch, so it needs steps_per_epoch (train "
                "examples // global batch size), or set config.weighting.dwa.update_every_steps."
            )
        period = int(ctx.steps_per_epoch)
    return dwa(len(ctx.tasks), period, float(cfg.temperature))
