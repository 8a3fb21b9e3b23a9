"""Homoscedastic uncertainty weighting (Kendall, Gal and Cipolla, "Multi-Task Learning Using
Uncertainty to Weigh Losses for Scene Geometry and Semantics", CVPR 2018), in lorenmt's form."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from mtnets.weighting.base import State, Weighting
from mtnets.weighting.registry import Context, register

# lorenmt/mtan initialises its `logsigma` parameter at -0.5 for every task.
UNCERTAINTY_INIT = -0.5


def uncertainty(num_tasks: int, init_value: float = UNCERTAINTY_INIT) -> Weighting:
    """`L = sum_i L_i / (2 exp(s_i)) + s_i / 2`, the log-variances `s` (`state["params"]`)
    trained by the model's optimizer. The weight of task i is `1 / (2 exp(s_i))`. The total
    goes negative once the s_i do, which is expected (MTAN issue 51)."""

    def init() -> State:
        return {"params": {"log_vars": jnp.full((num_tasks,), init_value, jnp.float32)}}

    def weigh(trainable: Any, state: State, losses: jax.Array) -> jax.Array:
        del state
        s = trainable["log_vars"]
        return losses * 0.5 * jnp.exp(-s) + 0.5 * s

    return Weighting(num_tasks=num_tasks, init=init, weigh=weigh)


@register("uncertainty", init=UNCERTAINTY_INIT)
def build(cfg, ctx: Context) -> Weighting:
    """`init`: the initial log-variance of every task."""
    return uncertainty(len(ctx.tasks), float(cfg.init))
