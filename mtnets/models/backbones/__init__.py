"""Backbones: multi-scale feature extractors `[B, H, W, 3] -> {"scale_0": finest, ...}`.

`create_backbone("resnet50", dilated=True)` is MTL's dilated ResNet-50 (`{"scale_0".."scale_3"}`
at strides 4, 8, 8, 8; 256/512/1024/2048 channels); the HRNets return four scales at strides
4, 8, 16, 32.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from mtnets.models.backbones.hrnet import HRNETS, HRNet
from mtnets.models.backbones.resnet import RESNETS, ResNet

BACKBONES = (*RESNETS, *HRNETS)


def create_backbone(name: str, dtype=jnp.float32, *, dilated: bool = False) -> nn.Module:
    """A backbone by name (`BACKBONES`); `dilated=True` gives a ResNet of output stride 8 (MTL
    `ResnetDilated`). A clear error names the choices for an unknown name."""
    if name in RESNETS:
        return ResNet(**RESNETS[name], output_stride=8 if dilated else 32, dtype=dtype)
    if name in HRNETS:
        if dilated:
            raise ValueError(f"config.model.dilated applies to ResNets, not {name!r}.")
        return HRNet(HRNETS[name], dtype=dtype)
    raise ValueError(
        f"Unknown config.model.backbone {name!r}; choose one of {', '.join(BACKBONES)}."
    )
