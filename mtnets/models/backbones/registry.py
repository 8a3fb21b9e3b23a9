"""`BACKBONES`: the backbone builders by name (`config.model.backbone`)."""

from mtnets.registry import Registry

BACKBONES = Registry("config.model.backbone")
