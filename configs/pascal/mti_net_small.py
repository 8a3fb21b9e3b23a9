"""MTI-Net, semseg + human parts + saliency on PASCAL-Context.

Reference: MTL `configs/pascal/hrnet18/mti_net_small.yml`.

See `configs/nyud/common.py` for the launch string (`backbone=...`).
"""

from configs.nyud.common import mtl_config

DIRECTORIES = {
    "hrnet18": dict(epochs=80, batch=8, optimizer="adam", lr=1e-4),
}
# `aux=` launch-string values -> the reference's AUXILARY_TASKS (main tasks included).
AUX = {"": ("semseg", "human_parts", "sal")}

# Loss weights of the YAML (`loss_kwargs.loss_weights`).
WEIGHTS = {"semseg": 1.0, "human_parts": 2.0, "sal": 5.0}


def get_config(arg=None):
    return distillation_config("mti_net", __file__, arg)


def distillation_config(model: str, file: str, arg=None):
    """This YAML for `mti_net` or `pad_net`: the two differ only in the model."""
    return mtl_config(
        file=file,
        dataset="pascal_context_mt",
        model=model,
        tasks=("semseg", "human_parts", "sal"),
        directories=DIRECTORIES,
        arg=arg,
        aux_variants=AUX,
        weights=WEIGHTS,
    )
