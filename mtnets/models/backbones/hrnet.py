"""HRNet backbones (Wang et al., "Deep High-Resolution Representation Learning", TPAMI 2020)
returning `{"scale_0": [B, H/4, W/4, C_0], ..., "scale_3": [B, H/32, W/32, C_3]}`.

The layout is that of the MTL reference (`MTL:models/seg_hrnet.py`, itself the
HRNet-Image-Classification code): a stem of two stride-2 3x3 convs (64 channels), `layer1` of
Bottlenecks, then stages 2-4 of high-resolution modules with 2, 3 and 4 parallel branches, each
stage preceded by a transition that adapts channels and adds a stride-2 branch. Every BatchNorm
of the backbone uses PyTorch momentum 0.01 (Flax 0.99), `BN_MOMENTUM` of the reference.

Variants (`HRNETS`, named as timm names them):
- `hrnet_w18_small_v2`: what MTL calls `hrnet_w18` (`model_info/hrnet_w18.yml`, ImageNet
  weights `hrnet_w18_small_model_v2.pth`): layer1 of 2 blocks; stages of 1/3/2 modules with 2
  BasicBlocks per branch; channels 18/36/72/144 (docs/reference_notes.md#hrnet-18-in-mtl).
- `hrnet_w18`, `hrnet_w48`: the full design (layer1 of 4 blocks; 1/4/3 modules with 4 blocks
  per branch), channels 18·2^s and 48·2^s.
- `hrnet_tiny`: ours, for CPU experiments (the default config): a one-module-per-stage
  HRNet with one block per branch, a 32-channel stem and channels 8/16/32/64.

Module names mirror the PyTorch state dict (`stage3_1/branch2_0` for `stage3.1.branches.2.0`,
`stage3_1/fuse0_2` for `stage3.1.fuse_layers.0.2`), so that `mtnets.porting` maps keys 1:1.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from mtnets.models.backbones.registry import BACKBONES
from mtnets.models.backbones.resnet import BasicBlock, Bottleneck
from mtnets.models.layers import ConvBN, resize

HRNET_MOMENTUM = 0.99  # PyTorch BN_MOMENTUM = 0.01 (MTL:models/seg_hrnet.py:27)


@dataclasses.dataclass(frozen=True)
class HRNetSpec:
    """The shape of an HRNet: stem width, layer1 Bottlenecks (planes, count), and per stage
    2-4 the number of modules, blocks per branch and branch channels."""

    stem: int = 64
    layer1_planes: int = 64
    layer1_blocks: int = 4
    modules: Sequence[int] = (1, 4, 3)
    blocks: int = 4
    channels: Sequence[int] = (18, 36, 72, 144)


HRNETS = {
    "hrnet_w18_small_v2": HRNetSpec(layer1_blocks=2, modules=(1, 3, 2), blocks=2),
    "hrnet_w18": HRNetSpec(),
    "hrnet_w48": HRNetSpec(channels=(48, 96, 192, 384)),
    "hrnet_tiny": HRNetSpec(
        stem=32,
        layer1_planes=16,
        layer1_blocks=1,
        modules=(1, 1, 1),
        blocks=1,
        channels=(8, 16, 32, 64),
    ),
}


def _register(name: str) -> None:
    @BACKBONES.register(name)
    def build(dtype, *, dilated: bool = False) -> HRNet:
        if dilated:
            raise ValueError(f"config.model.dilated applies to ResNets, not {name!r}.")
        return HRNet(HRNETS[name], dtype=dtype)


for _name in HRNETS:
    _register(_name)


def _conv_bn(features, kernel=3, stride=1, relu=True, dtype=jnp.float32, name=None) -> ConvBN:
    return ConvBN(
        features, kernel, stride, relu=relu, momentum=HRNET_MOMENTUM, dtype=dtype, name=name
    )


class HighResolutionModule(nn.Module):
    """Parallel branches of BasicBlocks, then a full exchange between them.

    Output branch i is `relu(sum_j F_ij(x_j))` with F_ii the identity; for j > i a 1x1
    conv + BN to C_i and a bilinear resize (half-pixel) to branch i's size; for j < i a chain of
    i - j stride-2 3x3 conv + BN, all but the last with a ReLU and C_j channels, the last to
    C_i (`MTL:models/seg_hrnet.py:180-253`).
    """

    channels: Sequence[int]
    blocks: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, xs: list, train: bool) -> list:
        xs = list(xs)
        for b, c in enumerate(self.channels):
            for k in range(self.blocks):
                block = BasicBlock(
                    c, momentum=HRNET_MOMENTUM, dtype=self.dtype, name=f"branch{b}_{k}"
                )
                xs[b] = block(xs[b], train)
        out = []
        for i, c in enumerate(self.channels):
            y = xs[i]
            for j, x in enumerate(xs):
                if j > i:
                    x = _conv_bn(c, 1, relu=False, dtype=self.dtype, name=f"fuse{i}_{j}")(x, train)
                    y = y + resize(x, y.shape[1:3])
                elif j < i:
                    for k in range(i - j):
                        last = k == i - j - 1
                        x = _conv_bn(
                            self.channels[i] if last else self.channels[j],
                            3,
                            2,
                            relu=not last,
                            dtype=self.dtype,
                            name=f"fuse{i}_{j}_{k}",
                        )(x, train)
                    y = y + x
            out.append(nn.relu(y))
        return out


class HRNet(nn.Module):
    """An HRNet backbone; see the module docstring. Input `[B, H, W, 3]`, H and W divisible by
    32 for the exchange units to see exact factor-2 sizes."""

    spec: HRNetSpec = HRNETS["hrnet_w18_small_v2"]
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, images, train: bool = False) -> dict[str, Any]:
        spec, dtype = self.spec, self.dtype
        x = images.astype(dtype)
        x = _conv_bn(spec.stem, 3, 2, dtype=dtype, name="stem1")(x, train)
        x = _conv_bn(spec.stem, 3, 2, dtype=dtype, name="stem2")(x, train)
        for k in range(spec.layer1_blocks):
            x = Bottleneck(
                spec.layer1_planes, momentum=HRNET_MOMENTUM, dtype=dtype, name=f"layer1_{k}"
            )(x, train)
        xs = [x]
        for stage, modules in enumerate(spec.modules, start=2):
            channels = spec.channels[:stage]
            xs = self._transition(xs, channels, f"transition{stage - 1}", train)
            for m in range(modules):
                xs = HighResolutionModule(
                    channels, spec.blocks, dtype=dtype, name=f"stage{stage}_{m}"
                )(xs, train)
        return {f"scale_{s}": x for s, x in enumerate(xs)}

    def _transition(self, xs: list, channels: Sequence[int], name: str, train: bool) -> list:
        """Existing branches: a 3x3 conv + BN + ReLU where the channels change; a new branch:
        stride-2 3x3 conv + BN + ReLU from the last one (`_make_transition_layer`)."""
        out = []
        for i, c in enumerate(channels):
            if i < len(xs):
                x = xs[i]
                if x.shape[-1] != c:
                    x = _conv_bn(c, 3, dtype=self.dtype, name=f"{name}_{i}")(x, train)
            else:
                x = _conv_bn(c, 3, 2, dtype=self.dtype, name=f"{name}_{i}_0")(xs[-1], train)
            out.append(x)
        return out

    @property
    def channels(self) -> list[int]:
        """Channels of `scale_0` ... `scale_3`."""
        return list(self.spec.channels)
