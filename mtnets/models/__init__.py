"""Model construction from an experiment config.

`create_model(config)` returns a Flax Linen module; `model.apply(variables, images, train=...)`
maps normalized `[B, H, W, 3]` images to `{task: [B, H, W, C]}` predictions at input
resolution (logits for classification, raw values for regression).
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from mtnets.models.backbones.resnet import RESNETS, ResNet
from mtnets.models.baselines import MultiTaskModel
from mtnets.models.heads import HighResolutionHead
from mtnets.tasks import output_channels, task_specs

MODELS = ("multi_task_baseline", "single_task_baseline")
HEADS = ("hrnet",)


def create_backbone(name: str, dtype=jnp.float32) -> nn.Module:
    """A backbone by name; a clear error naming the choices for an unknown one."""
    if name not in RESNETS:
        raise ValueError(
            f"Unknown config.model.backbone {name!r}; choose one of {', '.join(RESNETS)}."
        )
    return ResNet(**RESNETS[name], dtype=dtype)


def create_head(name: str, outputs: int, hidden: int = 0, dtype=jnp.float32) -> nn.Module:
    if name != "hrnet":
        raise ValueError(f"Unknown config.model.head {name!r}; choose one of {', '.join(HEADS)}.")
    return HighResolutionHead(outputs, hidden, dtype=dtype)


def create_model(config) -> nn.Module:
    """The Linen module that `config.model` describes, with heads for `config.tasks`."""
    dtype = jnp.dtype(config.get("dtype", "float32"))
    name = config.model.name
    if name not in MODELS:
        raise ValueError(f"Unknown config.model.name {name!r}; choose one of {', '.join(MODELS)}.")
    channels = output_channels(task_specs(config.tasks, config.dataset.name))
    if name == "single_task_baseline" and len(channels) != 1:
        raise ValueError(
            f"config.model.name='single_task_baseline' takes one task, got {list(channels)}."
        )
    backbone = create_backbone(config.model.backbone, dtype)
    hidden = config.model.get("head_width", 0)
    heads = {t: create_head(config.model.head, c, hidden, dtype) for t, c in channels.items()}
    return MultiTaskModel(backbone, heads)
