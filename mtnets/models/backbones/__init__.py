"""Backbones: multi-scale feature extractors `[B, H, W, 3] -> {"scale_0": finest, ...}`.

`create_backbone("resnet50", dilated=True)` is MTL's dilated ResNet-50 (`{"scale_0".."scale_3"}`
at strides 4, 8, 8, 8; 256/512/1024/2048 channels); the HRNets return four scales at strides
4, 8, 16, 32.

A backbone is a builder `(dtype, *, dilated) -> flax.linen.Module` registered by name in
`BACKBONES` (`@BACKBONES.register("my_backbone")`, see docs/extending.md); the ResNets and
HRNets register theirs in their modules.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from mtnets.models.backbones import hrnet, resnet  # noqa: F401  (they register their backbones)
from mtnets.models.backbones.registry import BACKBONES


def create_backbone(name: str, dtype=jnp.float32, *, dilated: bool = False) -> nn.Module:
    """The backbone `name` (one of `BACKBONES`); `dilated=True` gives a ResNet of output stride
    8 (MTL `ResnetDilated`). A clear error names the choices for an unknown name."""
    return BACKBONES.get(name)(dtype, dilated=dilated)
