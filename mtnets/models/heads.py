"""Task heads: per-task decoders from multi-scale backbone features."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from mtnets.models.layers import batch_norm, conv, resize


class HighResolutionHead(nn.Module):
    """HRNet's segmentation head (MTL `HighResolutionHead`, REFERENCE.md §1.6).

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
    def __call__(self, features: dict[str, Any], train: bool = False):
        scales = [features[k] for k in sorted(features)]
        size = scales[0].shape[1:3]
        x = jnp.concatenate([resize(f, size) for f in scales], axis=-1)
        hidden = self.hidden or x.shape[-1]
        x = conv(hidden, 1, use_bias=True, dtype=self.dtype, name="fuse_conv")(x)
        x = nn.relu(batch_norm(train, dtype=self.dtype, name="fuse_bn")(x))
        return conv(self.outputs, 1, use_bias=True, dtype=self.dtype, name="predict")(x)
