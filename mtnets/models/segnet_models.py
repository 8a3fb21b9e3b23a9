"""lorenmt/mtan's SegNet models for NYUv2: MTAN, STAN, single-task, split, dense, cross-stitch.

Every model maps `[B, H, W, 3]` images (H, W divisible by 32) to `{task: [B, H, W, C]}`, with
`outputs` an ordered `{task: channels}`. The reference heads end in `log_softmax` (semantic
segmentation) and an L2-normalisation (normals); here they return the logits and the raw normals
(the convention of every mtnets model, docs/models.md), and the losses apply those functions.
`mtnets.porting.mtan.lorenmt_outputs` turns our outputs into the reference's for comparisons.

Layer by layer as `MTAN:im2im_pred/model_segnet_{mtan,stan,single,split,dense,cross}.py`, with
module names that keep the reference's indices (see `mtnets.porting.mtan`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from mtnets.models import common
from mtnets.models.backbones.segnet import (
    FILTERS,
    ConvStack,
    PredictionHead,
    SegNet,
    check_divisible,
    conv2d,
)
from mtnets.models.layers import batch_norm, max_pool_with_indices, max_unpool, resize_align_corners
from mtnets.models.registry import register_model

# Every model unpools with the indices of five 2x2 max-pools.
DIVISOR = 32
# `mtnets.porting.mtan`'s conversion of lorenmt's state dicts.
WEIGHTS = "mtnets.porting.mtan:SEGNET_FAMILY"


class AttentionMask(nn.Module):
    """MTAN's task attention: 1x1 conv (bias) + BN + ReLU + 1x1 conv (bias) + BN + sigmoid
    (`MTAN:im2im_pred/model_segnet_mtan.py:102-111`). `[B, H, W, C_in]` -> `[B, H, W, out]` in
    (0, 1)."""

    mid: int
    out: int
    init: str = "xavier_normal"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        kw = dict(init=self.init, dtype=self.dtype)
        x = conv2d(self.mid, 1, name="conv_0", **kw)(x)
        x = nn.relu(batch_norm(train, dtype=self.dtype, name="bn_0")(x))
        x = conv2d(self.out, 1, name="conv_1", **kw)(x)
        return nn.sigmoid(batch_norm(train, dtype=self.dtype, name="bn_1")(x))


def _max_pool(x):
    return nn.max_pool(x, (2, 2), strides=(2, 2))


def _up2(x):
    return resize_align_corners(x, (2 * x.shape[1], 2 * x.shape[2]))


class SegNetMTAN(nn.Module):
    """Multi-task attention network on SegNet (Liu et al., CVPR 2019); STAN with one task.

    Per task, encoder stage i computes a mask from the stage's first-layer features (and, for
    i > 0, the task's previous attention features), gates the stage output with it and passes
    the product through a shared 3x3 conv layer and a 2x2 max-pool. The decoder does the same on
    the unpooled features, after an align-corners bilinear x2 upsampling and a shared 3x3 layer
    (`MTAN:im2im_pred/model_segnet_mtan.py:147-171`). Module names: `segnet` (shared),
    `encoder_block_att_{i}` / `decoder_block_att_{k}` (shared), `encoder_att_{task}_{i}`,
    `decoder_att_{task}_{k}`, `head_{task}`.
    """

    outputs: Mapping[str, int]
    filters: Sequence[int] = FILTERS
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, images, train: bool = False) -> dict[str, jax.Array]:
        check_divisible(images)
        f = list(self.filters)
        kw = dict(init="xavier_normal", dtype=self.dtype)
        g = SegNet(f, name="segnet", **kw)(images, train)
        # Shared 3x3 layers (`:48,59-65`): encoder i maps f_i -> f_{i+1} (f_4 -> f_4 last);
        # decoder k maps f_k -> f_{k-1} (f_0 -> f_0 for k = 0, f_4 -> f_4 for k = 4).
        enc_block = [
            ConvStack((f[min(i + 1, 4)],), name=f"encoder_block_att_{i}", **kw) for i in range(5)
        ]
        dec_out = [f[0], f[0], f[1], f[2], f[4]]
        dec_block = [
            ConvStack((dec_out[k],), name=f"decoder_block_att_{k}", **kw) for k in range(5)
        ]
        predictions = {}
        for task, channels in self.outputs.items():
            a = None
            for i in range(5):
                x = g["encoder_first"][i]
                x = x if a is None else jnp.concatenate([x, a], axis=-1)
                mask = AttentionMask(f[i], f[i], name=f"encoder_att_{task}_{i}", **kw)(x, train)
                a = _max_pool(enc_block[i](mask * g["encoder_out"][i], train))
            for j in range(5):
                k = 4 - j
                u = dec_block[k](_up2(a), train)
                x = jnp.concatenate([g["decoder_in"][j], u], axis=-1)
                out = f[max(k - 1, 0)]
                mask = AttentionMask(out, out, name=f"decoder_att_{task}_{k}", **kw)(x, train)
                a = mask * g["decoder_out"][j]
            predictions[task] = PredictionHead(channels, name=f"head_{task}", **kw)(a)
        return predictions


class SegNetSplit(nn.Module):
    """Hard parameter sharing: the whole SegNet shared, one prediction head per task
    (`MTAN:im2im_pred/model_segnet_split.py`); with one task, the single-task SegNet
    (`model_segnet_single.py`). Variants: `filters[4] = 1024` ("wide"), `deep=True` ("deep")."""

    outputs: Mapping[str, int]
    filters: Sequence[int] = FILTERS
    deep: bool = False
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, images, train: bool = False) -> dict[str, jax.Array]:
        check_divisible(images)
        kw = dict(init="xavier_normal", dtype=self.dtype)
        g = SegNet(self.filters, self.deep, name="segnet", **kw)(images, train)
        x = g["decoder_out"][-1]
        return {t: PredictionHead(c, name=f"head_{t}", **kw)(x) for t, c in self.outputs.items()}


def _dense_blocks(f: Sequence[int], first_encoder: int, first_decoder: tuple[int, ...]):
    """Conv-layer widths of one SegNet of lorenmt's dense / cross-stitch models: stages 0 and 1
    have two layers ("bottle_neck"), stages 2-4 three (`model_segnet_dense.py:28-44,64-92`).
    Encoder block i outputs f_i; decoder block k (used at decoder stage 4 - k) outputs f_{k-1}."""
    encoder = [(first_encoder, f[0])] + [(f[i + 1],) * (2 if i == 0 else 3) for i in range(4)]
    decoder = [first_decoder] + [(f[i],) * (2 if i == 0 else 3) for i in range(4)]
    return encoder, decoder


class SegNetDense(nn.Module):
    """lorenmt's "dense" baseline: a shared SegNet and one SegNet per task whose every stage
    also reads the shared network's pooled (encoder) or unpooled (decoder) features of that
    stage (`MTAN:im2im_pred/model_segnet_dense.py`).

    As in the reference, the shared decoder's last block (64 -> 64 -> `class_nb` channels) runs
    but nothing reads its output; it keeps the reference's parameters and BN statistics.
    Modules: `encoder_{i}`, `decoder_{k}` (shared), `encoder_{task}_{i}`, `decoder_{task}_{k}`,
    `head_{task}`.
    """

    outputs: Mapping[str, int]
    filters: Sequence[int] = FILTERS
    class_nb: int = 13
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, images, train: bool = False) -> dict[str, jax.Array]:
        check_divisible(images)
        f = list(self.filters)
        kw = dict(init="xavier_uniform", dtype=self.dtype)
        x = images.astype(self.dtype)
        encoder, decoder = _dense_blocks(f, f[0], (f[0], self.class_nb))
        task_encoder, task_decoder = _dense_blocks(f, f[0], (2 * f[0], f[0]))
        pooled, indices, unpooled = [], [], []
        for i in range(5):
            x, index = max_pool_with_indices(
                ConvStack(encoder[i], name=f"encoder_{i}", **kw)(x, train)
            )
            pooled.append(x)
            indices.append(index)
        for j in range(5):
            x = max_unpool(x, indices[4 - j])
            unpooled.append(x)
            x = ConvStack(decoder[4 - j], name=f"decoder_{4 - j}", **kw)(x, train)
        predictions = {}
        for task, channels in self.outputs.items():
            x = images.astype(self.dtype)
            task_indices = []
            for i in range(5):
                if i > 0:
                    x = jnp.concatenate([x, pooled[i - 1]], axis=-1)
                x = ConvStack(task_encoder[i], name=f"encoder_{task}_{i}", **kw)(x, train)
                x, index = max_pool_with_indices(x)
                task_indices.append(index)
            for j in range(5):
                x = jnp.concatenate([max_unpool(x, task_indices[4 - j]), unpooled[j]], axis=-1)
                x = ConvStack(task_decoder[4 - j], name=f"decoder_{task}_{4 - j}", **kw)(x, train)
            predictions[task] = PredictionHead(channels, name=f"head_{task}", **kw)(x)
        return predictions


class SegNetCross(nn.Module):
    """lorenmt's cross-stitch SegNet: one SegNet per task, mixed between stages by scalar
    cross-stitch weights `cs_encoder` `[4, T]` and `cs_decoder` `[5, T]`, initialised to 1
    (`MTAN:im2im_pred/model_segnet_cross.py:42-43,106-131`).

    Reproduced as the reference has it: the mixture `sum_j cs[s, j] x_j` does not depend on the
    receiving task, so every task's next stage reads the same tensor (each unpools it with its
    own indices). Weights trained with the reference therefore load unchanged.
    """

    outputs: Mapping[str, int]
    filters: Sequence[int] = FILTERS
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, images, train: bool = False) -> dict[str, jax.Array]:
        check_divisible(images)
        tasks = list(self.outputs)
        kw = dict(init="xavier_uniform", dtype=self.dtype)
        encoder, decoder = _dense_blocks(self.filters, self.filters[0], (self.filters[0],) * 2)
        cs_enc = self.param("cs_encoder", nn.initializers.ones, (4, len(tasks)), jnp.float32)
        cs_dec = self.param("cs_decoder", nn.initializers.ones, (5, len(tasks)), jnp.float32)

        def mix(weights, xs):
            return sum(weights[n].astype(self.dtype) * x for n, x in enumerate(xs))

        x = images.astype(self.dtype)
        feats, indices = [x] * len(tasks), [[] for _ in tasks]
        for i in range(5):
            inp = [x] * len(tasks) if i == 0 else [mix(cs_enc[i - 1], feats)] * len(tasks)
            for n, task in enumerate(tasks):
                y = ConvStack(encoder[i], name=f"encoder_{task}_{i}", **kw)(inp[n], train)
                feats[n], index = max_pool_with_indices(y)
                indices[n].append(index)
        for j in range(5):
            mixed = mix(cs_dec[j], feats)
            for n, task in enumerate(tasks):
                y = max_unpool(mixed, indices[n][4 - j])
                feats[n] = ConvStack(decoder[4 - j], name=f"decoder_{task}_{4 - j}", **kw)(y, train)
        return {
            task: PredictionHead(c, name=f"head_{task}", **kw)(feats[n])
            for n, (task, c) in enumerate(self.outputs.items())
        }


# ---------------------------------------------------------------------------------------------
# The registered models: lorenmt's `model_segnet_*.py` scripts (and the split variants).
# ---------------------------------------------------------------------------------------------


@register_model("segnet_mtan", input_divisor=DIVISOR, weights=WEIGHTS)
def build_mtan(config, dtype) -> nn.Module:
    return SegNetMTAN(common.task_channels(config), dtype=dtype)


@register_model("segnet_stan", input_divisor=DIVISOR, weights=WEIGHTS)
def build_stan(config, dtype) -> nn.Module:
    """Single-task attention network: MTAN with one task."""
    return SegNetMTAN(common.single_task_channels(config), dtype=dtype)


@register_model("segnet_single", input_divisor=DIVISOR, weights=WEIGHTS)
def build_single(config, dtype) -> nn.Module:
    return SegNetSplit(common.single_task_channels(config), dtype=dtype)


@register_model("segnet_split", input_divisor=DIVISOR, weights=WEIGHTS)
def build_split(config, dtype) -> nn.Module:
    return SegNetSplit(common.task_channels(config), dtype=dtype)


@register_model("segnet_split_wide", input_divisor=DIVISOR, weights=WEIGHTS)
def build_split_wide(config, dtype) -> nn.Module:
    """lorenmt `--type wide`: the last stage 1024 wide."""
    return SegNetSplit(common.task_channels(config), filters=(*FILTERS[:4], 1024), dtype=dtype)


@register_model("segnet_split_deep", input_divisor=DIVISOR, weights=WEIGHTS)
def build_split_deep(config, dtype) -> nn.Module:
    """lorenmt `--type deep`: every conv layer doubled."""
    return SegNetSplit(common.task_channels(config), deep=True, dtype=dtype)


@register_model("segnet_dense", input_divisor=DIVISOR, weights=WEIGHTS)
def build_dense(config, dtype) -> nn.Module:
    channels = common.task_channels(config)
    return SegNetDense(channels, class_nb=channels.get("semseg", 13), dtype=dtype)


@register_model("segnet_cross", input_divisor=DIVISOR, weights=WEIGHTS)
def build_cross(config, dtype) -> nn.Module:
    return SegNetCross(common.task_channels(config), dtype=dtype)
