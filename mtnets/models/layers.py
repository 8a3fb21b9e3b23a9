"""Building blocks shared by the architectures: PyTorch-style convolutions, BatchNorm, resizing.

Convolutions pad symmetrically like PyTorch's `padding=k//2` (Flax's "SAME" pads stride-2
convolutions asymmetrically, which would shift every feature map relative to the reference).
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

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
    return BatchNorm(use_running_average=not train, momentum=momentum, dtype=dtype, name=name)


class BatchNorm(nn.Module):
    """`flax.linen.BatchNorm` over the last axis, with the same variables and results, whose
    training-mode gradient is written out (`_normalize_batch`): two reductions and one
    elementwise pass backwards, where automatic differentiation of Flax's makes three of each.
    """

    use_running_average: bool
    momentum: float = 0.9
    epsilon: float = 1e-5
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        features = (x.shape[-1],)
        ra_mean = self.variable("batch_stats", "mean", jnp.zeros, features, jnp.float32)
        ra_var = self.variable("batch_stats", "var", jnp.ones, features, jnp.float32)
        scale = self.param("scale", nn.initializers.ones, features, jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, features, jnp.float32)
        if self.use_running_average:
            inv = jax.lax.rsqrt(ra_var.value + self.epsilon) * scale
            y = (x.astype(jnp.float32) - ra_mean.value) * inv + bias
            return y.astype(self.dtype)
        y, mean, var = _normalize_batch(x, scale, bias, self.epsilon)
        if not self.is_initializing():
            m = self.momentum
            ra_mean.value = m * ra_mean.value + (1 - m) * jax.lax.stop_gradient(mean)
            ra_var.value = m * ra_var.value + (1 - m) * jax.lax.stop_gradient(var)
        return y.astype(self.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _normalize_batch(x, scale, bias, epsilon):
    """`(y, mean, var)`: x normalised by its batch statistics over all but the last axis, then
    scaled and shifted; float32. The variance is E[x^2] - E[x]^2, floored at 0, as Flax's."""
    return _normalize_batch_fwd(x, scale, bias, epsilon)[0]


def _normalize_batch_fwd(x, scale, bias, epsilon):
    xf = x.astype(jnp.float32)
    axes = tuple(range(x.ndim - 1))
    mean = jnp.mean(xf, axes)
    var = jnp.maximum(jnp.mean(jnp.square(xf), axes) - jnp.square(mean), 0.0)
    inv = jax.lax.rsqrt(var + epsilon)
    y = (xf - mean) * (inv * scale) + bias
    return (y, mean, var), (x, mean, inv, scale)


def _normalize_batch_bwd(epsilon, residuals, cotangents):
    del epsilon
    x, mean, inv, scale = residuals
    dy, dmean, dvar = cotangents
    axes = tuple(range(x.ndim - 1))
    n = x.size // x.shape[-1]
    centred = x.astype(jnp.float32) - mean
    xhat = centred * inv
    dy = dy.astype(jnp.float32)
    dbias = jnp.sum(dy, axes)
    dscale = jnp.sum(dy * xhat, axes)
    # d/dx of the normalisation with the batch statistics held by the same x.
    dx = (scale * inv / n) * (n * dy - dbias - xhat * dscale)
    # The statistics as outputs (their cotangents are zero unless a caller differentiates them).
    dx = dx + dmean / n + centred * (2 * dvar / n)
    return dx.astype(x.dtype), dscale, dbias


_normalize_batch.defvjp(_normalize_batch_fwd, _normalize_batch_bwd)


