"""The train state: everything a run needs to continue, in one pytree that orbax saves whole."""

from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from mtnets.weighting import base as weighting_lib


@flax.struct.dataclass
class TrainState:
    """step, model variables, optimizer state, loss-weighting state and the base PRNG key.

    `rng` holds raw key data (`jax.random.key_data`), which orbax saves like any array; the key
    of step `s` is `fold_in(wrap_key_data(rng), s)`, so resuming at `s` reproduces the run.
    """

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any
    weighting: Any
    rng: jax.Array

    def variables(self) -> dict[str, Any]:
        """The variables `model.apply` takes."""
        return {"params": self.params, "batch_stats": self.batch_stats}

    def step_key(self) -> jax.Array:
        return jax.random.fold_in(jax.random.wrap_key_data(self.rng), self.step)


def create_train_state(model, tx: optax.GradientTransformation, weighting, image_shape, seed: int):
    """A fresh state. Pure, so that `jax.jit(..., out_shardings=...)` can place it directly."""
    rng = jax.random.key(seed)
    init_rng, dropout_rng, state_rng = jax.random.split(rng, 3)
    images = jnp.zeros((1, *image_shape), jnp.float32)
    variables = model.init({"params": init_rng, "dropout": dropout_rng}, images, train=False)
    params = variables["params"]
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        batch_stats=variables.get("batch_stats", {}),
        opt_state=tx.init(params),
        weighting=weighting_lib.initial_state(weighting, tx),
        rng=jax.random.key_data(state_rng),
    )
