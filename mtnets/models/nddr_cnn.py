"""NDDR-CNN on dilated ResNets (Gao et al., CVPR 2019; MTL `models/nddr_cnn.py`).

One ResNet and one DeepLab head per task. After the stem and after each of the four stages an
NDDR layer fuses the tasks: per task, `relu(BN(conv1x1(concat_j x_j)))` back to C channels
(no bias; BN momentum 0.05 as in the NDDR-CNN code, Flax 0.95), the 1x1 weights initialised
to `alpha * I` on the task's own block and `beta * I` on the others
(docs/reference_notes.md#cross-stitch-and-nddr-cnn). The
reference initialises the task networks from trained single-task models; see
`config.model.single_task_checkpoints` (`mtnets.train.warm_start`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from mtnets.models import common
from mtnets.models.cross_stitch import (
    UNIT_DEFAULTS,
    task_predictions,
    task_trunks,
    unit_network_fields,
)
from mtnets.models.layers import batch_norm
from mtnets.models.registry import register_model

# MTL's stages: the stem ("conv", including the max-pool), then layer1..4 ("layer1_without_conv").
STAGES = ("stem", "layer1", "layer2", "layer3", "layer4")


def nddr_init(task: int, num_tasks: int, alpha: float, beta: float):
    """Initialiser of a `[1, 1, T*C, C]` kernel: `beta * I` blocks, `alpha * I` for `task`."""

    def init(key, shape, dtype=jnp.float32):
        del key
        c = shape[-1]
        weights = jnp.full((num_tasks,), beta, dtype).at[task].set(alpha)
        kernel = jnp.concatenate([w * jnp.eye(c, dtype=dtype) for w in weights], axis=0)
        return kernel.reshape(shape)

    return init


class NDDRLayer(nn.Module):
    """Fuses `[B, H, W, C]` features of T tasks into T new ones (`{stage}` unit of NDDR-CNN)."""

    num_tasks: int
    alpha: float = 0.9
    beta: float = 0.1
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, xs, train: bool = False):
        x = jnp.concatenate(xs, axis=-1)
        c = xs[0].shape[-1]
        out = []
        for t in range(self.num_tasks):
            y = nn.Conv(
                c,
                (1, 1),
                use_bias=False,
                kernel_init=nddr_init(t, self.num_tasks, self.alpha, self.beta),
                dtype=self.dtype,
                name=f"conv_{t}",
            )(x)
            bn = batch_norm(train, momentum=0.95, dtype=self.dtype, name=f"bn_{t}")
            out.append(nn.relu(bn(y)))
        return out


class NDDRCNN(nn.Module):
    """`[B, H, W, 3]` -> `{task: [B, H, W, C_task]}`. Modules: `backbone_{task}` (a
    `ResNetPieces`), `nddr_{stage}` (tasks concatenated in `outputs` order), `head_{task}`."""

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
        xs = [images] * len(tasks)
        for stage in STAGES:
            xs = [trunk(x, stage, train) for trunk, x in zip(trunks, xs, strict=True)]
            nddr = NDDRLayer(len(tasks), self.alpha, self.beta, self.dtype, name=f"nddr_{stage}")
            xs = nddr(xs, train)
        size = images.shape[1:3]
        return task_predictions(self.outputs, xs, size, self.dtype, train, self.head_width)


@register_model(
    "nddr_cnn",
    input_divisor=32,  # as the rest of the MTAN family (MTL's inputs are multiples of 32)
    weights="mtnets.porting.mtan:RESNET_FAMILY",
    defaults=UNIT_DEFAULTS,
    single_task_init=True,
)
def build(config, dtype) -> nn.Module:
    return NDDRCNN(common.task_channels(config), **unit_network_fields(config, dtype))
