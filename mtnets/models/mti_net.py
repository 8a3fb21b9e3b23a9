"""MTI-Net (Vandenhende et al., "MTI-Net: Multi-Scale Task Interaction Networks for
Multi-Task Learning", ECCV 2020) as the MTL reference builds it (`MTL:models/mti_net.py`,
docs/reference_notes.md#mti-net-as-implemented).

From the coarsest scale to the finest, at every backbone scale s:
1. initial task predictions: per auxiliary task, two BasicBlocks refine
   `concat(backbone_s, up2(FPM_{s+1}[t]))` (only the backbone features at the coarsest scale)
   to C_s channels (`features_t`), and a 1x1 conv predicts the task (deep supervision);
2. the feature propagation module (FPM, every scale but the finest) mixes the tasks'
   features: concatenation (S = N·C_s channels), a non-linear function f (two BasicBlocks at
   S/4 and a 1x1 conv back to S), a softmax attention over groups of channels multiplying the
   concatenation, a BasicBlock reducing S to C_s, then per task squeeze-and-excitation plus the
   task's own features; its output goes up to the next finer scale.
3. multi-modal distillation (`MultiTaskDistillation`, spatial attention) of the *pre-FPM*
   task features, per main task;
then per main task an HRNet head aggregates the distilled features of all scales, and the
result is resized bilinearly to the input.

The FPM softmax (`fpm_softmax`):
- `"reference"` (default, needed for the reference's weights): the reference views the
  task-major concatenation `[t0 c0..cC-1, t1 c0, ...]` as `(C, N)` and normalises over N,
  i.e. over groups of N *consecutive channels*, which mostly lie inside one task
  (docs/reference_notes.md#mti-net-as-implemented). NHWC: `reshape(..., C, N)`, softmax over the
  last axis.
- `"per_task"`: the paper's reading, for each channel c a softmax over the N tasks' channel c:
  `reshape(..., N, C)`, softmax over the N axis.

Ablations of the paper as fields: `num_scales` (1-4, the finest ones), `use_fpm` (False: every
scale sees only its backbone features), `distill_all_scales` (False: only the finest scale is
distilled; the heads then take the main task's own features at the other scales). Auxiliary
tasks on or off is `aux_tasks` (equal to `tasks`: none beyond the main ones).

Parameter layout: modules that every task has in the same shape are one module whose
variables carry a leading task axis, applied to each task's slice in turn (`over_tasks`, a
`flax.linen.scan`): the two refinement BasicBlocks of every scale (`scale_<s>/refinement`,
axis = `aux_tasks`), the FPM's squeeze-and-excitation blocks (`fpm_scale_<s>/se`, axis =
`aux_tasks`), the distillation's spatial-attention blocks (`distillation_scale_<s>/self_attention`,
axis = `distillation_pairs`) and the hidden layer of the heads (`heads`, axis = `tasks`). XLA
compiles each of them once instead of once per task. The 1x1 prediction convolutions, whose
widths differ per task, stay per task (`scale_<s>/<t>_predict`, `head_<t>_predict`). Each task
keeps its own BatchNorm statistics.

Output: `{task: [B, H, W, C]}` for the main tasks and
`"intermediate": {"scale_s": {aux_task: [B, H/2^(s+2), W/2^(s+2), C]}}`.
H and W must be divisible by 32 (the reference upsamples by exactly 2).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from mtnets.models import common
from mtnets.models.backbones.resnet import BasicBlock
from mtnets.models.heads import HighResolutionFuse
from mtnets.models.layers import SABlock, SEBlock, conv, resize
from mtnets.models.registry import register_model

FPM_SOFTMAX = ("reference", "per_task")

# Variable paths that only the per-task layout (before 2026-12-03: one module per task) has.
_PER_TASK_LAYOUT = re.compile(
    r"(^|/)(scale_\d/\w+_refine_\d|fpm_scale_\d/se_\w+|distillation_scale_\d/\w+_from_\w+"
    r"|head_\w+/fuse_conv)(/|$)"
)


def per_task_layout_note(paths: Iterable[str]) -> str | None:
    """A sentence explaining the layout change if `paths` (`params/scale_1/...` variable paths,
    e.g. those of a checkpoint that does not fit the model) are of MTI-Net's per-task layout,
    else None."""
    if not any(_PER_TASK_LAYOUT.search(p) for p in paths):
        return None
    return (
        "It holds MTI-Net variables in the per-task layout of mtnets before 2026-12-03 "
        "(one module per task, e.g. scale_<s>/<task>_refine_0); MTI-Net now stacks the "
        "same-shaped per-task modules on a task axis (scale_<s>/refinement, fpm_scale_<s>/se, "
        "distillation_scale_<s>/self_attention, heads; see docs/models.md). Such a checkpoint "
        "cannot be resumed: retrain, or convert its variables with "
        "mtnets.models.mti_net.stack_per_task_variables"
    )


def over_tasks(module: type[nn.Module], length: int, name: str, **attributes) -> nn.Module:
    """`module` once per task, with variables stacked on a leading task axis of `length`.

    The returned module is called as `(None, inputs)` with every input stacked on axis 0 and
    returns `(None, outputs)` stacked the same way; slice `i` of the outputs is `module` applied
    to slice `i` of the inputs with slice `i` of the variables (BatchNorm statistics included).
    A scan rather than a vmap: on a CPU a vmapped convolution becomes a grouped convolution,
    which XLA:CPU compiles and runs far more slowly than a loop over ordinary ones.
    """
    scanned = nn.scan(
        module,
        variable_axes={"params": 0, "batch_stats": 0},
        split_rngs={"params": True},
        in_axes=0,
        out_axes=0,
        length=length,
    )
    return scanned(name=name, **attributes)


def _stack(arrays: Sequence[jax.Array]) -> jax.Array:
    return jnp.stack(list(arrays))


class TaskRefinement(nn.Module):
    """One task's refinement: BasicBlock(C_in -> C, 1x1 projection shortcut where C_in != C),
    BasicBlock(C) (`MTL:models/mti_net.py:17-53`). Scan body of `over_tasks`."""

    channels: int
    train: bool
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, carry, x):
        y = BasicBlock(self.channels, dtype=self.dtype, name="block_0")(x, self.train)
        return carry, BasicBlock(self.channels, dtype=self.dtype, name="block_1")(y, self.train)


class InitialTaskPrediction(nn.Module):
    """Per task the refinement of `concat(x, up2(propagated[t]))` (`x` alone without
    propagation) and a 1x1 conv (bias) to the task's outputs (`MTL:models/mti_net.py:17-53`).

    Returns `({t: [B, H, W, C]}, {t: [B, H, W, outputs_t]})` (features, predictions).
    """

    tasks: Sequence[str]
    outputs: Mapping[str, int]
    channels: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, propagated: Mapping[str, jax.Array] | None, train: bool):
        inputs = []
        for t in self.tasks:
            y = x
            if propagated is not None:
                up = resize(propagated[t], (2 * propagated[t].shape[1], 2 * propagated[t].shape[2]))
                y = jnp.concatenate([x, up.astype(x.dtype)], axis=-1)
            inputs.append(y)
        refine = over_tasks(
            TaskRefinement, len(self.tasks), "refinement", channels=self.channels, train=train,
            dtype=self.dtype,
        )  # fmt: skip
        _, stacked = refine(None, _stack(inputs))
        features, predictions = {}, {}
        for i, t in enumerate(self.tasks):
            features[t] = stacked[i]
            predictions[t] = conv(
                self.outputs[t], 1, use_bias=True, dtype=self.dtype, name=f"{t}_predict"
            )(stacked[i])
        return features, predictions


def fpm_attention(logits: jax.Array, concat: jax.Array, num_tasks: int, softmax: str) -> jax.Array:
    """The FPM's softmax attention applied to the task-major concatenation.

    `logits`, `concat`: `[B, H, W, S]` with S = num_tasks * C. "reference": softmax over groups
    of `num_tasks` consecutive channels, the NHWC equivalent of the reference's
    `softmax(shared.view(B, C, N, H, W), dim=2)` (`MTL:models/mti_net.py:87-88`); "per_task":
    for each channel k, softmax over the tasks' channels k (the paper's text). Returns
    `mask * concat`, `[B, H, W, S]`.
    """
    *batch, s = concat.shape
    c = s // num_tasks
    if softmax == "reference":
        groups, axis = (*batch, c, num_tasks), -1
    elif softmax == "per_task":
        groups, axis = (*batch, num_tasks, c), -2
    else:
        raise ValueError(
            f"Unknown MTI-Net fpm_softmax {softmax!r}; choose one of {', '.join(FPM_SOFTMAX)}."
        )
    mask = jax.nn.softmax(logits.reshape(groups), axis=axis)
    return (mask * concat.reshape(groups)).reshape(concat.shape)


class FeaturePropagation(nn.Module):
    """The feature propagation module (`MTL:models/mti_net.py:56-98`); see the module
    docstring. `{t: [B, H, W, C]}` -> `{t: [B, H, W, C]}`."""

    tasks: Sequence[str]
    softmax: str = "reference"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, features: Mapping[str, jax.Array], train: bool) -> dict[str, jax.Array]:
        n = len(self.tasks)
        concat = jnp.concatenate([features[t] for t in self.tasks], axis=-1)
        s = concat.shape[-1]
        c = s // n
        # Non-linear function f: BasicBlock(S -> S/4), BasicBlock(S/4), 1x1 conv S/4 -> S.
        y = BasicBlock(s // 4, dtype=self.dtype, name="non_linear_0")(concat, train)
        y = BasicBlock(s // 4, dtype=self.dtype, name="non_linear_1")(y, train)
        y = conv(s, 1, use_bias=True, dtype=self.dtype, name="non_linear_2")(y)
        shared = fpm_attention(y, concat, n, self.softmax)
        shared = BasicBlock(c, dtype=self.dtype, name="reduction")(shared, train)
        se = over_tasks(TaskSqueezeExcitation, n, "se", dtype=self.dtype)
        _, excited = se(None, jnp.broadcast_to(shared, (n, *shared.shape)))
        return {t: excited[i] + features[t] for i, t in enumerate(self.tasks)}


class TaskSqueezeExcitation(nn.Module):
    """One task's squeeze-and-excitation of the FPM output. Scan body of `over_tasks`."""

    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, carry, x):
        return carry, SEBlock(dtype=self.dtype, name="block")(x)


