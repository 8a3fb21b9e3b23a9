"""MTAN on a dilated ResNet with DeepLab heads, five tasks on PASCAL-Context.

Reference: MTL `configs/pascal/resnet18/mtan.yml`, output stride 8.

See `configs/nyud/common.py` for the launch string (`backbone=...`); the model is built by
`mtnets.models.mtan.create_mtan_model`.
"""

from configs.nyud.common import mtl_config, split_arg
from mtnets.config_utils import apply_overrides

DIRECTORIES = {"resnet18": dict(epochs=100, batch=6, optimizer="sgd", lr=5e-3)}
# Loss weights of the YAML (`loss_kwargs.loss_weights`).
WEIGHTS = {"semseg": 1.0, "human_parts": 2.0, "sal": 5.0, "normals": 10.0, "edge": 50.0}
ALPHA_BETA = (0.8, 0.05)


def get_config(arg=None):
    config = mtl_config(
        file=__file__,
        dataset="pascal_context_mt",
        model="mtan",
        tasks=("semseg", "human_parts", "sal", "normals", "edge"),
        directories=DIRECTORIES,
        arg=None,
        weights=WEIGHTS,
    )
    config.model.output_stride = 8  # MTL ResnetDilated(dilate_scale=8)
    return apply_overrides(config, _overrides(arg))


def _overrides(arg):
    """Launch-string items other than `backbone=` (fixed by the reference directory)."""
    chosen, rest = split_arg(arg, ("backbone",))
    if chosen.get("backbone", "resnet18") != "resnet18":
        raise ValueError(f"{__file__}: the reference has only backbone=resnet18, got {chosen}.")
    return rest
