"""Single-task baseline for sal on PASCAL-Context.

Reference: MTL `configs/pascal/{hrnet18,resnet18}/sal.yml`.

Backbone and head per reference directory; see `configs/nyud/common.py` for the launch string.
"""

from configs.pascal.semseg import single_task_config


def get_config(arg=None):
    return single_task_config("sal", __file__, arg)
