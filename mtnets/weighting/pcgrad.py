"""PCGrad (Yu, Kumar, Gupta, Levine, Hausman and Finn, "Gradient Surgery for Multi-Task
Learning", NeurIPS 2020)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mtnets.weighting.base import Weighting, scale_by_state_weights
from mtnets.weighting.registry import Context, register


def pcgrad_combine(task_grads: jax.Array, order: jax.Array) -> jax.Array:
    """PCGrad's projection (Algorithm 1) of flat gradients `[T, P]` -> `[P]`.

    For each task i, `g_i' = g_i`, then for every other task j in the random `order`, if
    `g_i' . g_j < 0`: `g_i' -= (g_i' . g_j) / |g_j|^2 g_j`. The result is `sum_i g_i'`.
    `order` `[T, T]` holds, for each i, a permutation of the tasks (i itself is skipped).
    """
    num_tasks = task_grads.shape[0]

    def project_one(i: jax.Array, perm: jax.Array) -> jax.Array:
        def body(k, g):
            j = perm[k]
            other = task_grads[j]
            dot = jnp.dot(g, other)
            coef = dot / jnp.maximum(jnp.dot(other, other), 1e-20)
            conflict = (dot < 0) & (j != i)
            return jnp.where(conflict, g - coef * other, g)

        return jax.lax.fori_loop(0, num_tasks, body, task_grads[i])

    return jnp.sum(jax.vmap(project_one)(jnp.arange(num_tasks), order), axis=0)


def random_orders(key: jax.Array, num_tasks: int) -> jax.Array:
    """`[T, T]`: for each task, the order in which it meets the others (a permutation)."""
    keys = jax.random.split(key, num_tasks)
    return jax.vmap(lambda k: jax.random.permutation(k, num_tasks))(keys)


def pcgrad(num_tasks: int, shared_path: str = "backbone") -> Weighting:
    """On the shared parameters (`shared_path`, default the backbone) the gradient is the sum
    of the per-task gradients after projecting away their conflicting components
    (`pcgrad_combine`), in a random task order drawn from the step's key; the task-specific
    parameters get the plain sum. Alone, the task losses are unweighted (as LibMTL's `PCGrad`);
    chained after a weighting, PCGrad projects the weighted task gradients `w_t g_t`.
    """

    def surgery(state, weights, losses, task_grads, key):
        del state, losses
        leaves, treedef = jax.tree.flatten(task_grads)
        flat = jnp.concatenate([g.reshape(num_tasks, -1) for g in leaves], axis=1)
        flat = weights.astype(jnp.float32)[:, None] * flat.astype(jnp.float32)
        combined = pcgrad_combine(flat, random_orders(key, num_tasks))
        out, offset = [], 0
        for g in leaves:
            size = g[0].size
            out.append(combined[offset : offset + size].reshape(g.shape[1:]).astype(g.dtype))
            offset += size
        return jax.tree.unflatten(treedef, out), None

    ones = jnp.ones((num_tasks,), jnp.float32)
    return Weighting(
        num_tasks=num_tasks,
        init=lambda: {"weights": ones},  # kept (always 1) so that old checkpoints restore
        weigh=scale_by_state_weights,
        surgery=surgery,
        shared_path=shared_path,
    )


@register("pcgrad", shared_path="backbone")
def build(cfg, ctx: Context) -> Weighting:
    """`shared_path`: the parameters whose task gradients are projected."""
    return pcgrad(len(ctx.tasks), str(cfg.shared_path))