def resize(x: jax.Array, size: tuple[int, int]) -> jax.Array:
    """Bilinear resize of `[B, H, W, C]` to `size` with half-pixel centres.

    Equals PyTorch's `F.interpolate(mode="bilinear", align_corners=False)`, which has no
    antialiasing when it downsamples, so neither does this. Upsampling by whole factors (every
    resize in HRNet, MTI-Net, PAD-Net and the heads, and the deep-supervision upsampling before
    the losses) is two-tap blends per axis (`_upsample_axis`); other sizes go through
    `jax.image.resize`, which contracts each axis with a dense interpolation matrix. Those
    matmuls were 0.21 of the 1.31 TFLOP of an MTI-Net NYUD train step (480x640, batch 8).
    """
    (in_h, in_w), (out_h, out_w) = x.shape[1:3], size
    if (in_h, in_w) == (out_h, out_w):
        return x
    if out_h % in_h == 0 and out_w % in_w == 0:
        return _upsample_axis(_upsample_axis(x, out_h // in_h, 1), out_w // in_w, 2)
    shape = (x.shape[0], out_h, out_w, x.shape[3])
    return jax.image.resize(x, shape, method="linear", antialias=False).astype(x.dtype)


def _upsample_axis(x: jax.Array, factor: int, axis: int) -> jax.Array:
    """Half-pixel bilinear upsampling of one axis by a whole `factor`, as two-tap blends.

    Output `factor * i + k` samples the input at `i + d_k`, `d_k = (k + 1/2) / factor - 1/2`
    (PyTorch's source coordinate), so it blends input `i` with its neighbour `i - 1` (d_k < 0)
    or `i + 1` (d_k >= 0) with weights fixed per phase `k`. Edge padding gives PyTorch's clamped
    borders. Only slices, multiply-adds and a reshape, which XLA can fuse with the consumer
    (the loss), forwards and backwards.
    """
    if factor == 1:
        return x
    n = x.shape[axis]
    pad = [(0, 0)] * x.ndim
    pad[axis] = (1, 1)
    padded = jnp.expand_dims(jnp.pad(x, pad, mode="edge"), axis + 1)  # [..., n + 2, 1, ...]
    previous, current, following = (
        jax.lax.slice_in_dim(padded, start, start + n, axis=axis) for start in range(3)
    )
    d = (np.arange(factor) + 0.5) / factor - 0.5
    shape = [1] * padded.ndim
    shape[axis + 1] = -1

    def weights(values):  # per-phase weights along the new phase axis
        return jnp.asarray(values.reshape(shape), x.dtype)

    before, after = d[d < 0], d[d >= 0]  # phases that blend with i - 1, and with i + 1
    stacked = jnp.concatenate(
        [
            current * weights(1 + before) + previous * weights(-before),
            current * weights(1 - after) + following * weights(after),
        ],
        axis=axis + 1,
    )  # [..., n, factor, ...]
    return stacked.reshape(*x.shape[:axis], n * factor, *x.shape[axis + 1 :])


class ConvBN(nn.Module):
    """A bias-free convolution, BatchNorm and optionally a ReLU: the reference's
    `nn.Sequential(Conv2d, BatchNorm2d[, ReLU])`, with children named `conv` and `bn`.

    `momentum` is Flax's (1 - PyTorch's): 0.9 for PyTorch's default, 0.99 inside HRNet.
    """

    features: int
    kernel: int = 1
    stride: int = 1
    dilation: int = 1
    relu: bool = False
    momentum: float = 0.9
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = conv(
            self.features, self.kernel, self.stride, self.dilation, dtype=self.dtype, name="conv"
        )(x)
        x = batch_norm(train, momentum=self.momentum, dtype=self.dtype, name="bn")(x)
        return nn.relu(x) if self.relu else x


class SEBlock(nn.Module):
    """Squeeze-and-excitation: `x * sigmoid(W2 relu(W1 mean_hw(x)))`, hidden width C // r.

    MTL `models/layers.py` `SEBlock` (r = 16), used per task at the output of MTI-Net's feature
    propagation module. `[B, H, W, C] -> [B, H, W, C]`.
    """

    reduction: int = 16
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        channels = x.shape[-1]
        s = jnp.mean(x, axis=(1, 2))
        s = nn.relu(nn.Dense(channels // self.reduction, dtype=self.dtype, name="fc1")(s))
        s = nn.sigmoid(nn.Dense(channels, dtype=self.dtype, name="fc2")(s))
        return x * s[:, None, None, :]


class SABlock(nn.Module):
    """Spatial attention: a 3x3 conv of the input gated by the sigmoid of another 3x3 conv.

    MTL `models/layers.py` `SABlock`, the unit of PAD-Net's and MTI-Net's multi-modal
    distillation (both convs pad 1 and have no bias). `[B, H, W, C_in] -> [B, H, W, features]`.
    """

    features: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        mask = nn.sigmoid(conv(self.features, 3, dtype=self.dtype, name="attention")(x))
        return conv(self.features, 3, dtype=self.dtype, name="conv")(x) * mask


# ----------------------------------------------------------------------------------------------
# SegNet / MTAN operations (lorenmt/mtan): align-corners resize, 2x2 max-pool with indices and
# the matching max-unpool.
# ----------------------------------------------------------------------------------------------


def _align_corners_taps(out_n: int, in_n: int):
    """Source taps and weights of one axis for `align_corners=True`: output pixel `o` samples
    the input at `o * (in_n - 1) / (out_n - 1)` (0 when either size is 1), as PyTorch's
    `area_pixel_compute_source_index` does."""
    import numpy as np  # local: the section above this one has no NumPy import to extend

    scale = (in_n - 1) / (out_n - 1) if out_n > 1 else 0.0
    src = np.arange(out_n, dtype=np.float64) * scale
    lo = np.minimum(np.floor(src).astype(np.int32), in_n - 1)
    hi = np.minimum(lo + 1, in_n - 1)
    return lo, hi, (src - lo).astype(np.float32)


def resize_align_corners(x: jax.Array, size: tuple[int, int]) -> jax.Array:
    """Bilinear resize of `[B, H, W, C]` to `size` with `align_corners=True` (corner pixels of
    input and output coincide).

    PyTorch's `F.interpolate(mode="bilinear", align_corners=True)`, which lorenmt's SegNet-MTAN
    decoder uses (`MTAN:im2im_pred/model_segnet_mtan.py:163,168`); JAX has no such mode. The
    taps are static, so this is two gathers and a blend per axis (no dense interpolation matrix,
    whose float32 matmul would run at TF32 precision on some accelerators).
    """
    (in_h, in_w), (out_h, out_w) = x.shape[1:3], size
    if (in_h, in_w) == (out_h, out_w):
        return x
    y0, y1, wy = _align_corners_taps(out_h, in_h)
    x0, x1, wx = _align_corners_taps(out_w, in_w)
    wy = jnp.asarray(wy, x.dtype)[:, None, None]
    wx = jnp.asarray(wx, x.dtype)[:, None]
    rows = jnp.take(x, y0, axis=1) * (1 - wy) + jnp.take(x, y1, axis=1) * wy
    return jnp.take(rows, x0, axis=2) * (1 - wx) + jnp.take(rows, x1, axis=2) * wx


def _check_even(x: jax.Array, what: str) -> None:
    h, w = x.shape[1:3]
    if h % 2 or w % 2:
        raise ValueError(
            f"{what} needs an even height and width, got {h}x{w}; SegNet inputs must be "
            "divisible by 32 (2 per pooling stage)."
        )


def max_pool_with_indices(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """2x2 stride-2 max-pool of `[B, H, W, C]` that also returns where each maximum was.

    Returns `(pooled, index)`, both `[B, H/2, W/2, C]`; `index` (int8) is the position of the
    maximum inside its window, 0 1 / 2 3 in row-major order, the first one on ties, like
    PyTorch's `MaxPool2d(2, 2, return_indices=True)` (whose flat indices point into the same
    non-overlapping windows). The windows come from a reshape, so this is elementwise work; the
    pooled value is gathered at the index, so the gradient goes to that one element as in
    PyTorch.
    """
    _check_even(x, "max_pool_with_indices")
    b, h, w, c = x.shape
    win = x.reshape(b, h // 2, 2, w // 2, 2, c)
    corners = jnp.stack(
        [win[:, :, 0, :, 0], win[:, :, 0, :, 1], win[:, :, 1, :, 0], win[:, :, 1, :, 1]], axis=-1
    )
    index = jnp.argmax(corners, axis=-1)  # the first maximum, as PyTorch
    pooled = jnp.take_along_axis(corners, index[..., None], axis=-1)[..., 0]
    return pooled, index.astype(jnp.int8)


def max_unpool(x: jax.Array, index: jax.Array) -> jax.Array:
    """Inverse of `max_pool_with_indices`: `[B, h, w, C]` values and window indices to a
    `[B, 2h, 2w, C]` map that holds each value at its index and zeros elsewhere
    (`nn.MaxUnpool2d(2, 2)`). A one-hot select and a reshape; no scatter."""
    b, h, w, c = x.shape
    hot = index[..., None] == jnp.arange(4, dtype=index.dtype)
    spread = jnp.where(hot, x[..., None], jnp.zeros((), x.dtype))  # [B, h, w, C, 4]
    spread = spread.reshape(b, h, w, c, 2, 2).transpose(0, 1, 4, 2, 5, 3)
    return spread.reshape(b, 2 * h, 2 * w, c)
