"""MTAN on a dilated ResNet (MTL `models/mtan.py`) and the builder of the MTAN model family.

`create_mtan_model(config)` builds every model of this family by `config.model.name`:
`MTAN_MODELS` lists them (lorenmt's SegNet models, and MTL's ResNet-MTAN, cross-stitch and
NDDR-CNN). The ResNet models read `config.model.backbone` (`resnet18`, `resnet50`, ...),
`config.model.output_stride` (8, the reference's dilated ResNet) and, for cross-stitch and
NDDR-CNN, `config.model.alpha` / `config.model.beta` (the units' initial self / cross weights).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from mtnets.models.backbones.resnet import RESNETS, Bottleneck, stage_dilations
from mtnets.models.backbones.segnet import FILTERS
from mtnets.models.heads import DeepLabHead
from mtnets.models.layers import batch_norm, conv, resize
from mtnets.models.segnet_models import (
    AttentionMask,
    SegNetCross,
    SegNetDense,
    SegNetMTAN,
    SegNetSplit,
)
from mtnets.tasks import output_channels, task_specs

SEGNET_MODELS = (
    "segnet_mtan",
    "segnet_stan",
    "segnet_single",
    "segnet_split",
    "segnet_split_wide",
    "segnet_split_deep",
    "segnet_dense",
    "segnet_cross",
)
RESNET_MODELS = ("mtan", "cross_stitch", "nddr_cnn")
MTAN_MODELS = SEGNET_MODELS + RESNET_MODELS
SINGLE_TASK = ("segnet_single", "segnet_stan")


def _segnet_model(name: str, channels: Mapping[str, int], dtype) -> nn.Module:
    if name in SINGLE_TASK and len(channels) != 1:
        raise ValueError(f"config.model.name={name!r} takes one task, got {list(channels)}.")
    if name in ("segnet_mtan", "segnet_stan"):
        return SegNetMTAN(channels, dtype=dtype)
    if name in ("segnet_single", "segnet_split"):
        return SegNetSplit(channels, dtype=dtype)
    if name == "segnet_split_wide":  # lorenmt `--type wide`: the last stage 1024 wide
        return SegNetSplit(channels, filters=(*FILTERS[:4], 1024), dtype=dtype)
    if name == "segnet_split_deep":  # lorenmt `--type deep`: every conv layer doubled
        return SegNetSplit(channels, deep=True, dtype=dtype)
    if name == "segnet_dense":
        return SegNetDense(channels, class_nb=channels.get("semseg", 13), dtype=dtype)
    return SegNetCross(channels, dtype=dtype)


def create_mtan_model(config) -> nn.Module:
    """The model `config.model.name` (one of `MTAN_MODELS`) for `config.tasks`."""
    name = config.model.name
    if name not in MTAN_MODELS:
        raise ValueError(
            f"Unknown config.model.name {name!r} for the MTAN family; "
            f"choose one of {', '.join(MTAN_MODELS)}."
        )
    dtype = jnp.dtype(config.dtype)
    channels = output_channels(task_specs(config.tasks, config.dataset.name))
    if name in SEGNET_MODELS:
        return _segnet_model(name, channels, dtype)
    backbone = config.model.backbone
    if backbone not in RESNETS:
        raise ValueError(
            f"config.model.backbone {backbone!r} is not a ResNet; {name!r} takes one of "
            f"{', '.join(RESNETS)}."
        )
    kw = dict(
        resnet=backbone,
        output_stride=config.model.output_stride,
        head_width=config.model.head_width,
        dtype=dtype,
    )
    if name == "mtan":
        return ResNetMTAN(channels, **kw)
    from mtnets.models.cross_stitch import CrossStitchNetwork
    from mtnets.models.nddr_cnn import NDDRCNN

    alpha, beta = config.model.alpha, config.model.beta
    cls = CrossStitchNetwork if name == "cross_stitch" else NDDRCNN
    return cls(channels, alpha=alpha, beta=beta, **kw)


class ResNetTrunk(nn.Module):
    """The (dilated) ResNet of `mtnets.models.backbones.resnet`, run one piece at a time, for
    the models that act between stages or before a stage's last block.

    `part` is `"stem"` (7x7 conv, BN, ReLU, 3x3 max-pool), `"layer{s}"` (stage s, 1-4), or
    `"layer{s}:except_last"` / `"layer{s}:last"` (MTL `forward_stage_except_last_block` /
    `forward_stage_last_block`). Parameter names and dilations are those of `ResNet`
    (`conv1`, `bn1`, `layer{s}_{i}`; MTL `ResnetDilated`), so its variables and ImageNet
    conversions apply unchanged. Calling it once per part shares the parameters.
    """

    resnet: str = "resnet50"
    output_stride: int = 8
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, part: str, train: bool = False):
        spec = RESNETS[self.resnet]
        width, block = spec["width"], spec["block"]
        if part == "stem":
            x = conv(width, 7, 2, dtype=self.dtype, name="conv1")(x.astype(self.dtype))
            x = nn.relu(batch_norm(train, dtype=self.dtype, name="bn1")(x))
            return nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
        layer, _, which = part.partition(":")
        stage = int(layer.removeprefix("layer")) - 1
        num = spec["stage_sizes"][stage]
        blocks = {"": range(num), "except_last": range(num - 1), "last": [num - 1]}[which]
        d = stage_dilations(self.output_stride)[stage]
        for index in blocks:
            first = index == 0
            x = block(
                width * 2**stage,
                2 if stage > 0 and first and d == 1 else 1,
                dilation=d,
                first_dilation=max(d // 2, 1) if first and stage > 0 else d,
                dtype=self.dtype,
                name=f"layer{stage + 1}_{index}",
            )(x, train)
        return x

    @property
    def channels(self) -> list[int]:
        """Channels after stages 1-4."""
        spec = RESNETS[self.resnet]
        return [spec["width"] * 2**s * spec["block"].expansion for s in range(4)]


def pool_after_stages(output_stride: int) -> list[bool]:
    """Where MTAN max-pools its attention features so that they match the next stage: after
    stage s when stage s + 1 halves the resolution (stage 2 always; MTL's `downsample`
    config: layer1 True, layer2-3 False for output stride 8)."""
    return [True] + [d == 1 for d in stage_dilations(output_stride)[2:]]


class ResNetMTAN(nn.Module):
    """MTAN on a dilated ResNet with DeepLab heads (MTL `models/mtan.py`,
    docs/reference_notes.md#mtan).

    Each stage k of the shared ResNet is split before its last block: u_k_b (all blocks but the
    last) and u_k_t (the stage output). Per task, a mask from u_1_b (k = 1) or from
    `concat(u_k_b, a_{k-1})` gates u_k_t; for k < 4 a shared refinement Bottleneck maps the
    product to the next stage's width (and a 2x2 max-pool halves it where the next stage is
    strided). a_4 feeds the task's DeepLab head; predictions are resized bilinearly
    (align_corners=False) to the input. Modules: `backbone`, `attention_{k}_{task}`,
    `refine_{k}`, `head_{task}`.
    """

    outputs: Mapping[str, int]
    resnet: str = "resnet50"
    output_stride: int = 8
    head_width: int = 0  # the DeepLab heads' width; 0: the reference's 256
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, images, train: bool = False) -> dict[str, jax.Array]:
        if min(RESNETS[self.resnet]["stage_sizes"]) < 2:
            raise ValueError(
                f"MTAN splits every ResNet stage before its last block, so each stage needs two "
                f"blocks or more; {self.resnet!r} has {RESNETS[self.resnet]['stage_sizes']}."
            )
        trunk = ResNetTrunk(self.resnet, self.output_stride, self.dtype, name="backbone")
        channels = trunk.channels
        x = trunk(images, "stem", train)
        bottom, top = [], []
        for k in range(1, 5):
            x = trunk(x, f"layer{k}:except_last", train)
            bottom.append(x)
            x = trunk(x, f"layer{k}:last", train)
            top.append(x)
        refine = [
            Bottleneck(c // 4, dtype=self.dtype, name=f"refine_{k + 1}")
            for k, c in enumerate(channels[1:])
        ]
        pool = pool_after_stages(self.output_stride)
        size = images.shape[1:3]
        predictions = {}
        for task, outputs in self.outputs.items():
            a = None
            for k in range(4):
                x = bottom[k] if a is None else jnp.concatenate([bottom[k], a], axis=-1)
                c = channels[k]
                mask = AttentionMask(
                    c // 4, c, init="pytorch", dtype=self.dtype, name=f"attention_{k + 1}_{task}"
                )(x, train)
                a = mask * top[k]
                if k < 3:
                    a = refine[k](a, train)
                    a = nn.max_pool(a, (2, 2), (2, 2)) if pool[k] else a
            width = self.head_width or 256
            head = DeepLabHead(outputs, width=width, dtype=self.dtype, name=f"head_{task}")
            predictions[task] = resize(head(a, train), size)
        return predictions
