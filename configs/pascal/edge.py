"""Single-task baseline for edge on PASCAL-Context.

Reference: MTL `configs/pascal/{hrnet18,resnet18}/edge.yml`.

Backbone and head per reference directory; see `configs/nyud/common.py` for the launch string.
"""

from configs.pascal.semseg import single_task_config


def get_config(arg=None):
    return single_task_config("edge", __file__, arg)
