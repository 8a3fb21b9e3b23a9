"""GradNorm (Chen, Badrinarayanan, Lee and Rabinovich, "GradNorm: Gradient Normalization for
Adaptive Loss Balancing in Deep Multitask Networks", ICML 2018, Eq. 1-2 and Algorithm 1)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from mtnets.weighting.base import AUTO_PATH, State, Weighting
from mtnets.weighting.registry import Context, register

# The asymmetry of the paper's NYUv2 experiments (Sec. 5).
GRADNORM_ALPHA = 1.5


def task_grad_norms(task_grads: Any) -> jax.Array:
    """`[T]` L2 norms of the per-task gradients (every leaf has a leading `[T]` axis)."""
    squares = [
        jnp.sum(jnp.square(g.reshape(g.shape[0], -1)), axis=1) for g in jax.tree.leaves(task_grads)
    ]
    return jnp.sqrt(sum(squares))


def gradnorm_weight_gradient(
    weights: jax.Array, grad_norms: jax.Array, losses: jax.Array, initial: jax.Array, alpha: float
) -> jax.Array:
    """d L_grad / d w of GradNorm (Eq. 1-2), the targets held constant.

    `G_i = w_i |grad_W L_i|`, `r_i = (L_i / L_i(0)) / mean_j (L_j / L_j(0))`,
    `L_grad = sum_i |G_i - mean(G) r_i^alpha|`; the target `mean(G) r_i^alpha` is a constant
    (the paper: "we hold the target constant"), so `dL_grad/dw_i = sign(G_i - target_i) |g_i|`.
    """

    def loss_grad(w: jax.Array) -> jax.Array:
        g = w * grad_norms
        inverse_rate = losses / initial
        r = inverse_rate / jnp.mean(inverse_rate)
        target = jax.lax.stop_gradient(jnp.mean(g) * r**alpha)
        return jnp.sum(jnp.abs(g - target))

    return jax.grad(loss_grad)(weights)


def gradnorm(
    num_tasks: int, alpha: float = GRADNORM_ALPHA, shared_path: str = AUTO_PATH
) -> Weighting:
    """The weights `w` (init 1, `state["params"]`) are trained by the model's optimizer with
    the gradient of `L_grad`, computed from the per-task gradient norms on the parameters
    under `shared_path` (the paper's W, "the last shared layer"), and renormalised to
    `sum_i w_i = T` after each step. `L_i(0)` are the losses of the first step. The model
    gradient is that of `sum_i w_i L_i` with `w` held constant.
    """

    def init() -> State:
        return {
            "params": {"weights": jnp.ones((num_tasks,), jnp.float32)},
            "initial_losses": jnp.ones((num_tasks,), jnp.float32),
            "started": jnp.zeros((), bool),
        }

    def weigh(trainable: Any, state: State, losses: jax.Array) -> jax.Array:
        del state
        return jax.lax.stop_gradient(trainable["weights"]) * losses

    def surgery(state, weights, losses, task_grads, key):
        del weights, key  # its own weights, on the unweighted task gradients
        initial = jnp.where(state["started"], state["initial_losses"], losses)
        w = state["params"]["weights"]
        grad = gradnorm_weight_gradient(w, task_grad_norms(task_grads), losses, initial, alpha)
        return None, {"weights": grad}

    def update(state: State, losses: jax.Array, new_losses: jax.Array | None = None) -> State:
        del new_losses
        w = jnp.maximum(state["params"]["weights"], 0.0)  # keeps the renormalisation positive
        w = num_tasks * w / jnp.maximum(jnp.sum(w), 1e-12)
        return {
            **state,
            "params": {"weights": w},
            "initial_losses": jnp.where(state["started"], state["initial_losses"], losses),
            "started": jnp.ones((), bool),
        }

    return Weighting(
        num_tasks=num_tasks,
        init=init,
        weigh=weigh,
        update=update,
        surgery=surgery,
        shared_path=shared_path,
    )


@register("gradnorm", alpha=GRADNORM_ALPHA, shared_path="auto")  # "auto": base.AUTO_PATH
def build(cfg, ctx: Context) -> Weighting:
    """`alpha`: the asymmetry; `shared_path`: W (see `base.resolve_path`)."""
    return gradnorm(len(ctx.tasks), float(cfg.alpha), str(cfg.shared_path))
