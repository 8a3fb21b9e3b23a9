"""Model construction from an experiment config.

`create_model(config)` returns a Flax Linen module; `model.apply(variables, images, train=...)`
maps normalized `[B, H, W, 3]` images to `{task: [B, H, W, C]}` predictions at input
resolution (logits for classification, raw values for regression); MTI-Net and PAD-Net add
`"intermediate": {name: {task: [B, h, w, C]}}` (deep supervision / initial predictions).

Config fields read here:
- `config.model.name`: one of `MODELS` (dispatch table `MODEL_BUILDERS`).
- `config.model.backbone`: `resnet_small`, `resnet18`, `resnet34`, `resnet50`, `resnet101`,
  `hrnet_w18_small_v2` (the MTL reference's "hrnet_w18"), `hrnet_w18`, `hrnet_w48`,
  `hrnet_tiny`; `config.model.dilated` (ResNets: output stride 8, MTL `ResnetDilated`).
- `config.model.head`: `hrnet` or `deeplab` (baselines); `config.model.head_width` narrows the
  HRNet head (0: the reference's), the DeepLab heads (also of MTAN, cross-stitch, NDDR-CNN)
  and PAD-Net's per-task features (0: the reference's 256).
- `config.tasks` (main tasks) and `config.aux_tasks` (MTI-Net/PAD-Net: the reference's
  AUXILARY_TASKS, which *contain* the main tasks, in the reference's order, e.g. NYUD
  `("semseg", "normals", "edge", "depth")`; empty means the main tasks only).
- `config.model.mti_net`: `num_scales`, `use_fpm`, `distill_all_scales`, `fpm_softmax`.

Backbones for other model families: `create_backbone("resnet50", dilated=True)` is MTL's
dilated ResNet-50 (`{"scale_0".."scale_3"}` at strides 4, 8, 8, 8; 256/512/1024/2048 channels),
and `mtnets.models.heads.DeepLabHead(outputs)` reads the coarsest scale of such a dict.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax.numpy as jnp

from mtnets.models.backbones.hrnet import HRNETS, HRNet
from mtnets.models.backbones.resnet import RESNETS, ResNet
from mtnets.models.baselines import MultiTaskModel
from mtnets.models.heads import DeepLabHead, HighResolutionHead
from mtnets.models.mtan import MTAN_MODELS, create_mtan_model
from mtnets.models.mti_net import MTINet
from mtnets.models.pad_net import PADNet
from mtnets.tasks import output_channels, task_specs

HEADS = ("hrnet", "deeplab")
BACKBONES = (*RESNETS, *HRNETS)


def create_backbone(name: str, dtype=jnp.float32, *, dilated: bool = False) -> nn.Module:
    """A backbone by name (`BACKBONES`); `dilated=True` gives a ResNet of output stride 8 (MTL
    `ResnetDilated`). A clear error names the choices for an unknown name."""
    if name in RESNETS:
        return ResNet(**RESNETS[name], output_stride=8 if dilated else 32, dtype=dtype)
    if name in HRNETS:
        if dilated:
            raise ValueError(f"config.model.dilated applies to ResNets, not {name!r}.")
        return HRNet(HRNETS[name], dtype=dtype)
    raise ValueError(
        f"Unknown config.model.backbone {name!r}; choose one of {', '.join(BACKBONES)}."
    )


def create_head(name: str, outputs: int, hidden: int = 0, dtype=jnp.float32) -> nn.Module:
    """`hrnet` (HighResolutionHead, `hidden` 0: the reference's width) or `deeplab`."""
    if name == "hrnet":
        return HighResolutionHead(outputs, hidden, dtype=dtype)
    if name == "deeplab":
        return DeepLabHead(outputs, width=hidden or 256, dtype=dtype)
    raise ValueError(f"Unknown config.model.head {name!r}; choose one of {', '.join(HEADS)}.")


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


def _backbone(config, dtype) -> nn.Module:
    return create_backbone(config.model.backbone, dtype, dilated=config.model.dilated)


def _baseline(config, dtype) -> nn.Module:
    channels = output_channels(task_specs(config.tasks, config.dataset.name))
    if config.model.name == "single_task_baseline" and len(channels) != 1:
        raise ValueError(
            f"config.model.name='single_task_baseline' takes one task, got {list(channels)}."
        )
    hidden = config.model.head_width
    heads = {t: create_head(config.model.head, c, hidden, dtype) for t, c in channels.items()}
    return MultiTaskModel(_backbone(config, dtype), heads)


def _mti_net(config, dtype) -> nn.Module:
    aux = aux_tasks(config)
    options = config.model.mti_net
    return MTINet(
        _backbone(config, dtype),
        tuple(config.tasks),
        aux,
        output_channels(task_specs(aux, config.dataset.name)),
        num_scales=options.num_scales,
        use_fpm=options.use_fpm,
        distill_all_scales=options.distill_all_scales,
        fpm_softmax=options.fpm_softmax,
        head_width=config.model.head_width,
        dtype=dtype,
    )


def _mtan_family(config, dtype) -> nn.Module:
    return create_mtan_model(config)  # reads config.dtype itself


def _pad_net(config, dtype) -> nn.Module:
    aux = aux_tasks(config)
    return PADNet(
        _backbone(config, dtype),
        tuple(config.tasks),
        aux,
        output_channels(task_specs(aux, config.dataset.name)),
        # The per-task feature width; 0: the reference's 256 (too heavy for a CPU run).
        width=config.model.head_width or 256,
        dtype=dtype,
    )


MODEL_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "multi_task_baseline": _baseline,
    "single_task_baseline": _baseline,
    "mti_net": _mti_net,
    "pad_net": _pad_net,
    **{name: _mtan_family for name in MTAN_MODELS},
}
MODELS = tuple(MODEL_BUILDERS)

# The input height and width must be multiples of these: MTI-Net doubles its features from
# scale to scale (scale_factor=2, as the reference), SegNet unpools with the pooling indices of
# five 2x2 pools, and the ResNet-MTAN attention concatenates maps of consecutive stages.
_INPUT_DIVISORS = {"mti_net": 32, **{name: 32 for name in MTAN_MODELS}}


def input_divisor(config) -> int:
    """What the input height and width of `config.model.name` must be multiples of."""
    return _INPUT_DIVISORS.get(config.model.name, 1)


def create_model(config) -> nn.Module:
    """The Linen module that `config.model` describes, with heads for `config.tasks`."""
    dtype = jnp.dtype(config.dtype)
    name = config.model.name
    if name not in MODEL_BUILDERS:
        raise ValueError(f"Unknown config.model.name {name!r}; choose one of {', '.join(MODELS)}.")
    return MODEL_BUILDERS[name](config, dtype)
