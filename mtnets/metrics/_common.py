"""Small helpers shared by the metrics: exact counting and division that tolerates zero."""

from __future__ import annotations

import jax.numpy as jnp


def safe_divide(numerator: jnp.ndarray, denominator: jnp.ndarray) -> jnp.ndarray:
    """`numerator / denominator` in float32, and 0 where the denominator is 0.

    An empty accumulator (no valid pixel, no image) then reports 0 instead of NaN, which keeps
    the results JSON-friendly.
    """
    numerator = jnp.asarray(numerator, jnp.float32)
    denominator = jnp.asarray(denominator, jnp.float32)
    nonzero = denominator != 0
    return jnp.where(nonzero, numerator / jnp.where(nonzero, denominator, 1.0), 0.0)


def masked_bincount(index: jnp.ndarray, mask: jnp.ndarray, length: int) -> jnp.ndarray:
    """int32 `[length]` counts of the values of `index` (in `[0, length)`) where `mask` holds.

    Masked-out entries go to an extra dump bin that is dropped, so `index` may hold anything
    there. A scatter-add into a static number of bins: exact in int32 and partitioned by XLA
    when the inputs are sharded inside `jit`.
    """
    index = jnp.where(mask, index, length).astype(jnp.int32).reshape(-1)
    return jnp.bincount(index, length=length + 1)[:length].astype(jnp.int32)
