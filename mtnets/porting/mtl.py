"""Weights of the MTL reference (SimonVandenhende/Multi-Task-Learning-PyTorch) for our models.

`variables_from_mtl(config, state_dict)` converts a reference `model.state_dict()` (or the
`model` entry of its checkpoint; a DataParallel `module.` prefix is stripped) of the model that
`config` describes into `{"params", "batch_stats"}` for `create_model(config)`.

It walks the Flax variable tree of our model and, for every leaf, derives the reference's key
from the module path (`_torch_prefix`); our module names mirror the reference's attributes, so
the rules are short. Every key of the state dict must be used and every leaf found: a missing
key, an unused key or a shape mismatch is an error that lists all of them.

Reference layout per model (`MTL:utils/common_config.py:18-136`):
- single-task: `backbone.*`, `decoder.*`; multi-task baseline: `backbone.*`, `decoders.<t>.*`;
- MTI-Net: `backbone.*`, `scale_<s>.{refinement,decoders}.<t>`, `fpm_scale_<s>.*`,
  `distillation_scale_<s>.self_attention.<t>.<a>.*`, `heads.<t>.*`;
- PAD-Net: `backbone.0.*` (HRNet), `backbone.1.last_layer.*` (fuse),
  `initial_task_prediction_heads.{layers,conv_out}.<t>`, `multi_modal_distillation.*`,
  `heads.<t>.{0,1,2}`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax.traverse_util import flatten_dict, unflatten_dict

from mtnets.porting.common import (
    LEAF_NAMES,
    StateDict,
    check_shapes,
    conv_kernel,
    linear_kernel,
)

_BLOCK = {"downsample_conv": "downsample.0", "downsample_bn": "downsample.1"}
_CONV_BN = {"conv": "0", "bn": "1"}  # nn.Sequential(Conv2d, BatchNorm2d[, ReLU])


def _match(pattern: str, text: str) -> re.Match | None:
    return re.fullmatch(pattern, text)


def _block(parts: Sequence[str]) -> str:
    """Inside a BasicBlock / Bottleneck: `conv1` ... `bn3`, `downsample.{0,1}`."""
    (name,) = parts
    return _BLOCK.get(name, name)


def _resnet(parts: Sequence[str]) -> str:
    """torchvision / MTL ResNet: `conv1`, `bn1`, `layer<n>.<k>.*`."""
    if m := _match(r"layer(\d)_(\d+)", parts[0]):
        return f"layer{m[1]}.{m[2]}.{_block(parts[1:])}"
    (name,) = parts
    return name


def _hrnet(parts: Sequence[str]) -> str:
    """`MTL:models/seg_hrnet.py` `HighResolutionNet` keys."""
    head, rest = parts[0], parts[1:]
    if m := _match(r"stem([12])", head):
        return {"conv": "conv", "bn": "bn"}[rest[0]] + m[1]
    if m := _match(r"layer1_(\d+)", head):
        return f"layer1.{m[1]}.{_block(rest)}"
    if m := _match(r"transition(\d)_(\d+)(?:_(\d+))?", head):
        index = ".".join(g for g in m.groups()[1:] if g is not None)
        return f"transition{m[1]}.{index}.{_CONV_BN[rest[0]]}"
    if m := _match(r"stage(\d)_(\d+)", head):
        prefix = f"stage{m[1]}.{m[2]}"
        if b := _match(r"branch(\d+)_(\d+)", rest[0]):
            return f"{prefix}.branches.{b[1]}.{b[2]}.{_block(rest[1:])}"
        if f := _match(r"fuse(\d+)_(\d+)(?:_(\d+))?", rest[0]):
            index = ".".join(g for g in f.groups() if g is not None)
            return f"{prefix}.fuse_layers.{index}.{_CONV_BN[rest[1]]}"
    raise KeyError(f"no reference name for HRNet module {'/'.join(parts)}")


def _backbone(parts: Sequence[str], config) -> str:
    if config.model.backbone.startswith("hrnet"):
        return _hrnet(parts)
    return _resnet(parts)


def _hrnet_head(parts: Sequence[str]) -> str:
    """`HighResolutionHead.last_layer`: conv (0), BN (1), ReLU, conv (3)."""
    (name,) = parts
    return {"fuse_conv": "last_layer.0", "fuse_bn": "last_layer.1", "predict": "last_layer.3"}[name]


def _deeplab_head(parts: Sequence[str]) -> str:
    """`DeepLabHead` = Sequential(ASPP, Conv2d, BN, ReLU, Conv2d) (`MTL:models/aspp.py`)."""
    if parts[0] == "aspp":
        name, layer = parts[1], parts[2]
        if m := _match(r"branch_(\d)", name):
            return f"0.convs.{m[1]}.{_CONV_BN[layer]}"
        if name == "pool":  # Sequential(AdaptiveAvgPool2d, Conv2d, BatchNorm2d, ReLU)
            return f"0.convs.4.{ {'conv': '1', 'bn': '2'}[layer] }"
        if name == "project":
            return f"0.project.{_CONV_BN[layer]}"
    if parts[0] == "conv_bn":
        return {"conv": "1", "bn": "2"}[parts[1]]
    if tuple(parts) == ("predict",):
        return "4"
    raise KeyError(f"no reference name for DeepLab head module {'/'.join(parts)}")


def _head(parts: Sequence[str], config) -> str:
    if config.model.head == "deeplab":
        return _deeplab_head(parts)
    return _hrnet_head(parts)


def _distillation(parts: Sequence[str]) -> str:
    """`MultiTaskDistillationModule.self_attention.<t>.<a>` = SABlock(attention.0, conv)."""
    m = _match(r"(.+)_from_(.+)", parts[0])
    layer = {"attention": "attention.0", "conv": "conv"}[parts[1]]
    return f"self_attention.{m[1]}.{m[2]}.{layer}"


def _baseline(parts: Sequence[str], config) -> str:
    if parts[0] == "backbone":
        return "backbone." + _backbone(parts[1:], config)
    m = _match(r"heads_(.+)", parts[0])
    decoder = "decoder" if config.model.name == "single_task_baseline" else f"decoders.{m[1]}"
    return f"{decoder}.{_head(parts[1:], config)}"


def _mti_net(parts: Sequence[str], config) -> str:
    head, rest = parts[0], parts[1:]
    if head == "backbone":
        return "backbone." + _backbone(rest, config)
    if _match(r"scale_\d", head):
        if m := _match(r"(.+)_refine_(\d)", rest[0]):
            return f"{head}.refinement.{m[1]}.{m[2]}.{_block(rest[1:])}"
        if m := _match(r"(.+)_predict", rest[0]):
            return f"{head}.decoders.{m[1]}"
    if _match(r"fpm_scale_\d", head):
        if m := _match(r"non_linear_(\d)", rest[0]):
            tail = rest[1:]
            return f"{head}.non_linear.{m[1]}" + (f".{_block(tail)}" if tail else "")
        if rest[0] == "reduction":
            return f"{head}.dimensionality_reduction.{_block(rest[1:])}"
        if m := _match(r"se_(.+)", rest[0]):
            return f"{head}.se.{m[1]}.squeeze.{ {'fc1': '0', 'fc2': '2'}[rest[1]] }"
    if _match(r"distillation_scale_\d", head):
        return f"{head}.{_distillation(rest)}"
    if m := _match(r"head_(.+)", head):
        return f"heads.{m[1]}.{_hrnet_head(rest)}"
    raise KeyError(f"no reference name for MTI-Net module {'/'.join(parts)}")


def _pad_net(parts: Sequence[str], config) -> str:
    head, rest = parts[0], parts[1:]
    if head == "backbone":
        return "backbone.0." + _backbone(rest, config)
    if head == "fuse":
        return "backbone.1." + _hrnet_head(rest)
    if head == "distillation":
        return "multi_modal_distillation." + _distillation(rest)
    if m := _match(r"initial_(.+)_predict", head):
        return f"initial_task_prediction_heads.conv_out.{m[1]}"
    if m := _match(r"initial_(.+)_(\d)", head):
        return f"initial_task_prediction_heads.layers.{m[1]}.{m[2]}.{_block(rest)}"
    if m := _match(r"head_(.+)_predict", head):
        return f"heads.{m[1]}.2"
    if m := _match(r"head_(.+)_(\d)", head):
        return f"heads.{m[1]}.{m[2]}.{_block(rest)}"
    raise KeyError(f"no reference name for PAD-Net module {'/'.join(parts)}")


class MTLConversion:
    """The conversion of one model's MTL state dict: `keys(parts, config)` names the
    reference's module of our module path `parts`. A model's registry entry names one of the
    instances below (`weights="mtnets.porting.mtl:MTI_NET"`); calling it converts."""

    def __init__(self, keys):
        self.keys = keys

    def __call__(self, config, state_dict: Mapping[str, Any]) -> dict:
        return variables_from_mtl(config, state_dict)


BASELINE = MTLConversion(_baseline)
MTI_NET = MTLConversion(_mti_net)
PAD_NET = MTLConversion(_pad_net)


def _conversion(config) -> MTLConversion:
    """The MTL conversion of `config.model.name`'s registry entry; a clear error if its
    weights do not come from the MTL repository."""
    from mtnets.models.registry import converted_by, reference_weights

    conversion = reference_weights(config.model.name)
    if not isinstance(conversion, MTLConversion):
        raise ValueError(
            f"No MTL weight conversion for config.model.name {config.model.name!r}; "
            f"supported: {', '.join(converted_by(__name__))}."
        )
    return conversion


def torch_key(config, path: tuple[str, ...]) -> str:
    """The reference's state-dict key of our variable at `path` = (collection, *modules, leaf)."""
    collection, *modules, leaf = path
    prefix = _conversion(config).keys(tuple(modules), config)
    return f"{prefix}.{LEAF_NAMES[collection, leaf]}"


