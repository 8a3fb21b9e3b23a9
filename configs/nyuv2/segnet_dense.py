"""SegNet dense: a shared SegNet and one per task reading its features, NYUv2 13 classes.

Reference: `MTAN:im2im_pred/model_segnet_dense.py`. Launch string: see
`configs/nyuv2/common.py` (`weighting=equal|dwa|uncertainty`, `aug=True`).
"""

from configs.nyuv2.common import lorenmt_config


def get_config(arg=None):
    return lorenmt_config("segnet_dense", arg)
