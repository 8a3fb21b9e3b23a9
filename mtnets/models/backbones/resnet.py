"""ResNet backbones returning multi-scale features (torchvision's layout), optionally dilated.

`ResNet(...)(images)` returns `{"scale_0": layer1, ..., "scale_3": layer4}` at strides 4, 8, 16
and 32, or 4, 8, 8, 8 with `output_stride=8` (the dilated ResNet of the MTL reference, whose
DeepLab heads read `scale_3`). Module names follow torchvision (`conv1`, `bn1`, `layer1` ...
with blocks `layer1_0`, each with `conv1`, `bn1`, ... and `downsample_conv` / `downsample_bn`),
so that ImageNet checkpoints map onto them name by name.

Dilation follows MTL `models/resnet_dilated.py` (`ResnetDilated._nostride_dilate`), which
differs from torchvision's `replace_stride_with_dilation`: in a stage dilated by d, the 3x3
convolution that carried the stride gets dilation d // 2 (torchvision: the previous stage's
dilation) and every other 3x3 convolution of the stage gets d; strided 1x1 convolutions lose
their stride. Output stride 8 dilates layer3 by 2 and layer4 by 4; output stride 16 dilates
layer4 by 2.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from mtnets.models.backbones.registry import BACKBONES
from mtnets.models.layers import batch_norm, conv


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or 1x1 projection) shortcut.

    `dilation` is that of `conv2`; `first_dilation` (0: `dilation`) that of `conv1`, the
    convolution that carries the stride. `momentum` is Flax's BatchNorm momentum (0.9 is
    PyTorch's default 0.1; HRNet's blocks use 0.99).
    """

    features: int
    stride: int = 1
    dilation: int = 1
    first_dilation: int = 0
    momentum: float = 0.9
    dtype: Any = jnp.float32
    expansion = 1

    @nn.compact
    def __call__(self, x, train: bool):
        first = self.first_dilation or self.dilation
        y = conv(self.features, 3, self.stride, first, dtype=self.dtype, name="conv1")(x)
        y = nn.relu(_bn(self, train, "bn1")(y))
        y = conv(self.features, 3, 1, self.dilation, dtype=self.dtype, name="conv2")(y)
        y = _bn(self, train, "bn2")(y)
        return nn.relu(y + _shortcut(self, x, self.features, train))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride, as torchvision v1.5), 1x1 expand by 4.

    The 3x3 convolution has dilation `first_dilation` (0: `dilation`): it is the one that
    carries the stride, so only the first block of a dilated stage sets it.
    """

    features: int
    stride: int = 1
    dilation: int = 1
    first_dilation: int = 0
    momentum: float = 0.9
    dtype: Any = jnp.float32
    expansion = 4

    @nn.compact
    def __call__(self, x, train: bool):
        out = self.features * self.expansion
        y = conv(self.features, 1, dtype=self.dtype, name="conv1")(x)
        y = nn.relu(_bn(self, train, "bn1")(y))
        first = self.first_dilation or self.dilation
        y = conv(self.features, 3, self.stride, first, dtype=self.dtype, name="conv2")(y)
        y = nn.relu(_bn(self, train, "bn2")(y))
        y = conv(out, 1, dtype=self.dtype, name="conv3")(y)
        y = _bn(self, train, "bn3")(y)
        return nn.relu(y + _shortcut(self, x, out, train))


def _bn(block: nn.Module, train: bool, name: str):
    return batch_norm(train, momentum=block.momentum, dtype=block.dtype, name=name)


def _shortcut(block: nn.Module, x, features: int, train: bool):
    """Identity, or a strided 1x1 convolution + BN where the shape changes."""
    if x.shape[-1] == features and block.stride == 1:
        return x
    x = conv(features, 1, block.stride, dtype=block.dtype, name="downsample_conv")(x)
    return _bn(block, train, "downsample_bn")(x)


def stage_dilations(output_stride: int) -> tuple[int, int, int, int]:
    """The dilation d of each of the four stages for an output stride of 32, 16 or 8 (MTL
    `ResnetDilated(dilate_scale=...)`); a stage with d > 1 has no stride."""
    table = {32: (1, 1, 1, 1), 16: (1, 1, 1, 2), 8: (1, 1, 2, 4)}
    if output_stride not in table:
        raise ValueError(f"ResNet output_stride must be 32, 16 or 8, got {output_stride}.")
    return table[output_stride]


def stem(images, width: int, train: bool, dtype) -> Any:
    """The ResNet stem: 7x7/2 conv `conv1`, BN `bn1`, ReLU, 3x3/2 max-pool. Its modules belong
    to the module whose compact method calls this."""
    x = conv(width, 7, 2, dtype=dtype, name="conv1")(images.astype(dtype))
    x = nn.relu(batch_norm(train, dtype=dtype, name="bn1")(x))
    return nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))


def stage(
    x,
    index: int,
    num_blocks: int,
    train: bool,
    *,
    block: type[nn.Module],
    width: int,
    output_stride: int,
    dtype,
    blocks: Sequence[int] | None = None,
):
    """Stage `index` (0-3) of `num_blocks` residual blocks `layer{index + 1}_{i}`, or only the
    blocks `blocks` of it (the models that act inside a stage). Like `stem`, its modules belong
    to the calling module."""
    d = stage_dilations(output_stride)[index]
    for i in range(num_blocks) if blocks is None else blocks:
        first = i == 0
        x = block(
            width * 2**index,
            2 if index > 0 and first and d == 1 else 1,
            dilation=d,
            # MTL `_nostride_dilate`: the formerly strided 3x3 conv gets d // 2.
            first_dilation=max(d // 2, 1) if first and index > 0 else d,
            dtype=dtype,
            name=f"layer{index + 1}_{i}",
        )(x, train)
    return x


class ResNet(nn.Module):
    """Stem (7x7/2 conv, BN, ReLU, 3x3/2 max-pool) and four stages of residual blocks."""

    stage_sizes: Sequence[int]
    block: type[nn.Module] = BasicBlock
    width: int = 64
    output_stride: int = 32
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, images, train: bool = False) -> dict[str, Any]:
        x = stem(images, self.width, train, self.dtype)
        features = {}
        for index, num_blocks in enumerate(self.stage_sizes):
            x = stage(x, index, num_blocks, train, **self._stage_kw())
            features[f"scale_{index}"] = x
        return features

    def _stage_kw(self) -> dict[str, Any]:
        return dict(
            block=self.block, width=self.width, output_stride=self.output_stride, dtype=self.dtype
        )

    @property
    def channels(self) -> list[int]:
        """Channels of `scale_0` ... `scale_3`."""
        return [self.width * 2**s * self.block.expansion for s in range(len(self.stage_sizes))]


class ResNetPieces(ResNet):
    """The same ResNet (same parameter tree), run one piece per call, for the models that act
    between stages or before a stage's last block (MTAN, cross-stitch, NDDR-CNN).

    `part` is `"stem"`, `"layer{s}"` (stage s, 1-4), or `"layer{s}:except_last"` /
    `"layer{s}:last"` (MTL `forward_stage_except_last_block` / `forward_stage_last_block`).
    Calling it once per part shares the parameters, so its variables and the ImageNet
    conversions are those of `ResNet`.
    """

    @nn.compact
    def __call__(self, x, part: str, train: bool = False):
        if part == "stem":
            return stem(x, self.width, train, self.dtype)
        layer, _, which = part.partition(":")
        index = int(layer.removeprefix("layer")) - 1
        num = self.stage_sizes[index]
        blocks = {"": range(num), "except_last": range(num - 1), "last": [num - 1]}[which]
        return stage(x, index, num, train, blocks=blocks, **self._stage_kw())


def resnet_trunk(
    resnet: str = "resnet50", output_stride: int = 8, dtype: Any = jnp.float32, **kw
) -> ResNetPieces:
    """`ResNetPieces` of the backbone `resnet` (a `RESNETS` name); `kw` takes `name=...`."""
    return ResNetPieces(**RESNETS[resnet], output_stride=output_stride, dtype=dtype, **kw)


RESNETS = {
    # A quarter-width ResNet-10: the default experiment's backbone, fast on a CPU.
    "resnet_small": dict(stage_sizes=(1, 1, 1, 1), block=BasicBlock, width=16),
    # ResNet-18's two blocks per stage at quarter width: the ResNet family (MTAN, cross-stitch,
    # NDDR-CNN) on a CPU (benchmarks/results.py).
    "resnet18_narrow": dict(stage_sizes=(2, 2, 2, 2), block=BasicBlock, width=16),
    "resnet18": dict(stage_sizes=(2, 2, 2, 2), block=BasicBlock, width=64),
    "resnet34": dict(stage_sizes=(3, 4, 6, 3), block=BasicBlock, width=64),
    "resnet50": dict(stage_sizes=(3, 4, 6, 3), block=Bottleneck, width=64),
    "resnet101": dict(stage_sizes=(3, 4, 23, 3), block=Bottleneck, width=64),
}


def _register(name: str) -> None:
    @BACKBONES.register(name)
    def build(dtype, *, dilated: bool = False) -> ResNet:
        return ResNet(**RESNETS[name], output_stride=8 if dilated else 32, dtype=dtype)


for _name in RESNETS:
    _register(_name)
