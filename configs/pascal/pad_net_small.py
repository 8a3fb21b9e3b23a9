"""PAD-Net, semseg + human parts + saliency on PASCAL-Context.

Reference: MTL `configs/pascal/hrnet18/pad_net_small.yml`.

See `configs/nyud/common.py` for the launch string (`backbone=...`).
"""

from configs.pascal.mti_net_small import distillation_config


def get_config(arg=None):
    return distillation_config("pad_net", __file__, arg)
