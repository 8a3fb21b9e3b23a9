"""PAD-Net (Xu et al., CVPR 2018) on fused HRNet features, as the MTL reference builds it
(`MTL:models/padnet.py`, docs/reference_notes.md#pad-net-as-implemented).

images -> backbone -> `HighResolutionFuse` (all scales at stride 4, concatenated, 1x1 conv +
BN + ReLU: 270 channels for HRNet-W18-small-v2) -> per auxiliary task two Bottlenecks to 256
channels and a 1x1 conv (the initial predictions) -> multi-modal distillation with spatial
attention -> per main task two Bottlenecks and a 1x1 conv -> bilinear resize to the input.

`model.apply(v, images)` returns `{task: [B, H, W, C]}` for the main tasks and
`"intermediate": {"initial": {aux_task: [B, H/4, W/4, C]}}` for the loss (PADNetLoss).
The auxiliary tasks include the main ones (MTL's AUXILARY_TASKS), as in `config.aux_tasks`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from mtnets.models import common
from mtnets.models.backbones.resnet import Bottleneck
from mtnets.models.heads import HighResolutionFuse
from mtnets.models.layers import SABlock, conv, resize
from mtnets.models.registry import register_model


class MultiTaskDistillation(nn.Module):
    """`D_t = F_t + sum_{a in aux, a != t} SA_{t,a}(F_a)` for every main task t
    (`MTL:models/padnet.py:52-73`). `features` maps every auxiliary task to `[B, H, W, C]`;
    returns `{main task: [B, H, W, C]}`. Submodules are named `{t}_from_{a}`."""

    tasks: Sequence[str]
    aux_tasks: Sequence[str]
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, features: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
        out = {}
        for t in self.tasks:
            y = features[t]
            for a in self.aux_tasks:
                if a != t:
                    channels = features[t].shape[-1]
                    block = SABlock(channels, dtype=self.dtype, name=f"{t}_from_{a}")
                    y = y + block(features[a])
            out[t] = y
        return out


class PADNet(nn.Module):
    """See the module docstring. `outputs` maps every task of `aux_tasks` (which contains
    `tasks`) to its number of output channels."""

    backbone: nn.Module
    tasks: Sequence[str]
    aux_tasks: Sequence[str]
    outputs: Mapping[str, int]
    width: int = 256  # the reference's intermediate_channels
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, images, train: bool = False) -> dict[str, Any]:
        features = self.backbone(images, train)
        x = HighResolutionFuse(dtype=self.dtype, name="fuse")(features, train)
        planes = self.width // Bottleneck.expansion
        task_features, initial = {}, {}
        for t in self.aux_tasks:
            y = Bottleneck(planes, dtype=self.dtype, name=f"initial_{t}_0")(x, train)
            y = Bottleneck(planes, dtype=self.dtype, name=f"initial_{t}_1")(y, train)
            task_features[t] = y
            initial[t] = conv(
                self.outputs[t], 1, use_bias=True, dtype=self.dtype, name=f"initial_{t}_predict"
            )(y)
        distilled = MultiTaskDistillation(
            self.tasks, self.aux_tasks, dtype=self.dtype, name="distillation"
        )(task_features)
        size = images.shape[1:3]
        out: dict[str, Any] = {}
        for t in self.tasks:
            y = Bottleneck(planes, dtype=self.dtype, name=f"head_{t}_0")(distilled[t], train)
            y = Bottleneck(planes, dtype=self.dtype, name=f"head_{t}_1")(y, train)
            y = conv(self.outputs[t], 1, use_bias=True, dtype=self.dtype, name=f"head_{t}_predict")(
                y
            )
            out[t] = resize(y, size)
        out["intermediate"] = {"initial": initial}
        return out


@register_model("pad_net", weights="mtnets.porting.mtl:PAD_NET")
def build(config, dtype) -> nn.Module:
    """PAD-Net on `config.model.backbone` for `config.tasks`, with `config.aux_tasks`."""
    aux = common.aux_tasks(config)
    return PADNet(
        common.backbone(config, dtype),
        tuple(config.tasks),
        aux,
        common.task_channels(config, aux),
        # The per-task feature width; 0: the reference's 256 (too heavy for a CPU run).
        width=config.model.head_width or 256,
        dtype=dtype,
    )
