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

Output: `{task: [B, H, W, C]}` for the main tasks and
`"intermediate": {"scale_s": {aux_task: [B, H/2^(s+2), W/2^(s+2), C]}}`.
H and W must be divisible by 32 (the reference upsamples by exactly 2).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from mtnets.models import common
from mtnets.models.backbones.resnet import BasicBlock
from mtnets.models.heads import HighResolutionHead
from mtnets.models.layers import SEBlock, conv, resize
from mtnets.models.pad_net import MultiTaskDistillation
from mtnets.models.registry import register_model

FPM_SOFTMAX = ("reference", "per_task")


class InitialTaskPrediction(nn.Module):
    """Per task: BasicBlock(C_in -> C, 1x1 projection shortcut where C_in != C), BasicBlock(C),
    1x1 conv (bias) to the task's outputs (`MTL:models/mti_net.py:17-53`).

    Returns `({t: [B, H, W, C]}, {t: [B, H, W, outputs_t]})` (features, predictions).
    """

    tasks: Sequence[str]
    outputs: Mapping[str, int]
    channels: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, propagated: Mapping[str, jax.Array] | None, train: bool):
        features, predictions = {}, {}
        for t in self.tasks:
            y = x
            if propagated is not None:
                up = resize(propagated[t], (2 * propagated[t].shape[1], 2 * propagated[t].shape[2]))
                y = jnp.concatenate([x, up.astype(x.dtype)], axis=-1)
            y = BasicBlock(self.channels, dtype=self.dtype, name=f"{t}_refine_0")(y, train)
            y = BasicBlock(self.channels, dtype=self.dtype, name=f"{t}_refine_1")(y, train)
            features[t] = y
            predictions[t] = conv(
                self.outputs[t], 1, use_bias=True, dtype=self.dtype, name=f"{t}_predict"
            )(y)
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
        return {
            t: SEBlock(dtype=self.dtype, name=f"se_{t}")(shared) + features[t] for t in self.tasks
        }


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
        out: dict[str, Any] = {}
        for t in self.tasks:
            head = HighResolutionHead(
                self.outputs[t], self.head_width, dtype=self.dtype, name=f"head_{t}"
            )
            out[t] = resize(head({f"scale_{s}": distilled[s][t] for s in scales}, train), size)
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
