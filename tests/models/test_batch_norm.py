"""mtnets' BatchNorm against a NumPy transcription of batch normalisation and against Flax's.

Training mode normalises by the batch's own statistics over all but the last axis (variance
E[x^2] - E[x]^2, biased, floored at 0), updates the running statistics with Flax's momentum,
and its gradient is written out by hand; evaluation mode uses the running statistics.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtnets.models.layers import BatchNorm

EPS = 1e-5


def _numpy_batch_norm(x, scale, bias):
    x = x.astype(np.float64)
    mean = x.mean(axis=(0, 1, 2))
    var = np.maximum((x**2).mean(axis=(0, 1, 2)) - mean**2, 0.0)
    return (x - mean) / np.sqrt(var + EPS) * scale + bias, mean, var


def _inputs():
    rng = np.random.default_rng(0)
    x = rng.normal(1.0, 3.0, (2, 5, 6, 7)).astype(np.float32)
    params = {
        "scale": np.linspace(0.5, 2.0, 7, dtype=np.float32),
        "bias": np.linspace(-1.0, 1.0, 7, dtype=np.float32),
    }
    stats = {"mean": np.full(7, 0.3, np.float32), "var": np.full(7, 1.7, np.float32)}
    return x, params, stats


def test_training_mode_matches_numpy():
    x, params, stats = _inputs()
    y, updates = BatchNorm(use_running_average=False, momentum=0.9).apply(
        {"params": params, "batch_stats": stats}, x, mutable=["batch_stats"]
    )
    expected, mean, var = _numpy_batch_norm(x, params["scale"], params["bias"])
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(updates["batch_stats"]["mean"], 0.9 * 0.3 + 0.1 * mean, rtol=1e-6)
    np.testing.assert_allclose(updates["batch_stats"]["var"], 0.9 * 1.7 + 0.1 * var, rtol=1e-6)


def test_evaluation_mode_uses_the_running_statistics():
    x, params, stats = _inputs()
    y = BatchNorm(use_running_average=True).apply({"params": params, "batch_stats": stats}, x)
    expected = (x - 0.3) / np.sqrt(1.7 + EPS) * params["scale"] + params["bias"]
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_gradients_equal_flax_batch_norm(dtype):
    """The hand-written backward pass against automatic differentiation of Flax's module: the
    gradients of input, scale and bias, and the updated running statistics."""
    x, params, stats = _inputs()
    weights = np.random.default_rng(1).normal(size=x.shape).astype(np.float32)
    ours = BatchNorm(use_running_average=False, momentum=0.9, dtype=dtype)
    flax_bn = nn.BatchNorm(use_running_average=False, momentum=0.9, epsilon=EPS, dtype=dtype)

    def loss(module, params, x):
        y, updates = module.apply(
            {"params": params, "batch_stats": stats}, x, mutable=["batch_stats"]
        )
        return jnp.sum(jnp.sin(y.astype(jnp.float32)) * weights), updates

    grad = jax.value_and_grad(loss, argnums=(1, 2), has_aux=True)
    (value, updates), grads = grad(ours, params, jnp.asarray(x, dtype))
    (expected_value, expected_updates), expected_grads = grad(
        flax_bn, params, jnp.asarray(x, dtype)
    )
    output, _ = ours.apply(
        {"params": params, "batch_stats": stats}, jnp.asarray(x, dtype), mutable=["batch_stats"]
    )
    assert output.dtype == dtype
    np.testing.assert_allclose(value, expected_value, rtol=1e-6)
    tolerance = 1e-5 if dtype == jnp.float32 else 1e-2
    ours_leaves = jax.tree.leaves((grads, updates))
    for got, want in zip(
        ours_leaves, jax.tree.leaves((expected_grads, expected_updates)), strict=True
    ):
        np.testing.assert_allclose(
            np.asarray(got, np.float32),
            np.asarray(want, np.float32),
            rtol=tolerance,
            atol=tolerance,
        )


def test_variables_are_flax_batch_norms():
    """Same collections, names, shapes and initial values, so checkpoints and ported weights
    load unchanged."""
    x = jnp.ones((1, 2, 2, 5))
    ours = BatchNorm(use_running_average=False).init(jax.random.PRNGKey(0), x)
    flax_bn = nn.BatchNorm(use_running_average=False).init(jax.random.PRNGKey(0), x)
    assert jax.tree.structure(ours) == jax.tree.structure(flax_bn)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(flax_bn), strict=True):
        np.testing.assert_array_equal(a, b)