def _layout(leaf: str, array: np.ndarray) -> np.ndarray:
    if leaf == "kernel":
        return conv_kernel(array) if array.ndim == 4 else linear_kernel(array)
    return array


def model_shapes(config, image_size: tuple[int, int] = (64, 64)) -> dict:
    """`jax.eval_shape` of `create_model(config).init` (no computation)."""
    from mtnets.models import create_model

    model = create_model(config)
    images = jnp.zeros((1, *image_size, 3), jnp.float32)
    return jax.eval_shape(lambda: model.init(jax.random.key(0), images, train=False))


def strip_data_parallel(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Drops the `module.` prefix that `torch.nn.DataParallel` adds to every key."""
    if state_dict and all(k.startswith("module.") for k in state_dict):
        return {k[len("module.") :]: v for k, v in state_dict.items()}
    return dict(state_dict)


def variables_from_mtl(config, state_dict: Mapping[str, Any]) -> dict:
    """`{"params", "batch_stats"}` of `create_model(config)` from an MTL state dict; see the
    module docstring. Raises listing every missing key, unused key or shape mismatch."""
    _conversion(config)  # a clear error for a model of another reference
    sd = StateDict(strip_data_parallel(state_dict))
    expected = model_shapes(config)
    flat, missing = {}, []
    for path in flatten_dict(expected):
        key = torch_key(config, path)
        if not sd.has(key):
            missing.append(f"{key} (for {'/'.join(path)})")
            continue
        flat[path] = _layout(path[-1], sd.take(key))
    if missing:
        raise ValueError(
            f"{len(missing)} key(s) missing from the state dict: " + ", ".join(missing)
        )
    sd.finish()
    variables = unflatten_dict(flat)
    check_shapes(variables, expected)
    return variables
