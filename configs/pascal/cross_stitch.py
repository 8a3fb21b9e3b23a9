"""Cross-stitch network of dilated ResNets with DeepLab heads, five tasks on PASCAL-Context.

Reference: MTL `configs/pascal/resnet18/cross_stitch.yml`, output stride 8.

The reference initialises every task network from that task's trained single-task model
(`MTL:utils/common_config.py:86-119`); so does `model.single_task_checkpoints` here: train the
five single-task runs first (`configs/pascal/<task>.py:backbone=resnet18`), then point this run at
their workdirs (or at MTL `best_model.pth.tar` files). Its 100x learning rate for the units is
lost in the reference from the first epoch on (docs/reference_notes.md#cross-stitch-and-nddr-cnn),
so one learning rate is used
here.

See `configs/nyud/common.py` for the launch string (`backbone=...`); the model is
`mtnets/models/cross_stitch.py`.
"""

from configs.nyud.common import resnet_mtl_config

DIRECTORIES = {"resnet18": dict(epochs=20, batch=12, optimizer="sgd", lr=5e-3)}
# Loss weights of the YAML (`loss_kwargs.loss_weights`).
WEIGHTS = {"semseg": 1.0, "human_parts": 2.0, "sal": 5.0, "normals": 10.0, "edge": 50.0}
ALPHA_BETA = (0.8, 0.05)


def get_config(arg=None):
    return unit_network_config("cross_stitch", arg)


def unit_network_config(model: str, arg=None):
    """The config of a network of per-task ResNets joined by units (cross-stitch, NDDR-CNN):
    the two reference YAMLs differ only in the model."""
    return resnet_mtl_config(
        file=__file__,
        dataset="pascal_context_mt",
        model=model,
        tasks=("semseg", "human_parts", "sal", "normals", "edge"),
        directories=DIRECTORIES,
        weights=WEIGHTS,
        arg=arg,
        alpha_beta=ALPHA_BETA,
    )
