"""Single-task SegNet, NYUv2 13 classes.

Reference: `MTAN:im2im_pred/model_segnet_single.py`. Launch string: `task=semseg|depth|normals`
(the reference's `--task semantic|depth|normal`) and `aug=True`; see
`configs/nyuv2/common.py`.
"""

from configs.nyuv2.common import lorenmt_config


def get_config(arg=None):
    return lorenmt_config("segnet_single", arg, single_task=True)
