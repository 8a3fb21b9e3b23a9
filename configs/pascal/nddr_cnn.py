"""NDDR-CNN of dilated ResNets with DeepLab heads, five tasks on PASCAL-Context.

Reference: MTL `configs/pascal/resnet18/nddr_cnn.yml`, output stride 8.

The reference initialises every task network from that task's trained single-task model
(`MTL:utils/common_config.py:86-119`); so does `model.single_task_checkpoints` here: train the
five single-task runs first (`configs/pascal/<task>.py:backbone=resnet18`), then point this run at
their workdirs (or at MTL `best_model.pth.tar` files). Its 100x learning rate for the units is
lost in the reference from the first epoch on (docs/reference_notes.md#cross-stitch-and-nddr-cnn),
so one learning rate is used
here.

See `configs/nyud/common.py` for the launch string (`backbone=...`); the model is
`mtnets/models/nddr_cnn.py`.
"""

from configs.pascal.cross_stitch import unit_network_config


def get_config(arg=None):
    return unit_network_config("nddr_cnn", arg)
