"""Cross-stitch networks on dilated ResNets (Misra et al., CVPR 2016; MTL `models/cross_stitch.py`).

One ResNet and one DeepLab head per task. After each of the four stages a cross-stitch unit
mixes the tasks' features channel-wise: `out_i = sum_j alpha[i, j] * x_j`, `alpha[i, j]` a
per-channel vector initialised to `alpha` on the diagonal and `beta` elsewhere
(docs/reference_notes.md#cross-stitch-and-nddr-cnn). The reference initialises the task
networks from trained single-task models; see `config.model.single_task_checkpoints`
(`mtnets.train.warm_start`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from mtnets.models import common
from mtnets.models.backbones.resnet import ResNetPieces, resnet_trunk
from mtnets.models.heads import DeepLabHead
from mtnets.models.layers import resize
from mtnets.models.registry import register_model

# The fields cross-stitch and NDDR-CNN add to `config.model`: the dilated trunks' output
# stride (MTL ResnetDilated(dilate_scale=8)) and the units' initial self / cross weights.
UNIT_DEFAULTS = {"output_stride": 8, "alpha": 0.9, "beta": 0.1}


@register_model(
    "cross_stitch",
    input_divisor=32,  # as the rest of the MTAN family (MTL's inputs are multiples of 32)
    weights="mtnets.porting.mtan:RESNET_FAMILY",
    defaults=UNIT_DEFAULTS,
    single_task_init=True,
)
def build(config, dtype) -> nn.Module:
    return CrossStitchNetwork(common.task_channels(config), **unit_network_fields(config, dtype))


def unit_network_fields(config, dtype) -> dict:
    """The module fields of a network of per-task ResNets joined by units (cross-stitch,
    NDDR-CNN) from `config.model`."""
    return dict(
        resnet=common.resnet_name(config),
        output_stride=config.model.output_stride,
        head_width=config.model.head_width,
        alpha=config.model.alpha,
        beta=config.model.beta,
        dtype=dtype,
    )


def stitch_init(alpha: float, beta: float):
    """Initialiser of a `[T, T, C]` unit: `alpha` where i == j, `beta` elsewhere."""

    def init(key, shape, dtype=jnp.float32):
        del key
        eye = jnp.eye(shape[0], dtype=dtype)[:, :, None]
        return jnp.broadcast_to(eye * alpha + (1 - eye) * beta, shape).astype(dtype)

    return init


def task_trunks(tasks, resnet: str, output_stride: int, dtype) -> list[ResNetPieces]:
    """One ResNet per task, `backbone_{task}`, as the reference's per-task networks (for use
    inside a compact `__call__`)."""
    return [resnet_trunk(resnet, output_stride, dtype, name=f"backbone_{t}") for t in tasks]


def task_predictions(
    outputs: Mapping[str, int], features, size, dtype, train: bool, width: int = 0
) -> dict:
    """Each task's DeepLab head, `head_{task}` (`width` 0: the reference's 256), on its
    features, upsampled to `size`."""
    width = width or 256
    return {
        t: resize(DeepLabHead(c, width=width, dtype=dtype, name=f"head_{t}")(x, train), size)
        for (t, c), x in zip(outputs.items(), features, strict=True)
    }


class CrossStitchNetwork(nn.Module):
    """`[B, H, W, 3]` -> `{task: [B, H, W, C_task]}`. Modules: `backbone_{task}` (a
    `ResNetPieces`), `head_{task}` (DeepLab); params `cross_stitch_layer{s}` `[T, T, C_s]` with
    `[i, j]` the weight of task j's features in task i's (tasks in `outputs` order)."""

    outputs: Mapping[str, int]
    resnet: str = "resnet50"
    output_stride: int = 8
    head_width: int = 0  # the DeepLab heads' width; 0: the reference's 256
    alpha: float = 0.9
    beta: float = 0.1
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, images, train: bool = False) -> dict[str, jax.Array]:
        tasks = list(self.outputs)
        trunks = task_trunks(tasks, self.resnet, self.output_stride, self.dtype)
        xs = [trunk(images, "stem", train) for trunk in trunks]
        for s, channels in enumerate(trunks[0].channels, start=1):
            xs = [trunk(x, f"layer{s}", train) for trunk, x in zip(trunks, xs, strict=True)]
            unit = self.param(
                f"cross_stitch_layer{s}",
                stitch_init(self.alpha, self.beta),
                (len(tasks), len(tasks), channels),
            ).astype(self.dtype)
            stacked = jnp.stack(xs)  # [T, B, H, W, C]
            xs = list(jnp.einsum("ijc,jbhwc->ibhwc", unit, stacked))
        size = images.shape[1:3]
        return task_predictions(self.outputs, xs, size, self.dtype, train, self.head_width)
