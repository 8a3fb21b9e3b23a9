"""The baselines every multi-task architecture is compared with (MTL `models/models.py`)."""

from __future__ import annotations

from collections.abc import Mapping

import flax.linen as nn
import jax.numpy as jnp

from mtnets.models import common
from mtnets.models.heads import create_head
from mtnets.models.layers import resize
from mtnets.models.registry import register_model


class MultiTaskModel(nn.Module):
    """Shared encoder, one head per task; each prediction upsampled to the input size.

    With one task this is the single-task model (MTL `SingleTaskModel`). `heads` maps task
    names to head modules that take the backbone's feature dict (`HighResolutionHead` or
    `DeepLabHead`). `[B, H, W, 3] -> {task: [B, H, W, C_task]}`.
    """

    backbone: nn.Module
    heads: Mapping[str, nn.Module]

    def __call__(self, images, train: bool = False) -> dict[str, jnp.ndarray]:
        features = self.backbone(images, train)
        size = images.shape[1:3]
        return {task: resize(head(features, train), size) for task, head in self.heads.items()}


@register_model("multi_task_baseline", weights="mtnets.porting.mtl:BASELINE")
def build_multi_task(config, dtype) -> nn.Module:
    """`config.model.head` heads (`head_width` wide) on `config.model.backbone`."""
    return _baseline(config, common.task_channels(config), dtype)


@register_model("single_task_baseline", weights="mtnets.porting.mtl:BASELINE")
def build_single_task(config, dtype) -> nn.Module:
    """The multi-task baseline with one task (MTL `SingleTaskModel`)."""
    return _baseline(config, common.single_task_channels(config), dtype)


def _baseline(config, channels: Mapping[str, int], dtype) -> nn.Module:
    hidden = config.model.head_width
    heads = {t: create_head(config.model.head, c, hidden, dtype) for t, c in channels.items()}
    return MultiTaskModel(common.backbone(config, dtype), heads)
