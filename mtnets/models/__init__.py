"""Model construction from an experiment config.

`create_model(config)` returns a Flax Linen module; `model.apply(variables, images, train=...)`
maps normalized `[B, H, W, 3]` images to `{task: [B, H, W, C]}` predictions at input
resolution (logits for classification, raw values for regression); MTI-Net and PAD-Net add
`"intermediate": {name: {task: [B, h, w, C]}}` (deep supervision / initial predictions).

Every model is one module of this package with one registry entry (`registry.register_model`)
that carries its builder, its own config fields and their defaults, its input divisor and its
reference-weight conversion; `create_model` finds it by `config.model.name` (`MODELS`) and
imports only that module.

Config fields every model may read (`mtnets.models.common`):
- `config.model.backbone`: `resnet_small`, `resnet18`, `resnet34`, `resnet50`, `resnet101`,
  `hrnet_w18_small_v2` (the MTL reference's "hrnet_w18"), `hrnet_w18`, `hrnet_w48`,
  `hrnet_tiny`; `config.model.dilated` (ResNets: output stride 8, MTL `ResnetDilated`).
- `config.model.head`: `hrnet` or `deeplab` (baselines); `config.model.head_width` narrows the
  HRNet head (0: the reference's), the DeepLab heads (also of MTAN, cross-stitch, NDDR-CNN)
  and PAD-Net's per-task features (0: the reference's 256).
- `config.tasks` (main tasks) and `config.aux_tasks` (MTI-Net/PAD-Net: the reference's
  AUXILARY_TASKS, which *contain* the main tasks, in the reference's order, e.g. NYUD
  `("semseg", "normals", "edge", "depth")`; empty means the main tasks only).
Model-specific fields (e.g. `config.model.mti_net.*`, `config.model.alpha`) are declared by
the model's entry.

Backbones for other model families: `create_backbone("resnet50", dilated=True)` is MTL's
dilated ResNet-50 (`{"scale_0".."scale_3"}` at strides 4, 8, 8, 8; 256/512/1024/2048 channels),
and `mtnets.models.heads.DeepLabHead(outputs)` reads the coarsest scale of such a dict.

Importing this package loads no JAX (configs read the registry); `create_backbone`,
`create_head`, `aux_tasks`, `BACKBONES` and `HEADS` load on first use.
"""

import importlib

from mtnets.models.registry import create_model, input_divisor, model_info, names, register_model

MODELS = names()

__all__ = ["MODELS", "create_model", "input_divisor", "model_info", "register_model"]

# Names of the modules that need JAX, loaded when first asked for.
_LAZY = {
    "create_backbone": "mtnets.models.backbones",
    "BACKBONES": "mtnets.models.backbones",
    "create_head": "mtnets.models.heads",
    "HEADS": "mtnets.models.heads",
    "aux_tasks": "mtnets.models.common",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
