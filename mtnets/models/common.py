"""What the model builders read from an experiment config, in one place.

Fields every model may read: `config.model.backbone`, `config.model.dilated` (ResNets: output
stride 8, MTL `ResnetDilated`), `config.model.head`, `config.model.head_width`, `config.tasks`,
`config.aux_tasks` and `config.dataset.name`. A model's own fields are declared with its
registry entry (`mtnets.models.registry`); configs/default.py adds them to `config.model`.
"""

from __future__ import annotations

import flax.linen as nn

from mtnets.models.backbones import create_backbone
from mtnets.models.backbones.resnet import RESNETS
from mtnets.tasks import output_channels, task_specs


def aux_tasks(config) -> tuple[str, ...]:
    """The tasks with intermediate predictions: `config.aux_tasks`, or the main tasks if it is
    empty. Like the reference's AUXILARY_TASKS it must contain every main task."""
    aux = tuple(config.aux_tasks or config.tasks)
    missing = [t for t in config.tasks if t not in aux]
    if missing:
        raise ValueError(
            f"config.aux_tasks {list(aux)} must contain every main task (as MTL's "
            f"AUXILARY_TASKS do); missing {missing}."
        )
    return aux


def task_channels(config, tasks=None) -> dict[str, int]:
    """`{task: output channels}` of `tasks` (default `config.tasks`) on `config.dataset.name`."""
    return output_channels(task_specs(tuple(tasks or config.tasks), config.dataset.name))


def single_task_channels(config) -> dict[str, int]:
    """`task_channels` of a model that takes one task; a clear error otherwise."""
    channels = task_channels(config)
    if len(channels) != 1:
        raise ValueError(
            f"config.model.name={config.model.name!r} takes one task, got {list(channels)}."
        )
    return channels


def backbone(config, dtype) -> nn.Module:
    """The backbone `config.model.backbone` (dilated if `config.model.dilated`)."""
    return create_backbone(config.model.backbone, dtype, dilated=config.model.dilated)


def resnet_name(config) -> str:
    """`config.model.backbone` of a model built on per-stage ResNet pieces (default
    `resnet50`), checked to be a ResNet."""
    name = config.model.backbone
    if name not in RESNETS:
        raise ValueError(
            f"config.model.backbone {name!r} is not a ResNet; {config.model.name!r} takes one "
            f"of {', '.join(RESNETS)}."
        )
    return name
