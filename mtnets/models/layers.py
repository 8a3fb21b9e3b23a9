"""Building blocks shared by the architectures: PyTorch-style convolutions, BatchNorm, resizing.

Convolutions pad symmetrically like PyTorch's `padding=k//2` (Flax's "SAME" pads stride-2
convolutions asymmetrically, which would shift every feature map relative to the reference).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any

# PyTorch's default conv init for ReLU networks as torchvision's ResNet uses it.
kaiming_fan_out = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def conv(
    features: int,
    kernel: int,
    stride: int = 1,
    dilation: int = 1,
    *,
    use_bias: bool = False,
    dtype: Dtype = jnp.float32,
    name: str | None = None,
) -> nn.Conv:
    """A square convolution padded like PyTorch's `Conv2d(padding=dilation * (kernel // 2))`."""
    pad = dilation * (kernel // 2)
    return nn.Conv(
        features,
        (kernel, kernel),
        strides=(stride, stride),
        padding=((pad, pad), (pad, pad)),
        kernel_dilation=(dilation, dilation),
        use_bias=use_bias,
        kernel_init=kaiming_fan_out,
        dtype=dtype,
        name=name,
    )


def batch_norm(train: bool, *, momentum: float = 0.9, dtype: Dtype = jnp.float32, name=None):
    """BatchNorm with PyTorch's eps; Flax `momentum` is 1 - PyTorch's (0.1 -> 0.9)."""
    return nn.BatchNorm(
        use_running_average=not train, momentum=momentum, epsilon=1e-5, dtype=dtype, name=name
    )


def resize(x: jax.Array, size: tuple[int, int]) -> jax.Array:
    """Bilinear resize of `[B, H, W, C]` to `size` with half-pixel centres.

    Equals PyTorch's `F.interpolate(mode="bilinear", align_corners=False)`, which has no
    antialiasing when it downsamples, so neither does this.
    """
    if tuple(x.shape[1:3]) == tuple(size):
        return x
    shape = (x.shape[0], *size, x.shape[3])
    return jax.image.resize(x, shape, method="linear", antialias=False).astype(x.dtype)
