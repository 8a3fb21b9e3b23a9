"""MTAN on a dilated ResNet (MTL `models/mtan.py`), registered as `mtan`.

Reads `config.model.backbone` (a ResNet: `resnet18`, `resnet50`, ...; default `resnet50`),
`config.model.output_stride` (8, the reference's dilated ResNet) and `config.model.head_width`.
lorenmt's SegNet-MTAN is `segnet_mtan` (`mtnets.models.segnet_models`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from mtnets.models import common
from mtnets.models.backbones.resnet import RESNETS, Bottleneck, resnet_trunk, stage_dilations
from mtnets.models.heads import DeepLabHead
from mtnets.models.layers import resize
from mtnets.models.registry import register_model
from mtnets.models.segnet_models import AttentionMask


@register_model(
    "mtan",
    # The attention concatenates the maps of consecutive stages.
    input_divisor=32,
    weights="mtnets.porting.mtan:RESNET_FAMILY",
    defaults={"output_stride": 8},  # MTL ResnetDilated(dilate_scale=8)
)
def build(config, dtype) -> nn.Module:
    return ResNetMTAN(
        common.task_channels(config),
        resnet=common.resnet_name(config),
        output_stride=config.model.output_stride,
        head_width=config.model.head_width,
        dtype=dtype,
    )


def pool_after_stages(output_stride: int) -> list[bool]:
    """Where MTAN max-pools its attention features so that they match the next stage: after
    stage s when stage s + 1 halves the resolution (stage 2 always; MTL's `downsample`
    config: layer1 True, layer2-3 False for output stride 8)."""
    return [True] + [d == 1 for d in stage_dilations(output_stride)[2:]]


class ResNetMTAN(nn.Module):
    """MTAN on a dilated ResNet with DeepLab heads (MTL `models/mtan.py`,
    docs/reference_notes.md#mtan).

    Each stage k of the shared ResNet is split before its last block: u_k_b (all blocks but the
    last) and u_k_t (the stage output). Per task, a mask from u_1_b (k = 1) or from
    `concat(u_k_b, a_{k-1})` gates u_k_t; for k < 4 a shared refinement Bottleneck maps the
    product to the next stage's width (and a 2x2 max-pool halves it where the next stage is
    strided). a_4 feeds the task's DeepLab head; predictions are resized bilinearly
    (align_corners=False) to the input. Modules: `backbone`, `attention_{k}_{task}`,
    `refine_{k}`, `head_{task}`.
    """

    outputs: Mapping[str, int]
    resnet: str = "resnet50"
    output_stride: int = 8
    head_width: int = 0  # the DeepLab heads' width; 0: the reference's 256
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, images, train: bool = False) -> dict[str, jax.Array]:
        if min(RESNETS[self.resnet]["stage_sizes"]) < 2:
            raise ValueError(
                f"MTAN splits every ResNet stage before its last block, so each stage needs two "
                f"blocks or more; {self.resnet!r} has {RESNETS[self.resnet]['stage_sizes']}."
            )
        trunk = resnet_trunk(self.resnet, self.output_stride, self.dtype, name="backbone")
        channels = trunk.channels
        x = trunk(images, "stem", train)
        bottom, top = [], []
        for k in range(1, 5):
            x = trunk(x, f"layer{k}:except_last", train)
            bottom.append(x)
            x = trunk(x, f"layer{k}:last", train)
            top.append(x)
        refine = [
            Bottleneck(c // 4, dtype=self.dtype, name=f"refine_{k + 1}")
            for k, c in enumerate(channels[1:])
        ]
        pool = pool_after_stages(self.output_stride)
        size = images.shape[1:3]
        predictions = {}
        for task, outputs in self.outputs.items():
            a = None
            for k in range(4):
                x = bottom[k] if a is None else jnp.concatenate([bottom[k], a], axis=-1)
                c = channels[k]
                mask = AttentionMask(
                    c // 4, c, init="pytorch", dtype=self.dtype, name=f"attention_{k + 1}_{task}"
                )(x, train)
                a = mask * top[k]
                if k < 3:
                    a = refine[k](a, train)
                    a = nn.max_pool(a, (2, 2), (2, 2)) if pool[k] else a
            width = self.head_width or 256
            head = DeepLabHead(outputs, width=width, dtype=self.dtype, name=f"head_{task}")
            predictions[task] = resize(head(a, train), size)
        return predictions
