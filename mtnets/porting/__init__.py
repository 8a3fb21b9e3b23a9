"""Weights from elsewhere: reference PyTorch state dicts and ImageNet checkpoints.

- `variables_from_reference(config, state_dict)`: the reference's state dict of the model that
  `config` describes -> our `{"params", "batch_stats"}`, by the conversion that the model's
  registry entry names (`weights=`): MTI-Net, PAD-Net and the single- and multi-task
  baselines come from the MTL reference (`mtnets.porting.mtl`); the MTAN, cross-stitch and
  NDDR-CNN family and lorenmt's SegNet models from `mtnets.porting.mtan`.
- `mtnets.porting.imagenet`: ImageNet backbone checkpoints (torchvision ResNet, timm and
  HRNet-Image-Classification HRNets) for `config.model.pretrained`.

Applying them at the start of a run (reading files and workdirs) is `mtnets.train.warm_start`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def variables_from_reference(config, state_dict: Mapping[str, Any]) -> dict:
    """Our model's variables from the reference implementation's state dict (parameter and
    buffer names as PyTorch writes them, arrays in PyTorch layout). With them the model's
    eval-mode outputs equal the reference's."""
    from mtnets.models.registry import reference_weights

    conversion = reference_weights(config.model.name)
    if conversion is None:
        raise ValueError(f"config.model.name {config.model.name!r} has no reference weights.")
    return conversion(config, state_dict)
