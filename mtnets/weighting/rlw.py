"""Random Loss Weighting (Lin, Ye, Xu, Shi and Zhang, "Reasonable Effectiveness of Random
Weighting: A Litmus Test for Multi-Task Learning", TMLR 2022), as LibMTL's `RLW`."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mtnets.weighting.base import State, Weighting, scale_by_state_weights
from mtnets.weighting.registry import Context, register


def rlw(num_tasks: int, seed: int = 0) -> Weighting:
    """Every step the weights are `softmax(z)`, `z ~ N(0, I_T)`. The state holds the weights of
    the next step and a counter; the draw of step s uses `fold_in(key(seed), s)`, so a resumed
    run draws the same weights."""

    def draw(count: jax.Array) -> jax.Array:
        key = jax.random.fold_in(jax.random.key(seed), count)
        return jax.nn.softmax(jax.random.normal(key, (num_tasks,), jnp.float32))

    def init() -> State:
        count = jnp.zeros((), jnp.int32)
        return {"weights": draw(count), "count": count}

    def update(state: State, losses: jax.Array, new_losses: jax.Array | None = None) -> State:
        del losses, new_losses
        count = state["count"] + 1
        return {"weights": draw(count), "count": count}

    return Weighting(num_tasks=num_tasks, init=init, weigh=scale_by_state_weights, update=update)


@register("rlw")
def build(cfg, ctx: Context) -> Weighting:
    """Draws from `config.weighting.seed` (None: `config.seed`)."""
    del cfg
    return rlw(len(ctx.tasks), ctx.seed)
