"""SegNet-MTAN: the shared SegNet with per-task attention networks, NYUv2 13 classes.

Reference: `MTAN:im2im_pred/model_segnet_mtan.py`. Launch string: see
`configs/nyuv2/common.py` (`weighting=equal|dwa|uncertainty`, `aug=True`).
"""

from configs.nyuv2.common import lorenmt_config


def get_config(arg=None):
    return lorenmt_config("segnet_mtan", arg)
