"""NDDR-CNN of dilated ResNets with DeepLab heads, five tasks on PASCAL-Context.

Reference: MTL `configs/pascal/resnet18/nddr_cnn.yml`, output stride 8.

The reference initialises every task network from that task's trained single-task model
(`MTL:utils/common_config.py:86-119`); convert those with
`mtnets.porting.mtan.single_task_state_dicts` + `variables_from_reference`, or ours with
`variables_from_single_task_variables`. Its 100x learning rate for the units is lost in the
reference from the first epoch on (REFERENCE.md §0.6), so one learning rate is used here.

See `configs/nyud/common.py` for the launch string (`backbone=...`); the model is built by
`mtnets.models.mtan.create_mtan_model`.
"""

from configs.pascal.cross_stitch import unit_network_config


def get_config(arg=None):
    return unit_network_config("nddr_cnn", arg)
