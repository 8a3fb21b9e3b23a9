"""SegNet cross-stitch: one SegNet per task, mixed by scalar units, NYUv2 13 classes.

Reference: `MTAN:im2im_pred/model_segnet_cross.py`. Launch string: see
`configs/nyuv2/common.py` (`weighting=equal|dwa|uncertainty`, `aug=True`).
"""

from configs.nyuv2.common import lorenmt_config


def get_config(arg=None):
    return lorenmt_config("segnet_cross", arg)
