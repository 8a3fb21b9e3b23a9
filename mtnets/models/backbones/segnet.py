"""SegNet (VGG-16 layout) as lorenmt/mtan builds it, with max-pool indices and unpooling.

The encoder has five stages of 3x3 conv + BN + ReLU layers (64, 128, 256, 512, 512 channels;
1, 1, 2, 2, 2 layers after each stage's first one, 13 convolutions), each followed by a 2x2
max-pool that remembers where its maxima were. The decoder mirrors it: unpool with the indices of
the matching encoder stage, then conv layers back down to 64 channels
(`MTAN:im2im_pred/model_segnet_mtan.py:18-43,127-145`). Inputs must have a height and width
divisible by 32.

Module names keep the reference's indices so that `mtnets.porting.mtan` maps state dicts name
by name: `encoder_{i}` / `encoder_conv_{i}` are `encoder_block[i]` / `conv_block_enc[i]`, and
`decoder_{k}` / `decoder_conv_{k}` are `decoder_block[k]` / `conv_block_dec[k]`, which the
reference applies at decoder stage `4 - k`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from mtnets.models.layers import batch_norm, max_pool_with_indices, max_unpool

FILTERS = (64, 128, 256, 512, 512)
# lorenmt initialises convolutions with untruncated Xavier (Glorot) normal or uniform weights
# and zero biases (`MTAN:im2im_pred/model_segnet_mtan.py:77-86`; dense and cross use uniform).
XAVIER_NORMAL = nn.initializers.variance_scaling(1.0, "fan_avg", "normal")
XAVIER_UNIFORM = nn.initializers.variance_scaling(1.0, "fan_avg", "uniform")
# PyTorch's default Conv2d init (kaiming_uniform with a = sqrt(5): U(+-1/sqrt(fan_in))), for the
# MTL attention layers; its bias init (also U(+-1/sqrt(fan_in))) is replaced by zeros.
PYTORCH_DEFAULT = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")
INITS = {
    "xavier_normal": XAVIER_NORMAL,
    "xavier_uniform": XAVIER_UNIFORM,
    "pytorch": PYTORCH_DEFAULT,
}


def conv2d(features: int, kernel: int, *, init: str, dtype: Any, name: str) -> nn.Conv:
    """A stride-1 convolution with bias, padded like PyTorch's `padding=kernel // 2`."""
    pad = kernel // 2
    return nn.Conv(
        features,
        (kernel, kernel),
        padding=((pad, pad), (pad, pad)),
        kernel_init=INITS[init],
        bias_init=nn.initializers.zeros,
        dtype=dtype,
        name=name,
    )


class ConvStack(nn.Module):
    """3x3 conv (with bias) + BN + ReLU layers, one per entry of `features`: lorenmt's
    `conv_layer` and its nested `nn.Sequential`s, flattened (`conv_{n}`, `bn_{n}`)."""

    features: Sequence[int]
    init: str = "xavier_normal"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):  # [B, H, W, C] -> [B, H, W, features[-1]]
        for n, features in enumerate(self.features):
            x = conv2d(features, 3, init=self.init, dtype=self.dtype, name=f"conv_{n}")(x)
            x = nn.relu(batch_norm(train, dtype=self.dtype, name=f"bn_{n}")(x))
        return x


class PredictionHead(nn.Module):
    """lorenmt's task head: 3x3 conv C -> C and 1x1 conv C -> outputs, both with bias and with
    nothing between them (`MTAN:im2im_pred/model_segnet_mtan.py:96-99`). `[B, H, W, C]` ->
    `[B, H, W, outputs]`; log-softmax / L2-normalisation are left to the losses."""

    outputs: int
    init: str = "xavier_normal"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        kw = dict(init=self.init, dtype=self.dtype)
        x = conv2d(x.shape[-1], 3, name="conv_0", **kw)(x)
        return conv2d(self.outputs, 1, name="conv_1", **kw)(x)


def stage_layers(filters: Sequence[int], deep: bool = False):
    """Output channels of the conv layers of the shared SegNet, as four lists indexed like the
    reference's `encoder_block`, `conv_block_enc`, `decoder_block` and `conv_block_dec`.

    `deep` (lorenmt's split "deep" variant) doubles every `conv_layer` into two conv-BN-ReLU
    layers (`MTAN:im2im_pred/model_segnet_split.py:76-92`).
    """
    f = list(filters)
    rep = 2 if deep else 1
    encoder = [(f[0],) * rep] + [(f[i + 1],) * rep for i in range(4)]
    decoder = [(f[0],) * rep] + [(f[i],) * rep for i in range(4)]
    encoder_conv = [(f[0],) * rep] + [(f[i + 1],) * rep * (1 if i == 0 else 2) for i in range(4)]
    decoder_conv = [(f[0],) * rep] + [(f[i],) * rep * (1 if i == 0 else 2) for i in range(4)]
    return encoder, encoder_conv, decoder, decoder_conv


class SegNet(nn.Module):
    """The shared SegNet. Returns the intermediate maps the attention networks read, as lists
    over the five stages:

    - `encoder_first[i]`: output of stage i's first layer (`g_encoder[i][0]`), `[B, H/2^i, W/2^i,
      filters[i]]`;
    - `encoder_out[i]`: stage i's output before pooling (`g_encoder[i][1]`);
    - `indices[i]`: its pooling indices; `bottleneck`: the last pooled map `[B, H/32, W/32, C]`;
    - `decoder_in[j]`: the unpooled input of decoder stage j (`g_upsampl[j]`), j = 0 coarsest;
    - `decoder_out[j]`: decoder stage j's output (`g_decoder[j][-1]`); `decoder_out[4]` is the
      full-resolution 64-channel map the heads read.
    """

    filters: Sequence[int] = FILTERS
    deep: bool = False
    init: str = "xavier_normal"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, images, train: bool = False) -> dict[str, Any]:
        encoder, encoder_conv, decoder, decoder_conv = stage_layers(self.filters, self.deep)
        kw = dict(init=self.init, dtype=self.dtype)
        x = images.astype(self.dtype)
        out = {k: [] for k in ("encoder_first", "encoder_out", "indices")}
        out.update(decoder_in=[], decoder_out=[])
        for i in range(5):
            first = ConvStack(encoder[i], name=f"encoder_{i}", **kw)(x, train)
            x = ConvStack(encoder_conv[i], name=f"encoder_conv_{i}", **kw)(first, train)
            out["encoder_first"].append(first)
            out["encoder_out"].append(x)
            x, index = max_pool_with_indices(x)
            out["indices"].append(index)
        out["bottleneck"] = x
        for j in range(5):
            k = 4 - j
            x = max_unpool(x, out["indices"][k])
            out["decoder_in"].append(x)
            x = ConvStack(decoder[k], name=f"decoder_{k}", **kw)(x, train)
            x = ConvStack(decoder_conv[k], name=f"decoder_conv_{k}", **kw)(x, train)
            out["decoder_out"].append(x)
        return out


def check_divisible(images: jax.Array, factor: int = 32) -> None:
    """A clear error for inputs SegNet cannot pool five times."""
    h, w = images.shape[1:3]
    if h % factor or w % factor:
        raise ValueError(
            f"SegNet models need a height and width divisible by {factor}, got {h}x{w} "
            "(e.g. the NYUv2 288x384 of lorenmt/mtan)."
        )
