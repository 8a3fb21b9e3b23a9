"""The weighting protocol, `chain`, `create_weighting`, and the parameter-path helpers.

A weighting turns the unweighted task losses `[T]` of a step into the loss that is
differentiated, with a state carried in the TrainState (checkpointed with the model). It has
the shape of an optax transformation: `init` makes the state and `update` advances it; the
train step (`mtnets.train.step`) calls, in this order:

1. `weigh(trainable, state, losses) -> [T]`: the weighted per-task losses; their sum (`total`)
   is differentiated, so the weight of task t in this step is `d total / d L_t` (`weights`).
   `trainable` are the strategy's trainable parameters (`state["params"]`, or `{}`).
2. `surgery(state, weights, losses, task_grads, key)` (optional): gets the gradients of every
   task loss with respect to the model parameters under `shared_path` (stacked `[T, ...]`,
   unweighted) and returns the gradient to use for them (None: `sum_t w_t g_t`) and the
   gradient of the trainable parameters (None: that of `total`).
3. The model and the trainable parameters take an optimizer step (the model's `tx`).
4. `update(state, losses, new_losses) -> state`: `new_losses` are the losses of the same batch
   after the step, computed (one more forward pass) only when `needs_new_losses` is set.

Weights are arrays in the state, never Python constants of the compiled step, so a weighting
whose weights change does not recompile it. `chain(a, b)` composes weightings like
`optax.chain`: `b` weighs the losses that `a` has weighed, each keeps its own state, and at most
one of them does surgery.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax

from mtnets.weighting import registry

State = Any
Surgery = Callable[[State, jax.Array, jax.Array, Any, jax.Array], tuple[Any, Any]]

# "auto": the last top-level module of the backbone (ResNet: `layer4_0`), see `resolve_path`.
AUTO_PATH = "auto"


def _unchanged(trainable: Any, state: State, losses: jax.Array) -> jax.Array:
    del trainable, state
    return losses


def _keep(state: State, losses: jax.Array, new_losses: jax.Array | None = None) -> State:
    del losses, new_losses
    return state


def scale_by_state_weights(trainable: Any, state: State, losses: jax.Array) -> jax.Array:
    """`weigh` of the strategies whose weights are `state["weights"]` `[T]`."""
    del trainable
    return state["weights"] * losses


@dataclasses.dataclass(frozen=True)
class Weighting:
    """A loss weighting; see the module docstring for when the step calls what.

    Attributes:
      num_tasks: T, the length of the loss vector.
      init: `() -> state`, a dict of arrays; `state["params"]`, if present, is trained by the
        model's optimizer (see `initial_state`).
      weigh: `(trainable, state, losses [T]) -> [T]`, the weighted losses (default: unchanged).
      update: `(state, losses [T], new_losses [T] | None) -> state`, after the step.
      surgery: optional gradient hook, see the module docstring.
      shared_path: "/"-separated path into the model params of the parameters `surgery` sees
        ("auto": the backbone's last module, "backbone": the whole backbone).
      needs_new_losses: whether `update` needs the losses after the step (one more forward).
      members: the weightings of a `chain` (their states are the items of a tuple).
    """

    num_tasks: int
    init: Callable[[], State]
    weigh: Callable[[Any, State, jax.Array], jax.Array] = _unchanged
    update: Callable[..., State] = _keep
    surgery: Surgery | None = None
    shared_path: str = AUTO_PATH
    needs_new_losses: bool = False
    members: tuple[Weighting, ...] = ()

    def total(self, trainable: Any, state: State, losses: jax.Array) -> jax.Array:
        """The differentiated loss: the sum of the weighted losses."""
        return jnp.sum(self.weigh(trainable, state, losses))

    def weights(self, state: State, losses: jax.Array | None = None) -> jax.Array:
        """`d total / d losses` `[T]`: each task's weight at `losses` (default: ones; only
        weightings such as FAMO have weights that depend on the losses)."""
        if losses is None:
            losses = jnp.ones((self.num_tasks,), jnp.float32)
        trainable = trainable_params(state)
        return jax.grad(lambda x: self.total(trainable, state, x))(losses)


def chain(*members: Weighting) -> Weighting:
    """The composition of `members`, applied in order (`optax.chain` for weightings).

    Each member weighs the losses the previous one returned (so the weights multiply for
    plain weightings); each sees the unweighted losses in `update`. A member with `surgery`
    receives the weights of the whole chain, e.g. PCGrad after DWA projects the DWA-weighted
    task gradients.
    """
    if not members:
        raise ValueError("chain() needs at least one weighting.")
    if len({m.num_tasks for m in members}) != 1:
        raise ValueError(f"Chained weightings disagree on the number of tasks: {members}.")
    surgeons = [i for i, m in enumerate(members) if m.surgery is not None]
    if len(surgeons) > 1:
        raise ValueError("At most one chained weighting may do gradient surgery.")

    def init() -> State:
        return tuple(m.init() for m in members)

    def weigh(trainable: Any, state: State, losses: jax.Array) -> jax.Array:
        for member, params, member_state in zip(members, trainable, state, strict=True):
            losses = member.weigh(params, member_state, losses)
        return losses

    def update(state: State, losses: jax.Array, new_losses: jax.Array | None = None) -> State:
        return tuple(m.update(s, losses, new_losses) for m, s in zip(members, state, strict=True))

    surgery, shared_path = None, AUTO_PATH
    if surgeons:
        k = surgeons[0]
        shared_path = members[k].shared_path

        def surgery(state, weights, losses, task_grads, key):
            shared, grads = members[k].surgery(state[k], weights, losses, task_grads, key)
            return shared, tuple(grads if i == k else None for i in range(len(members)))

    return Weighting(
        num_tasks=members[0].num_tasks,
        init=init,
        weigh=weigh,
        update=update,
        surgery=surgery,
        shared_path=shared_path,
        needs_new_losses=any(m.needs_new_losses for m in members),
        members=tuple(members),
    )


# ------------------------------------------------------------------------------------------------
# Trainable weighting parameters: `state["params"]`, optimised by the model's optimizer `tx`
# (Adam and SGD act elementwise, so one optimizer over model + weighting parameters and two
# instances of it are the same thing), with its state in `state["opt_state"]`.


def initial_state(weighting: Weighting, tx: optax.GradientTransformation) -> State:
    """`weighting.init()`, plus `opt_state = tx.init(params)` when it has trainable params."""
    if weighting.members:
        return tuple(initial_state(m, tx) for m in weighting.members)
    state = weighting.init()
    if isinstance(state, Mapping) and "params" in state:
        state = {**state, "opt_state": tx.init(state["params"])}
    return state


def trainable_params(state: State) -> Any:
    """The trainable weighting parameters of `state` (`{}` when there are none)."""
    if isinstance(state, tuple):
        return tuple(trainable_params(s) for s in state)
    if isinstance(state, Mapping) and "params" in state:
        return state["params"]
    return {}


def apply_gradients(state: State, grads: Any, tx: optax.GradientTransformation) -> State:
    """One `tx` step of the trainable parameters of `state` (a chain's: of every member)."""
    if isinstance(state, tuple):
        return tuple(apply_gradients(s, g, tx) for s, g in zip(state, grads, strict=True))
    if not (isinstance(state, Mapping) and "params" in state):
        return state
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    return {
        **state,
        "params": optax.apply_updates(state["params"], updates),
        "opt_state": opt_state,
    }


def override(grads: Any, replacement: Any) -> Any:
    """`grads` with the parts that `replacement` (a surgery's result) gives replaced; None
    keeps the original (a chain's replacement is a tuple with one entry per member)."""
    if replacement is None:
        return grads
    if isinstance(replacement, tuple):
        return tuple(override(g, r) for g, r in zip(grads, replacement, strict=True))
    return replacement


# ------------------------------------------------------------------------------------------------
# Parameter selection for the gradient hooks.


def _natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def resolve_path(params: Mapping, path: str) -> tuple[str, ...]:
    """The key path of `path` in `params`.

    "auto" means the last top-level module of `params["backbone"]` in natural order of names
    among the `stage*` modules (HRNet: its last module, e.g. `stage4_1`), else the `layer*`
    ones (ResNet: `layer4_0`), else all; the stand-in for GradNorm's "last shared layer".
    Any other value is a "/"-separated path, e.g. `backbone/layer4_0/conv2`.
    """
    if path == AUTO_PATH:
        if "backbone" not in params:
            raise ValueError(
                "shared_path='auto' needs a 'backbone' in the model params; the top-level "
                f"params are {sorted(params)}. Set config.weighting.<name>.shared_path."
            )
        modules = [k for k, v in params["backbone"].items() if isinstance(v, Mapping)]
        if not modules:
            return ("backbone",)
        for prefix in ("stage", "layer"):  # HRNet stages, ResNet layers
            staged = [k for k in modules if k.startswith(prefix)]
            if staged:
                return ("backbone", max(staged, key=_natural_key))
        return ("backbone", max(modules, key=_natural_key))
    keys = tuple(k for k in path.split("/") if k)
    node = params
    for i, key in enumerate(keys):
        if not isinstance(node, Mapping) or key not in node:
            options = sorted(node) if isinstance(node, Mapping) else []
            raise ValueError(
                f"config.weighting.<name>.shared_path {path!r}: no {key!r} under "
                f"{'/'.join(keys[:i]) or 'the params'}; options: {options}."
            )
        node = node[key]
    return keys


def get_path(tree: Mapping, keys: Sequence[str]) -> Any:
    for key in keys:
        tree = tree[key]
    return tree


def set_path(tree: Mapping, keys: Sequence[str], value: Any) -> dict:
    """A copy of the nested dict `tree` with the subtree at `keys` replaced by `value`."""
    if not keys:
        return value
    return {**tree, keys[0]: set_path(tree[keys[0]], keys[1:], value)}


# ------------------------------------------------------------------------------------------------
# From the config.


def create_weighting(config, tasks: Sequence[str], steps_per_epoch: int | None = None) -> Weighting:
    """The weighting `config.weighting.name` over `tasks` (the losses' order).

    The name is a registered strategy or several joined by "+" (chained in that order, e.g.
    "dwa+pcgrad"); each is built from its sub-section `config.weighting.<name>`.
    `steps_per_epoch` is the epoch length for the strategies that count epochs (DWA).
    """
    members = registry.build(config, tasks, steps_per_epoch)
    return members[0] if len(members) == 1 else chain(*members)