def distillation_pairs(tasks: Sequence[str], aux_tasks: Sequence[str]) -> list[tuple[str, str]]:
    """`(t, a)` for every main task t and every other auxiliary task a: the order of the
    stacked spatial-attention blocks of `MultiTaskDistillation`."""
    return [(t, a) for t in tasks for a in aux_tasks if a != t]


class TaskAttention(nn.Module):
    """One spatial-attention block of the distillation (`SABlock`). Scan body of `over_tasks`."""

    features: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, carry, x):
        return carry, SABlock(self.features, dtype=self.dtype, name="block")(x)


class MultiTaskDistillation(nn.Module):
    """`D_t = F_t + sum_{a in aux, a != t} SA_{t,a}(F_a)` for every main task t
    (`MTL:models/padnet.py:52-73`), the blocks `SA_{t,a}` stacked in `distillation_pairs`
    order. `features` maps every auxiliary task to `[B, H, W, C]` (one C for all); returns
    `{main task: [B, H, W, C]}`."""

    tasks: Sequence[str]
    aux_tasks: Sequence[str]
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, features: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
        pairs = distillation_pairs(self.tasks, self.aux_tasks)
        out = {t: features[t] for t in self.tasks}
        if not pairs:
            return out
        channels = features[self.tasks[0]].shape[-1]
        attention = over_tasks(
            TaskAttention, len(pairs), "self_attention", features=channels, dtype=self.dtype
        )
        _, attended = attention(None, _stack(features[a] for _, a in pairs))
        for i, (t, _) in enumerate(pairs):  # summed in the reference's order, source by source
            out[t] = out[t] + attended[i]
        return out


