"""ImageNet initialisation of the backbones from the checkpoints users have.

- torchvision ResNets (`resnet18-f37072fd.pth`, ...): keys `conv1`, `bn1`, `layer1.0.conv1`, ...
- timm HRNets (`hrnet_w18_small_v2`, `hrnet_w18`, `hrnet_w48`) and the HRNet-Image-
  Classification files (`hrnet_w18_small_model_v2.pth`, `hrnetv2_w18_imagenet_pretrained.pth`,
  `hrnetv2_w48_imagenet_pretrained.pth`): both use the original HRNet names (`conv1`, `layer1`,
  `transition1`, `stage2.0.branches...`, `stage2.0.fuse_layers...`), the ones the MTL
  reference loads (`MTL:models/seg_hrnet.py:438-454`).

Files: `.pth` / `.pt` / `.bin` (read with torch, which must then be installed) or `.npz` (NumPy,
`np.savez(path, **{k: v.numpy() for k, v in state_dict.items()})`). The classifier of the
checkpoint (torchvision `fc`; HRNet `incre_modules`, `downsamp_modules`, `final_layer`,
`classifier`) has no counterpart in a dense-prediction backbone and is dropped by name; any
other key left over, or any backbone variable without a key, is an error that lists them all
(the reference silently skips unmatched keys, so a wrong file would go unnoticed).

`config.model.pretrained` names the file, or says "imagenet" for the backbone's file in the
weights directory (`mtnets.weights`); `load_pretrained(config, variables)` replaces the
`backbone` subtree of a model's variables with the checkpoint's, and every `backbone_<task>`
subtree for the networks of per-task ResNets (cross-stitch, NDDR-CNN) started from ImageNet.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax.traverse_util import flatten_dict, unflatten_dict

from mtnets import weights
from mtnets.porting.common import LEAF_NAMES, StateDict, check_shapes
from mtnets.porting.mtl import _hrnet, _layout, _resnet

# Checkpoint keys of the ImageNet classifier, which no dense-prediction backbone has.
CLASSIFIER_PREFIXES = ("fc.", "incre_modules.", "downsamp_modules.", "final_layer.", "classifier.")


def read_checkpoint(path: str) -> dict[str, np.ndarray]:
    """`{key: array}` from a `.pth`/`.pt`/`.bin` (torch) or `.npz` file. A checkpoint dict
    that nests the weights under `state_dict` or `model` is unwrapped."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"config.model.pretrained: no file {path!r}.")
    if path.endswith(".npz"):
        with np.load(path) as data:
            return {k: data[k] for k in data.files}
    if not path.endswith((".pth", ".pt", ".bin", ".tar")):
        raise ValueError(f"config.model.pretrained {path!r}: expected a .pth, .pt, .bin or .npz.")
    try:
        import torch
    except ImportError:
        raise ImportError(
            f"Reading {path!r} needs PyTorch: install torch (CPU is enough), or run "
            "`python -m mtnets.weights convert FILE` on a machine that has it and use the .npz "
            "it writes."
        ) from None
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(state, Mapping) and key in state and isinstance(state[key], Mapping):
            state = state[key]
    return {k: v.detach().cpu().numpy() for k, v in state.items() if hasattr(v, "detach")}


def backbone_shapes(name: str) -> dict:
    """The variable shapes of our backbone `name` (`jax.eval_shape`, no computation)."""
    from mtnets.models import create_backbone

    backbone = create_backbone(name)
    images = jnp.zeros((1, 64, 64, 3), jnp.float32)
    return jax.eval_shape(lambda: backbone.init(jax.random.key(0), images))


def backbone_variables(name: str, state_dict: Mapping[str, Any]) -> dict:
    """`{"params", "batch_stats"}` of backbone `name` from an ImageNet state dict; see the
    module docstring. Raises listing every missing key, leftover key or shape mismatch."""
    translate = _hrnet if name.startswith("hrnet") else _resnet
    classifier = tuple(k for k in state_dict if k.startswith(CLASSIFIER_PREFIXES))
    sd = StateDict(state_dict, ignore=())
    for key in classifier:  # dropped on purpose: the classification head
        sd.take(key)
    expected = backbone_shapes(name)
    flat, missing = {}, []
    for path in flatten_dict(expected):
        collection, *modules, leaf = path
        key = f"{translate(tuple(modules))}.{LEAF_NAMES[collection, leaf]}"
        if not sd.has(key):
            missing.append(key)
            continue
        flat[path] = _layout(leaf, sd.take(key))
    unused = sd.unused()
    if missing or unused:
        raise ValueError(
            f"The checkpoint does not fit backbone {name!r}:\n"
            f"  {len(missing)} missing key(s): {', '.join(missing) or '-'}\n"
            f"  {len(unused)} unmatched key(s): {', '.join(unused) or '-'}"
        )
    variables = unflatten_dict(flat)
    check_shapes(variables, expected)
    return variables


def load_pretrained(config, variables: Mapping[str, Any]) -> dict:
    """`variables` of `create_model(config)` with every backbone subtree (`backbone`, or
    `backbone_<task>` in a network of per-task ResNets) replaced by the ImageNet checkpoint of
    `config.model.pretrained` (unchanged when that means from scratch)."""
    path = weights.pretrained_path(config)
    if path is None:
        return dict(variables)
    imported = backbone_variables(config.model.backbone, read_checkpoint(path))
    out = {}
    for collection, tree in variables.items():
        tree = dict(tree)
        if collection in imported:
            names = [k for k in tree if k == "backbone" or k.startswith("backbone_")]
            if not names:
                raise ValueError(f"The model's {collection!r} have no 'backbone' subtree.")
            for name in names:
                check_shapes(imported[collection], tree[name])
                tree[name] = jax.tree.map(
                    lambda new, old: jnp.asarray(new, old.dtype),
                    imported[collection],
                    tree[name],
                )
        out[collection] = tree
    return out
