"""FAMO against a NumPy transcription of the paper's update (Liu et al., NeurIPS 2023)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtnets.weighting import famo

EPS = 1e-8  # the authors' code adds 1e-8 to every loss before its logarithm


def famo_numpy(losses_fn, grads_fn, theta, steps, lr, beta, gamma, optimizer):
    """The paper's loop, written out: model step on `c sum z_i log l_i`, one more evaluation
    of the losses, then a step of the logits xi on `J_softmax^T delta + gamma xi` (Adam as the
    authors' code, with torch's coupled weight decay; or Algorithm 1's plain step)."""
    num_tasks = len(losses_fn(theta))
    xi, m, v = np.zeros(num_tasks), np.zeros(num_tasks), np.zeros(num_tasks)
    weights, logits = [], []
    for t in range(1, steps + 1):
        loss = losses_fn(theta) + EPS
        z = np.exp(xi) / np.exp(xi).sum()
        c = 1.0 / np.sum(z / loss)
        w = c * z / loss  # d(c sum z_i log l_i)/dl_i, c held constant
        theta = theta - lr * np.einsum("t,tp->p", w, grads_fn(theta))
        delta = np.log(loss) - np.log(losses_fn(theta) + EPS)
        jacobian = np.diag(z) - np.outer(z, z)  # d softmax / d xi (symmetric)
        g = jacobian.T @ delta + gamma * xi
        if optimizer == "adam":
            m = 0.9 * m + 0.1 * g
            v = 0.999 * v + 0.001 * g**2
            xi = xi - beta * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
        else:
            xi = xi - beta * g
        weights.append(w)
        logits.append(xi)
    return np.stack(weights), np.stack(logits)


def _problem(seed=0, num_tasks=3, dim=4):
    """Least-squares tasks with different curvatures, so that their losses fall at different
    rates; 0.1 keeps every loss away from 0."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(num_tasks, 6, dim)) * np.array([0.3, 1.0, 2.0])[:num_tasks, None, None]
    b = rng.normal(size=(num_tasks, 6))

    def losses(theta):
        r = np.einsum("tij,j->ti", a, theta) - b
        return 0.5 * np.mean(r**2, axis=1) + 0.1

    def grads(theta):
        r = np.einsum("tij,j->ti", a, theta) - b
        return np.einsum("tij,ti->tj", a, r) / r.shape[1]

    return losses, grads, rng.normal(size=dim)


@pytest.mark.parametrize("optimizer, gamma", [("adam", 1e-3), ("sgd", 0.05)])
def test_famo_weights_and_logits_match_the_paper(optimizer, gamma):
    losses_fn, grads_fn, theta0 = _problem()
    lr, beta, steps = 0.2, 0.025 if optimizer == "adam" else 5.0, 8
    expected_w, expected_xi = famo_numpy(
        losses_fn, grads_fn, theta0, steps, lr, beta, gamma, optimizer
    )
    strategy = famo.famo(3, lr=beta, gamma=gamma, optimizer=optimizer)
    weights_fn, update = jax.jit(strategy.weights), jax.jit(strategy.update)
    state, theta = strategy.init(), theta0
    got_w, got_xi = [], []
    for _ in range(steps):
        loss = jnp.asarray(losses_fn(theta), jnp.float32)
        w = np.asarray(weights_fn(state, loss), np.float64)
        theta = theta - lr * np.einsum("t,tp->p", w, grads_fn(theta))
        state = update(state, loss, jnp.asarray(losses_fn(theta), jnp.float32))
        got_w.append(w)
        got_xi.append(np.asarray(state["logits"]))
    np.testing.assert_allclose(np.stack(got_w), expected_w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.stack(got_xi), expected_xi, rtol=1e-5, atol=1e-6)
    assert np.ptp(expected_xi[-1]) > 1e-2  # the logits really moved apart
    np.testing.assert_allclose(np.stack(got_w).sum(axis=1), 1.0, rtol=1e-6)


def test_famo_total_is_c_times_weighted_log_losses():
    strategy = famo.famo(3)
    state = strategy.init()
    state = {**state, "logits": jnp.asarray([0.3, -0.2, 0.1])}
    losses = np.array([0.5, 2.0, 0.05])
    z = np.exp([0.3, -0.2, 0.1]) / np.exp([0.3, -0.2, 0.1]).sum()
    c = 1 / np.sum(z / (losses + EPS))
    total = strategy.total({}, state, jnp.asarray(losses, jnp.float32))
    np.testing.assert_allclose(total, c * np.sum(z * np.log(losses + EPS)), rtol=1e-6)


def test_famo_update_needs_the_losses_after_the_step():
    strategy = famo.famo(2)
    with pytest.raises(ValueError, match="new_losses"):
        strategy.update(strategy.init(), jnp.ones(2))
    with pytest.raises(ValueError, match="config.weighting.famo.optimizer"):
        famo.famo(2, optimizer="rmsprop")
