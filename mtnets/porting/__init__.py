"""Weights from elsewhere: reference PyTorch state dicts and ImageNet checkpoints.

- `variables_from_reference(config, state_dict)`: the reference's state dict of the model that
  `config` describes -> our `{"params", "batch_stats"}`. MTI-Net, PAD-Net and the single- and
  multi-task baselines come from the MTL reference (`mtnets.porting.mtl`); the MTAN,
  cross-stitch and NDDR-CNN family from `mtnets.porting.mtan`.
- `mtnets.porting.imagenet`: ImageNet backbone checkpoints (torchvision ResNet, timm and
  HRNet-Image-Classification HRNets) for `config.model.pretrained`.

Applying them at the start of a run (reading files and workdirs) is `mtnets.train.warm_start`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mtnets.porting import mtl


def variables_from_reference(config, state_dict: Mapping[str, Any]) -> dict:
    """Our model's variables from the reference implementation's state dict (parameter and
    buffer names as PyTorch writes them, arrays in PyTorch layout). With them the model's
    eval-mode outputs equal the reference's."""
    if config.model.name in mtl.MODELS:
        return mtl.variables_from_mtl(config, state_dict)
    from mtnets.porting import mtan  # the MTAN / cross-stitch / NDDR-CNN family

    return mtan.variables_from_reference(config, state_dict)
