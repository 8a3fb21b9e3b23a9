"""FAMO (Liu, Liu, Liu, Stone and Liu, "FAMO: Fast Adaptive Multitask Optimization",
NeurIPS 2023): balances the rates at which the task losses fall, from the loss values alone.

Per step, with task logits xi (state) and task weights `z = softmax(xi)`:

- the model descends `c sum_i z_i log(l_i)`, `c = (sum_j z_j / l_j)^-1` held constant, i.e.
  the task gradients weighted by `c z_i / l_i` (weights that sum to 1);
- after the model's step, one forward pass without gradients on the same batch gives `l'_i`,
  and xi takes a step of its own optimizer on `J_softmax(xi)^T delta + gamma xi`, with
  `delta_i = log l_i - log l'_i` (how much task i fell): tasks that fell fast lose weight.

Losses enter as `l - min_loss + eps` (the authors' lower bound, 0, and 1e-8). The authors'
code steps xi with Adam (lr beta, coupled weight decay gamma: torch's `Adam(weight_decay=)`);
the paper's Algorithm 1 with plain gradient steps is `optimizer="sgd"`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from mtnets.weighting.base import State, Weighting
from mtnets.weighting.registry import Context, register


def logit_optimizer(name: str, lr: float, gamma: float) -> optax.GradientTransformation:
    """The optimizer of the task logits: coupled weight decay gamma, then Adam or SGD."""
    steps = {"adam": optax.adam, "sgd": optax.sgd}
    if name not in steps:
        raise ValueError(f"config.weighting.famo.optimizer must be adam or sgd, got {name!r}.")
    return optax.chain(optax.add_decayed_weights(gamma), steps[name](lr))


def famo(
    num_tasks: int,
    *,
    lr: float = 0.025,
    gamma: float = 1e-3,
    min_loss: float = 0.0,
    eps: float = 1e-8,
    optimizer: str = "adam",
) -> Weighting:
    """FAMO over `num_tasks` losses (see the module docstring); `lr` is the paper's beta."""
    tx = logit_optimizer(optimizer, lr, gamma)

    def shifted(losses: jax.Array) -> jax.Array:
        return losses - min_loss + eps

    def init() -> State:
        logits = jnp.zeros((num_tasks,), jnp.float32)
        return {"logits": logits, "logit_opt_state": tx.init(logits)}

    def weigh(trainable, state: State, losses: jax.Array) -> jax.Array:
        del trainable
        z = jax.nn.softmax(state["logits"])
        d = shifted(losses)
        c = jax.lax.stop_gradient(1.0 / jnp.sum(z / d))
        return c * z * jnp.log(d)

    def update(state: State, losses: jax.Array, new_losses: jax.Array | None = None) -> State:
        if new_losses is None:
            raise ValueError("FAMO's update needs the losses after the step (new_losses).")
        delta = jnp.log(shifted(losses)) - jnp.log(shifted(new_losses))
        _, pullback = jax.vjp(jax.nn.softmax, state["logits"])
        (grad,) = pullback(delta)  # the softmax Jacobian, transposed, applied to delta
        updates, opt_state = tx.update(grad, state["logit_opt_state"], state["logits"])
        return {
            "logits": optax.apply_updates(state["logits"], updates),
            "logit_opt_state": opt_state,
        }

    return Weighting(
        num_tasks=num_tasks, init=init, weigh=weigh, update=update, needs_new_losses=True
    )


@register("famo", lr=0.025, gamma=1e-3, min_loss=0.0, eps=1e-8, optimizer="adam")
def build(cfg, ctx: Context) -> Weighting:
    """`lr` (beta) and `gamma` (weight decay) of the logits' `optimizer` (adam | sgd);
    `min_loss` and `eps` shift the losses before their logarithm."""
    return famo(
        len(ctx.tasks),
        lr=float(cfg.lr),
        gamma=float(cfg.gamma),
        min_loss=float(cfg.min_loss),
        eps=float(cfg.eps),
        optimizer=str(cfg.optimizer),
    )
