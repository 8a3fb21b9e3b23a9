"""MTAN on a dilated ResNet with DeepLab heads, semseg + depth on NYUD.

Reference: MTL `configs/nyud/resnet50/mtan.yml`, output stride 8.

See `configs/nyud/common.py` for the launch string (`backbone=...`); the model is
`mtnets/models/mtan.py`.
"""

from configs.nyud.common import resnet_mtl_config

DIRECTORIES = {"resnet50": dict(epochs=100, batch=8, optimizer="adam", lr=1e-4)}
# Loss weights of the YAML (`loss_kwargs.loss_weights`).
WEIGHTS = {"semseg": 1.0, "depth": 1.0}


def get_config(arg=None):
    return resnet_mtl_config(
        file=__file__,
        dataset="nyud_mt",
        model="mtan",
        tasks=("semseg", "depth"),
        directories=DIRECTORIES,
        weights=WEIGHTS,
        arg=arg,
    )
