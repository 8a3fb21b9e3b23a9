"""The baselines every multi-task architecture is compared with (MTL `models/models.py`)."""

from __future__ import annotations

from collections.abc import Mapping

import flax.linen as nn
import jax.numpy as jnp

from mtnets.models.layers import resize


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
