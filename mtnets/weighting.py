"""Loss weighting: how the per-task losses are combined into the one that is differentiated.

A strategy is a pair of pure functions over a state that the TrainState carries (so it is
checkpointed and resumed with the model):

    state = strategy.init()
    weights = strategy.weights(state)        # float32 [T], in the order of config.tasks
    state = strategy.update(state, losses)   # after each step, from the unweighted losses [T]

Weights are data, never Python constants baked into the compiled step, so a strategy whose
weights change (or a new set of fixed weights) does not recompile the train step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp

State = Any

STRATEGIES = ("fixed", "equal")


@dataclasses.dataclass(frozen=True)
class Weighting:
    """A loss-weighting strategy: pure `init`, `weights` and `update` over a carried state."""

    init: Callable[[], State]
    weights: Callable[[State], jax.Array]
    update: Callable[[State, jax.Array], State]


def fixed(weights: Sequence[float]) -> Weighting:
    """Constant weights, `L = sum_t w_t L_t` (MTL `MultiTaskLoss`, REFERENCE.md §4.3)."""
    initial = jnp.asarray(weights, jnp.float32)
    return Weighting(
        init=lambda: {"weights": initial},
        weights=lambda state: state["weights"],
        update=lambda state, losses: state,
    )


def create_weighting(config, tasks: Sequence[str]) -> Weighting:
    """The strategy `config.weighting.name` over `tasks` (the losses' order)."""
    name = config.weighting.name
    if name == "equal":
        return fixed([1.0] * len(tasks))
    if name == "fixed":
        return fixed(_fixed_weights(config.weighting.weights, tasks))
    raise ValueError(
        f"Unknown config.weighting.name {name!r}; choose one of {', '.join(STRATEGIES)}."
    )


def _fixed_weights(table: Mapping[str, float], tasks: Sequence[str]) -> list[float]:
    missing = [t for t in tasks if t not in table]
    if missing:
        raise ValueError(f"config.weighting.weights has no weight for task(s) {missing}.")
    return [float(table[t]) for t in tasks]
