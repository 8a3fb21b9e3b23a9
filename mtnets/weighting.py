"""Loss weighting: how the per-task losses are combined into the one that is differentiated.

A strategy is a set of pure functions over a state that the TrainState carries (so it is
checkpointed and resumed with the model):

    state = initial_state(strategy, tx)      # strategy.init(), plus an optimizer state if needed
    weights = strategy.weights(state)        # float32 [T], in the order of the loss tasks
    total = strategy.objective(trainable, state, losses)   # the differentiated loss
    state = strategy.update(state, losses)   # after each step, from the unweighted losses [T]

Weights are data, never Python constants baked into the compiled step, so a strategy whose
weights change (or a new set of fixed weights) does not recompile the train step.

Two optional hooks cover the strategies that are more than weights:

- Trainable weighting parameters (uncertainty weighting, GradNorm) live in `state["params"]`.
  `initial_state` adds `state["opt_state"] = tx.init(state["params"])`, and the train step
  updates them with the model's optimizer `tx` (Adam and SGD act elementwise, so one optimizer
  over model + weighting parameters and two instances of it are the same thing).
  Their gradient is `d objective / d params` unless `surgery` provides it.
- `surgery` (GradNorm, PCGrad): the step computes the gradient of every task loss with respect
  to the parameters under `shared_path` (stacked `[T, ...]`) and hands them over; the hook
  returns the gradient to use for those parameters (or None: `sum_t w_t g_t`, unchanged) and the
  gradient of the trainable weighting parameters (or None).

The strategies: fixed, equal, DWA, uncertainty, GradNorm, PCGrad, RLW.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax

State = Any
Surgery = Callable[[State, jax.Array, Any, jax.Array], tuple[Any, Any]]

STRATEGIES = ("fixed", "equal", "dwa", "uncertainty", "gradnorm", "pcgrad", "rlw")

# lorenmt/mtan: `logsigma = nn.Parameter(torch.FloatTensor([-0.5, -0.5, -0.5]))`
# (`MTAN:im2im_pred/model_segnet_mtan.py:75`).
UNCERTAINTY_INIT = -0.5
# lorenmt/mtan `--temp` default (`MTAN:im2im_pred/model_segnet_mtan.py:13`).
DWA_TEMPERATURE = 2.0
# GradNorm's asymmetry in the paper's NYUv2 experiments is 1.5 (Chen et al. 2018, Sec. 5).
GRADNORM_ALPHA = 1.5
# "auto": the last top-level module of the backbone (ResNet: `layer4_0`), see `resolve_path`.
AUTO_PATH = "auto"


def _weighted_sum(trainable: Any, state: State, losses: jax.Array, weights_fn) -> jax.Array:
    del trainable
    return jnp.sum(weights_fn(state) * losses)


@dataclasses.dataclass(frozen=True)
class Weighting:
    """A loss-weighting strategy; see the module docstring for the contract.

    Attributes:
      init: `() -> state`, a pytree of arrays; `state["params"]`, if present, is trained.
      weights: `state -> float32 [T]`, the weights applied (and logged) this step.
      update: `(state, losses [T]) -> state`, after the step, from the unweighted losses.
      objective: `(trainable, state, losses [T]) -> scalar`, the loss that is differentiated
        with respect to the model and `trainable` (= `state["params"]`); None: `sum w_t L_t`.
      surgery: optional gradient hook `(state, losses, task_grads, key) -> (grad, trainable
        grad)` where `task_grads` is the pytree under `shared_path` with a leading `[T]` axis.
      shared_path: "/"-separated path into the model params of the parameters `surgery` sees
        ("auto": the backbone's last module, "backbone": the whole backbone).
    """

    init: Callable[[], State]
    weights: Callable[[State], jax.Array]
    update: Callable[[State, jax.Array], State]
    objective: Callable[[Any, State, jax.Array], jax.Array] | None = None
    surgery: Surgery | None = None
    shared_path: str = AUTO_PATH

    def total(self, trainable: Any, state: State, losses: jax.Array) -> jax.Array:
        """The differentiated loss (`objective`, or the weighted sum)."""
        if self.objective is None:
            return _weighted_sum(trainable, state, losses, self.weights)
        return self.objective(trainable, state, losses)


def initial_state(weighting: Weighting, tx: optax.GradientTransformation) -> State:
    """`weighting.init()`, plus `opt_state = tx.init(params)` when it has trainable params."""
    state = weighting.init()
    if isinstance(state, Mapping) and "params" in state:
        state = {**state, "opt_state": tx.init(state["params"])}
    return state


def trainable_params(state: State) -> Any:
    """The trainable weighting parameters of `state` (an empty dict when there are none)."""
    if isinstance(state, Mapping) and "params" in state:
        return state["params"]
    return {}


# ------------------------------------------------------------------------------------------------
# Fixed and equal weights.


def fixed(weights: Sequence[float]) -> Weighting:
    """Constant weights, `L = sum_t w_t L_t` (MTL `MultiTaskLoss`, REFERENCE.md §4.3)."""
    initial = jnp.asarray(weights, jnp.float32)
    return Weighting(
        init=lambda: {"weights": initial},
        weights=lambda state: state["weights"],
        update=lambda state, losses: state,
    )


# ------------------------------------------------------------------------------------------------
# Dynamic Weight Average.


def dwa(num_tasks: int, period: int, temperature: float = DWA_TEMPERATURE) -> Weighting:
    """Dynamic Weight Average (Liu, Johns and Davison, "End-to-End Multi-Task Learning with
    Attention", CVPR 2019, Eq. 7), exactly as lorenmt/mtan `MTAN:im2im_pred/utils.py:128-181`.

    The state carries the running sum of the *unweighted* training losses of the current epoch
    (`sums [T]`, `count`), the means of the last two epochs (`means [2, T]`, oldest first), the
    number of finished epochs and the current weights. After `period` steps (one epoch, or N
    steps) the epoch mean enters `means` and, once two epochs are done,
    `lambda_k = K * softmax(w / T)_k` with `w_k = mean_k(e-1) / mean_k(e-2)`; before that the
    weights are 1 (`:139-147`). Within an epoch the weights are constant.
    """
    if period < 1:
        raise ValueError(f"DWA needs an update period of at least 1 step, got {period}.")
    if temperature <= 0:
        raise ValueError(f"config.weighting.temperature must be > 0, got {temperature}.")

    def init() -> State:
        return {
            "sums": jnp.zeros((num_tasks,), jnp.float32),
            "count": jnp.zeros((), jnp.int32),
            "means": jnp.ones((2, num_tasks), jnp.float32),
            "epochs": jnp.zeros((), jnp.int32),
            "weights": jnp.ones((num_tasks,), jnp.float32),
        }

    def update(state: State, losses: jax.Array) -> State:
        sums = state["sums"] + losses.astype(jnp.float32)
        count = state["count"] + 1
        done = count >= period
        # lorenmt: avg_cost[index] += cost / train_batch (`:176-181`), the epoch mean.
        mean = sums / count.astype(jnp.float32)
        means = jnp.where(done, jnp.stack([state["means"][1], mean]), state["means"])
        epochs = state["epochs"] + done.astype(jnp.int32)
        ratio = means[1] / means[0]
        dynamic = num_tasks * jax.nn.softmax(ratio / temperature)
        weights = jnp.where(done & (epochs >= 2), dynamic, state["weights"])
        return {
            "sums": jnp.where(done, 0.0, sums),
            "count": jnp.where(done, 0, count),
            "means": means,
            "epochs": epochs,
            "weights": weights,
        }

    return Weighting(init=init, weights=lambda state: state["weights"], update=update)


# ------------------------------------------------------------------------------------------------
# Uncertainty weighting.


def uncertainty(num_tasks: int, init_value: float = UNCERTAINTY_INIT) -> Weighting:
    """Homoscedastic uncertainty weighting (Kendall, Gal and Cipolla, "Multi-Task Learning Using
    Uncertainty to Weigh Losses for Scene Geometry and Semantics", CVPR 2018), in lorenmt's form
    (`MTAN:im2im_pred/utils.py:167-168`): `L = sum_i L_i / (2 exp(s_i)) + s_i / 2`, with the
    learned log-variances `s` initialised at -0.5 and trained by the model's optimizer.

    The logged weight of task i is the factor of its loss, `1 / (2 exp(s_i))`. The total goes
    negative once the s_i do (MTAN #51), which is expected.
    """

    def init() -> State:
        return {"params": {"log_vars": jnp.full((num_tasks,), init_value, jnp.float32)}}

    def weights(state: State) -> jax.Array:
        return 0.5 * jnp.exp(-state["params"]["log_vars"])

    def objective(trainable: Any, state: State, losses: jax.Array) -> jax.Array:
        s = trainable["log_vars"]
        return jnp.sum(losses * 0.5 * jnp.exp(-s) + 0.5 * s)

    return Weighting(
        init=init, weights=weights, update=lambda state, losses: state, objective=objective
    )


# ------------------------------------------------------------------------------------------------
# GradNorm.


def _task_grad_norms(task_grads: Any) -> jax.Array:
    """`[T]` L2 norms of the per-task gradients (every leaf has a leading `[T]` axis)."""
    squares = [
        jnp.sum(jnp.square(g.reshape(g.shape[0], -1)), axis=1) for g in jax.tree.leaves(task_grads)
    ]
    return jnp.sqrt(sum(squares))


def gradnorm_weight_gradient(
    weights: jax.Array, grad_norms: jax.Array, losses: jax.Array, initial: jax.Array, alpha: float
) -> jax.Array:
    """d L_grad / d w of GradNorm (Chen et al. 2018, Eq. 1-2), the targets held constant.

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
    """GradNorm (Chen, Badrinarayanan, Lee and Rabinovich, "GradNorm: Gradient Normalization for
    Adaptive Loss Balancing in Deep Multitask Networks", ICML 2018, Eq. 1-2 and Algorithm 1).

    The weights `w` (init 1) are trainable parameters updated by the model's optimizer with the
    gradient of `L_grad` (`gradnorm_weight_gradient`), computed from the per-task gradient norms
    on the parameters under `shared_path` (the paper's W, "the last shared layer"). After each
    update they are renormalised to `sum_i w_i = T`. `L_i(0)` are the losses of the first step.
    The model gradient is that of `sum_i w_i L_i` with `w` held constant.
    """

    def init() -> State:
        return {
            "params": {"weights": jnp.ones((num_tasks,), jnp.float32)},
            "initial_losses": jnp.ones((num_tasks,), jnp.float32),
            "started": jnp.zeros((), bool),
        }

    def surgery(state: State, losses: jax.Array, task_grads: Any, key: jax.Array):
        del key
        initial = jnp.where(state["started"], state["initial_losses"], losses)
        w = state["params"]["weights"]
        grad = gradnorm_weight_gradient(w, _task_grad_norms(task_grads), losses, initial, alpha)
        return None, {"weights": grad}

    def update(state: State, losses: jax.Array) -> State:
        w = jnp.maximum(state["params"]["weights"], 0.0)  # Keeps the renormalisation positive.
        w = num_tasks * w / jnp.maximum(jnp.sum(w), 1e-12)
        return {
            **state,
            "params": {"weights": w},
            "initial_losses": jnp.where(state["started"], state["initial_losses"], losses),
            "started": jnp.ones((), bool),
        }

    return Weighting(
        init=init,
        weights=lambda state: state["params"]["weights"],
        update=update,
        objective=lambda trainable, state, losses: jnp.sum(
            jax.lax.stop_gradient(trainable["weights"]) * losses
        ),
        surgery=surgery,
        shared_path=shared_path,
    )


# ------------------------------------------------------------------------------------------------
# PCGrad.


def pcgrad_combine(task_grads: jax.Array, order: jax.Array) -> jax.Array:
    """PCGrad's projection (Yu et al. 2020, Algorithm 1) of flat gradients `[T, P]` -> `[P]`.

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


def pcgrad(num_tasks: int, shared_path: str = "backbone") -> Weighting:
    """PCGrad (Yu, Kumar, Gupta, Levine, Hausman and Finn, "Gradient Surgery for Multi-Task
    Learning", NeurIPS 2020): on the shared parameters (`shared_path`, default the backbone) the
    gradient is the sum of the per-task gradients after projecting away their conflicting
    components (`pcgrad_combine`), in a random task order drawn from the step's key. The
    task-specific parameters get the plain sum. Task losses are unweighted (weights 1), as in
    LibMTL's `PCGrad`.
    """

    def surgery(state: State, losses: jax.Array, task_grads: Any, key: jax.Array):
        del state, losses
        keys = jax.random.split(key, num_tasks)
        order = jax.vmap(lambda k: jax.random.permutation(k, num_tasks))(keys)
        leaves, treedef = jax.tree.flatten(task_grads)
        flat = jnp.concatenate([g.reshape(num_tasks, -1) for g in leaves], axis=1)
        combined = pcgrad_combine(flat.astype(jnp.float32), order)
        out, offset = [], 0
        for g in leaves:
            size = g[0].size
            out.append(combined[offset : offset + size].reshape(g.shape[1:]).astype(g.dtype))
            offset += size
        return jax.tree.unflatten(treedef, out), None

    ones = jnp.ones((num_tasks,), jnp.float32)
    return Weighting(
        init=lambda: {"weights": ones},
        weights=lambda state: state["weights"],
        update=lambda state, losses: state,
        surgery=surgery,
        shared_path=shared_path,
    )


# ------------------------------------------------------------------------------------------------
# Random loss weighting.


def rlw(num_tasks: int, seed: int = 0) -> Weighting:
    """Random Loss Weighting (Lin, Ye, Xu, Shi and Zhang, "Reasonable Effectiveness of Random
    Weighting: A Litmus Test for Multi-Task Learning", TMLR 2022): every step the weights are
    `softmax(z)`, `z ~ N(0, I_T)`, as in LibMTL's `RLW`. The state holds the weights of the
    next step and a counter; the draw of step s uses `fold_in(key(seed), s)`, so a resumed run
    draws the same weights.
    """

    def draw(count: jax.Array) -> jax.Array:
        key = jax.random.fold_in(jax.random.key(seed), count)
        return jax.nn.softmax(jax.random.normal(key, (num_tasks,), jnp.float32))

    def init() -> State:
        count = jnp.zeros((), jnp.int32)
        return {"weights": draw(count), "count": count}

    def update(state: State, losses: jax.Array) -> State:
        count = state["count"] + 1
        return {"weights": draw(count), "count": count}

    return Weighting(init=init, weights=lambda state: state["weights"], update=update)


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
                "config.weighting.shared_path='auto' needs a 'backbone' in the model params; "
                f"the top-level params are {sorted(params)}. Set shared_path explicitly."
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
                f"config.weighting.shared_path {path!r}: no {key!r} under "
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
    """The strategy `config.weighting.name` over `tasks` (the losses' order).

    Fields read (with defaults) from `config.weighting`: `weights` (fixed), `temperature` (2.0)
    and `update_every_steps` (0: every epoch of `steps_per_epoch` steps) for DWA, `alpha` (1.5)
    and `shared_path` (None: "auto") for GradNorm, `shared_path` (None: "backbone") for PCGrad,
    `seed`
    (config.seed) for RLW.
    """
    cfg = config.weighting
    name = cfg.name
    num = len(tasks)
    if name == "equal":
        return fixed([1.0] * num)
    if name == "fixed":
        return fixed(_fixed_weights(cfg.weights, tasks))
    if name == "dwa":
        period = int(cfg.get("update_every_steps", 0) or 0)
        if period <= 0:
            if not steps_per_epoch:
                raise ValueError(
                    "DWA updates its weights every epoch, so it needs steps_per_epoch (train "
                    "examples // global batch size), or set config.weighting.update_every_steps."
                )
            period = int(steps_per_epoch)
        return dwa(num, period, float(cfg.get("temperature", DWA_TEMPERATURE)))
    if name == "uncertainty":
        return uncertainty(num, float(cfg.get("init", UNCERTAINTY_INIT)))
    if name == "gradnorm":
        return gradnorm(
            num, float(cfg.get("alpha", GRADNORM_ALPHA)), str(cfg.get("shared_path") or AUTO_PATH)
        )
    if name == "pcgrad":
        return pcgrad(num, str(cfg.get("shared_path") or "backbone"))
    if name == "rlw":
        return rlw(num, int(cfg.get("seed", config.get("seed", 0))))
    raise ValueError(
        f"Unknown config.weighting.name {name!r}; choose one of {', '.join(STRATEGIES)}."
    )


def _fixed_weights(table: Mapping[str, float], tasks: Sequence[str]) -> list[float]:
    missing = [t for t in tasks if t not in table]
    if missing:
        raise ValueError(f"config.weighting.weights has no weight for task(s) {missing}.")
    return [float(table[t]) for t in tasks]
