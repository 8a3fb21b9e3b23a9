"""PAD-Net, five tasks on PASCAL-Context (MTL `configs/pascal/hrnet18/pad_net.yml`).

See `configs/nyud/common.py` for the launch string (`backbone=...`).
"""

from configs.pascal.mti_net import distillation_config


def get_config(arg=None):
    return distillation_config("pad_net", __file__, arg)
