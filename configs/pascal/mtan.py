"""MTAN on a dilated ResNet with DeepLab heads, five tasks on PASCAL-Context.

Reference: MTL `configs/pascal/resnet18/mtan.yml`, output stride 8.

See `configs/nyud/common.py` for the launch string (`backbone=...`); the model is
`mtnets/models/mtan.py`.
"""

from configs.nyud.common import resnet_mtl_config

DIRECTORIES = {"resnet18": dict(epochs=100, batch=6, optimizer="sgd", lr=5e-3)}
# Loss weights of the YAML (`loss_kwargs.loss_weights`).
WEIGHTS = {"semseg": 1.0, "human_parts": 2.0, "sal": 5.0, "normals": 10.0, "edge": 50.0}


def get_config(arg=None):
    return resnet_mtl_config(
        file=__file__,
        dataset="pascal_context_mt",
        model="mtan",
        tasks=("semseg", "human_parts", "sal", "normals", "edge"),
        directories=DIRECTORIES,
        weights=WEIGHTS,
        arg=arg,
    )
