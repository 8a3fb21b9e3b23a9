"""ResNet backbones returning multi-scale features (torchvision's layout).

`ResNet(...)(images)` returns `{"scale_0": layer1, ..., "scale_3": layer4}` at strides 4, 8, 16
and 32. Module names follow torchvision (`conv1`, `bn1`, `layer1` ... with blocks `layer1_0`,
each with `conv1`, `bn1`, ... and `downsample_conv` / `downsample_bn`), so that ImageNet
checkpoints map onto them name by name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from mtnets.models.layers import batch_norm, conv


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or 1x1 projection) shortcut."""

    features: int
    stride: int = 1
    expansion = 1
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool):
        y = conv(self.features, 3, self.stride, dtype=self.dtype, name="conv1")(x)
        y = nn.relu(batch_norm(train, dtype=self.dtype, name="bn1")(y))
        y = conv(self.features, 3, dtype=self.dtype, name="conv2")(y)
        y = batch_norm(train, dtype=self.dtype, name="bn2")(y)
        return nn.relu(y + _shortcut(self, x, self.features, train))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride, as torchvision v1.5), 1x1 expand by 4."""

    features: int
    stride: int = 1
    expansion = 4
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool):
        out = self.features * self.expansion
        y = conv(self.features, 1, dtype=self.dtype, name="conv1")(x)
        y = nn.relu(batch_norm(train, dtype=self.dtype, name="bn1")(y))
        y = conv(self.features, 3, self.stride, dtype=self.dtype, name="conv2")(y)
        y = nn.relu(batch_norm(train, dtype=self.dtype, name="bn2")(y))
        y = conv(out, 1, dtype=self.dtype, name="conv3")(y)
        y = batch_norm(train, dtype=self.dtype, name="bn3")(y)
        return nn.relu(y + _shortcut(self, x, out, train))


def _shortcut(block: nn.Module, x, features: int, train: bool):
    """Identity, or a strided 1x1 convolution + BN where the shape changes."""
    if x.shape[-1] == features and block.stride == 1:
        return x
    x = conv(features, 1, block.stride, dtype=block.dtype, name="downsample_conv")(x)
    return batch_norm(train, dtype=block.dtype, name="downsample_bn")(x)


class ResNet(nn.Module):
    """Stem (7x7/2 conv, BN, ReLU, 3x3/2 max-pool) and four stages of residual blocks."""

    stage_sizes: Sequence[int]
    block: type[nn.Module] = BasicBlock
    width: int = 64
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, images, train: bool = False) -> dict[str, Any]:
        x = conv(self.width, 7, 2, dtype=self.dtype, name="conv1")(images.astype(self.dtype))
        x = nn.relu(batch_norm(train, dtype=self.dtype, name="bn1")(x))
        x = nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
        features = {}
        for stage, num_blocks in enumerate(self.stage_sizes):
            for index in range(num_blocks):
                stride = 2 if stage > 0 and index == 0 else 1
                x = self.block(
                    self.width * 2**stage,
                    stride,
                    dtype=self.dtype,
                    name=f"layer{stage + 1}_{index}",
                )(x, train)
            features[f"scale_{stage}"] = x
        return features

    @property
    def channels(self) -> list[int]:
        """Channels of `scale_0` ... `scale_3`."""
        return [self.width * 2**s * self.block.expansion for s in range(len(self.stage_sizes))]


RESNETS = {
    # A quarter-width ResNet-10: the default experiment's backbone, fast on a CPU.
    "resnet_small": dict(stage_sizes=(1, 1, 1, 1), block=BasicBlock, width=16),
    "resnet18": dict(stage_sizes=(2, 2, 2, 2), block=BasicBlock, width=64),
    "resnet34": dict(stage_sizes=(3, 4, 6, 3), block=BasicBlock, width=64),
    "resnet50": dict(stage_sizes=(3, 4, 6, 3), block=Bottleneck, width=64),
    "resnet101": dict(stage_sizes=(3, 4, 23, 3), block=Bottleneck, width=64),
}
