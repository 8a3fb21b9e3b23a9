"""MTI-Net, semseg + depth on NYUD; `aux=edge+normals` adds the auxiliary tasks.

Reference: MTL `configs/nyud/hrnet18/mti_net.yml` and `mti_net+edges_normals.yml`.

See `configs/nyud/common.py` for the launch string (`backbone=...`, `aux=edge+normals`).
"""

from configs.nyud.common import mtl_config

DIRECTORIES = {
    "hrnet18": dict(epochs=100, batch=8, optimizer="adam", lr=1e-4),
}
# `aux=` launch-string values -> the reference's AUXILARY_TASKS (main tasks included).
AUX = {
    "": ("semseg", "depth"),
    "edge+normals": ("semseg", "normals", "edge", "depth"),
    "normals+edge": ("semseg", "normals", "edge", "depth"),
}

# Loss weights of the YAML (`loss_kwargs.loss_weights`).
WEIGHTS = {"semseg": 1.0, "depth": 1.0, "normals": 10.0, "edge": 50.0}


def get_config(arg=None):
    return distillation_config("mti_net", __file__, arg)


def distillation_config(model: str, file: str, arg=None):
    """This YAML for `mti_net` or `pad_net`: the two differ only in the model."""
    return mtl_config(
        file=file,
        dataset="nyud_mt",
        model=model,
        tasks=("semseg", "depth"),
        directories=DIRECTORIES,
        arg=arg,
        aux_variants=AUX,
        weights=WEIGHTS,
    )