class TaskHead(nn.Module):
    """The hidden layer of one task's `HighResolutionHead` (all scales at the finest, 1x1 conv
    with bias, BN, ReLU). Scan body of `over_tasks`."""

    hidden: int
    train: bool
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, carry, features):
        fuse = HighResolutionFuse(self.hidden, dtype=self.dtype, name="fuse")
        return carry, fuse(features, self.train)


class MTINet(nn.Module):
    """See the module docstring. `outputs` maps every task of `aux_tasks` (which contains
    `tasks`) to its number of output channels; `backbone` returns `scale_0..scale_3`."""

    backbone: nn.Module
    tasks: Sequence[str]
    aux_tasks: Sequence[str]
    outputs: Mapping[str, int]
    num_scales: int = 4
    use_fpm: bool = True
    distill_all_scales: bool = True
    fpm_softmax: str = "reference"
    head_width: int = 0  # hidden channels of the HRNet heads; 0: the reference's (sum)
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, images, train: bool = False) -> dict[str, Any]:
        if not 1 <= self.num_scales <= 4:
            raise ValueError(f"MTI-Net num_scales must be 1 to 4, got {self.num_scales}.")
        backbone = self.backbone(images, train)
        scales = range(self.num_scales)
        features: dict[int, dict] = {}
        intermediate: dict[str, dict] = {}
        propagated = None
        for s in reversed(scales):
            x = backbone[f"scale_{s}"]
            module = InitialTaskPrediction(
                self.aux_tasks, self.outputs, x.shape[-1], dtype=self.dtype, name=f"scale_{s}"
            )
            features[s], intermediate[f"scale_{s}"] = module(x, propagated, train)
            if self.use_fpm and s > 0:
                fpm = FeaturePropagation(
                    self.aux_tasks, self.fpm_softmax, dtype=self.dtype, name=f"fpm_scale_{s}"
                )
                propagated = fpm(features[s], train)
        distilled = {}
        for s in scales:
            if s == 0 or self.distill_all_scales:
                distill = MultiTaskDistillation(
                    self.tasks, self.aux_tasks, dtype=self.dtype, name=f"distillation_scale_{s}"
                )
                distilled[s] = distill(features[s])
            else:
                distilled[s] = {t: features[s][t] for t in self.tasks}
        size = images.shape[1:3]
        heads = over_tasks(
            TaskHead, len(self.tasks), "heads", hidden=self.head_width, train=train,
            dtype=self.dtype,
        )  # fmt: skip
        _, hidden = heads(
            None, {f"scale_{s}": _stack(distilled[s][t] for t in self.tasks) for s in scales}
        )
        out: dict[str, Any] = {}
        for i, t in enumerate(self.tasks):
            predict = conv(
                self.outputs[t], 1, use_bias=True, dtype=self.dtype, name=f"head_{t}_predict"
            )
            out[t] = resize(predict(hidden[i]), size)
        out["intermediate"] = {k: intermediate[k] for k in sorted(intermediate)}
        return out


