"""Task heads: per-task decoders from multi-scale backbone features.

Both heads take the backbone's feature dict `{"scale_0": [B, H_0, W_0, C_0], ...}` (finest
first) and return `[B, H, W, outputs]` at the resolution they work at (the finest scale for
the HRNet head, the coarsest for the DeepLab head); the model upsamples to the input size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from mtnets.models.layers import ConvBN, batch_norm, conv, resize
from mtnets.registry import Registry


def scale_keys(features: Mapping[str, Any]) -> list[str]:
    """The keys `scale_0`, `scale_1`, ... of a feature dict, finest first."""
    return sorted(features, key=lambda k: int(k.rsplit("_", 1)[-1]))


class HighResolutionFuse(nn.Module):
    """Every scale upsampled to the finest one and concatenated (C = sum of channels), then a
    1x1 conv C -> `hidden` (0: C) with bias, BN and ReLU (MTL `HighResolutionFuse`, the input
    of PAD-Net, and the first half of `HighResolutionHead`). Output `[B, H_0, W_0, hidden]`."""

    hidden: int = 0
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, features: Mapping[str, Any], train: bool = False):
        scales = [features[k] for k in scale_keys(features)]
        size = scales[0].shape[1:3]
        x = jnp.concatenate([resize(f, size) for f in scales], axis=-1)
        hidden = self.hidden or x.shape[-1]
        x = conv(hidden, 1, use_bias=True, dtype=self.dtype, name="fuse_conv")(x)
        return nn.relu(batch_norm(train, dtype=self.dtype, name="fuse_bn")(x))


class HighResolutionHead(nn.Module):
    """HRNet's segmentation head (MTL `HighResolutionHead`,
    docs/reference_notes.md#mti-net-as-implemented).

    Upsamples every scale to the finest one, concatenates them (C = sum of channels), then a
    1x1 conv C -> C with bias, BN, ReLU, and a 1x1 conv to `outputs` channels. Input: a dict of
    `[B, H_s, W_s, C_s]` maps keyed `scale_0` (finest) ...; output: `[B, H_0, W_0, outputs]`.
    `hidden` narrows the middle layer (0, the reference: C); that conv at stride 4 dominates
    the cost of small backbones.
    """

    outputs: int
    hidden: int = 0
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, features: Mapping[str, Any], train: bool = False):
        scales = [features[k] for k in scale_keys(features)]
        size = scales[0].shape[1:3]
        x = jnp.concatenate([resize(f, size) for f in scales], axis=-1)
        hidden = self.hidden or x.shape[-1]
        x = conv(hidden, 1, use_bias=True, dtype=self.dtype, name="fuse_conv")(x)
        x = nn.relu(batch_norm(train, dtype=self.dtype, name="fuse_bn")(x))
        return conv(self.outputs, 1, use_bias=True, dtype=self.dtype, name="predict")(x)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling (DeepLab v3; MTL `models/aspp.py`,
    docs/reference_notes.md#deeplab-head).

    Five branches of `width` channels, each conv + BN + ReLU: a 1x1 conv (`branch_0`), three
    3x3 convs with dilations `rates` (`branch_1..3`), and image pooling (global mean, 1x1 conv,
    broadcast back: the reference's bilinear resize of a 1x1 map; `pool`). Concatenated and
    projected by a 1x1 conv + BN + ReLU (`project`), then Dropout(0.5).
    `[B, H, W, C] -> [B, H, W, width]`.
    """

    rates: Sequence[int] = (12, 24, 36)
    width: int = 256
    dropout: float = 0.5
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        branches = [ConvBN(self.width, 1, relu=True, dtype=self.dtype, name="branch_0")(x, train)]
        for i, rate in enumerate(self.rates):
            branch = ConvBN(
                self.width, 3, dilation=rate, relu=True, dtype=self.dtype, name=f"branch_{i + 1}"
            )
            branches.append(branch(x, train))
        pooled = jnp.mean(x, axis=(1, 2), keepdims=True)
        pooled = ConvBN(self.width, 1, relu=True, dtype=self.dtype, name="pool")(pooled, train)
        branches.append(jnp.broadcast_to(pooled, (*x.shape[:3], self.width)))
        y = jnp.concatenate(branches, axis=-1)
        y = ConvBN(self.width, 1, relu=True, dtype=self.dtype, name="project")(y, train)
        return nn.Dropout(self.dropout, deterministic=not train)(y)


class DeepLabHead(nn.Module):
    """DeepLab v3 head (MTL `models/aspp.py` `DeepLabHead`): ASPP(rates 12, 24, 36) -> 256,
    3x3 conv + BN + ReLU, 1x1 conv (bias) to `outputs`.

    Takes the backbone's feature dict and reads its coarsest scale (the dilated ResNet's
    `scale_3`, stride 8), or a single `[B, H, W, C]` map. Output `[B, H, W, outputs]`. In
    training it needs a `dropout` RNG (the train step passes one).
    """

    outputs: int
    rates: Sequence[int] = (12, 24, 36)
    width: int = 256
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, features: Mapping[str, Any] | jax.Array, train: bool = False):
        if isinstance(features, Mapping):
            features = features[scale_keys(features)[-1]]
        x = ASPP(self.rates, self.width, dtype=self.dtype, name="aspp")(features, train)
        x = ConvBN(self.width, 3, relu=True, dtype=self.dtype, name="conv_bn")(x, train)
        return conv(self.outputs, 1, use_bias=True, dtype=self.dtype, name="predict")(x)


# A head is a builder `(outputs, hidden, dtype) -> flax.linen.Module` registered by name;
# `hidden` is config.model.head_width (0: the reference's width).
HEADS = Registry("config.model.head")


@HEADS.register("hrnet")
def _hrnet_head(outputs: int, hidden: int, dtype) -> nn.Module:
    return HighResolutionHead(outputs, hidden, dtype=dtype)


@HEADS.register("deeplab")
def _deeplab_head(outputs: int, hidden: int, dtype) -> nn.Module:
    return DeepLabHead(outputs, width=hidden or 256, dtype=dtype)


def create_head(name: str, outputs: int, hidden: int = 0, dtype=jnp.float32) -> nn.Module:
    """The head `name` (one of `HEADS`: `hrnet`, the HighResolutionHead, or `deeplab`) with
    `outputs` channels."""
    return HEADS.get(name)(outputs, hidden, dtype)
