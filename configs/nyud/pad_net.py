"""PAD-Net, semseg + depth on NYUD; `aux=edge+normals` adds the auxiliary tasks.

Reference: MTL `configs/nyud/hrnet18/pad_net.yml` and `pad_net+edges_normals.yml`.

See `configs/nyud/common.py` for the launch string (`backbone=...`, `aux=edge+normals`).
"""

from configs.nyud.mti_net import distillation_config


def get_config(arg=None):
    return distillation_config("pad_net", __file__, arg)