@register_model(
    "mti_net",
    # The features double from scale to scale (scale_factor=2, as the reference) over five
    # halvings of the input.
    input_divisor=32,
    weights="mtnets.porting.mtl:MTI_NET",
    # The paper's ablation switches (Tables 2 and 3); the defaults are the full model.
    defaults={
        "mti_net": {
            "num_scales": 4,  # 1-4, the finest ones
            "use_fpm": True,  # feature propagation between scales
            "distill_all_scales": True,  # False: the finest scale only
            "fpm_softmax": "reference",  # or "per_task" (the paper's reading)
        }
    },
)
def build(config, dtype) -> nn.Module:
    """MTI-Net on `config.model.backbone` for `config.tasks`, with `config.aux_tasks`."""
    aux = common.aux_tasks(config)
    options = config.model.mti_net
    return MTINet(
        common.backbone(config, dtype),
        tuple(config.tasks),
        aux,
        common.task_channels(config, aux),
        num_scales=options.num_scales,
        use_fpm=options.use_fpm,
        distill_all_scales=options.distill_all_scales,
        fpm_softmax=options.fpm_softmax,
        head_width=config.model.head_width,
        dtype=dtype,
    )


def _stacked_path(
    path: tuple[str, ...], tasks: Sequence[str], aux_tasks: Sequence[str]
) -> tuple[tuple[str, ...], int | None]:
    """Where the per-task layout's variable `path` (modules and leaf, no collection) lives in
    the stacked layout: `(new path, index on the task axis)`, index None if not stacked."""
    head, rest = path[0], path[1:]
    if m := re.fullmatch(r"(.+)_refine_(\d)", rest[0]) if re.fullmatch(r"scale_\d", head) else None:
        return (head, "refinement", f"block_{m[2]}", *rest[1:]), aux_tasks.index(m[1])
    if m := re.fullmatch(r"se_(.+)", rest[0]) if re.fullmatch(r"fpm_scale_\d", head) else None:
        return (head, "se", "block", *rest[1:]), aux_tasks.index(m[1])
    if m := re.fullmatch(r"(.+)_from_(.+)", rest[0]) if head.startswith("distillation") else None:
        pair = distillation_pairs(tasks, aux_tasks).index((m[1], m[2]))
        return (head, "self_attention", "block", *rest[1:]), pair
    if m := re.fullmatch(r"head_(.+)", head):
        if rest[0] == "predict":
            return (f"{head}_predict", *rest[1:]), None
        return ("heads", "fuse", *rest), tasks.index(m[1])
    return path, None


def stack_per_task_variables(
    variables: Mapping[str, Any], tasks: Sequence[str], aux_tasks: Sequence[str]
) -> dict[str, Any]:
    """MTI-Net variables (`{"params", "batch_stats"}`) of the per-task layout that mtnets wrote
    before 2026-12-03 in the stacked layout of `MTINet` (see the module docstring). `tasks` and
    `aux_tasks` as the model's (`aux_tasks` = `tasks` when there are no auxiliary tasks)."""
    from flax.traverse_util import flatten_dict, unflatten_dict

    tasks, aux_tasks = tuple(tasks), tuple(aux_tasks)
    out = {}
    for collection, tree in variables.items():
        flat, slices = {}, {}
        for path, value in flatten_dict(dict(tree)).items():
            new, index = _stacked_path(path, tasks, aux_tasks)
            if index is None:
                flat[new] = value
            else:
                slices.setdefault(new, {})[index] = value
        for new, parts in slices.items():
            flat[new] = jnp.stack([parts[i] for i in range(len(parts))])
        out[collection] = unflatten_dict(flat)
    return out
