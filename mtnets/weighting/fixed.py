"""Fixed weights, `L = sum_t w_t L_t`: MTL's `MultiTaskLoss` (Vandenhende et al.)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax.numpy as jnp

from mtnets.weighting.base import Weighting, scale_by_state_weights
from mtnets.weighting.registry import Context, register


def fixed(weights: Sequence[float]) -> Weighting:
    """Constant weights; they are state (data), so other weights never recompile the step."""
    initial = jnp.asarray(weights, jnp.float32)
    return Weighting(
        num_tasks=len(initial), init=lambda: {"weights": initial}, weigh=scale_by_state_weights
    )


@register("fixed", weights={})
def build(cfg, ctx: Context) -> Weighting:
    """`weights`: {task: weight}, one for every task that has a loss."""
    return fixed(task_weights(cfg.weights, ctx.tasks))


def task_weights(table: Mapping[str, float], tasks: Sequence[str]) -> list[float]:
    missing = [t for t in tasks if t not in table]
    if missing:
        raise ValueError(f"config.weighting.fixed.weights has no weight for task(s) {missing}.")
    return [float(table[t]) for t in tasks]
