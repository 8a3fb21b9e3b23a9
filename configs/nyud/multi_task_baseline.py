"""Shared-encoder multi-task baseline, semseg + depth on NYUD.

Reference: MTL `configs/nyud/{hrnet18,resnet50}/multi_task_baseline.yml`.

See `configs/nyud/common.py` for the launch string (`backbone=...`).
"""

from configs.nyud.common import mtl_config

DIRECTORIES = {
    "hrnet18": dict(epochs=100, batch=8, optimizer="adam", lr=1e-4),
    "resnet50": dict(epochs=100, batch=8, optimizer="adam", lr=1e-4),
}
# Loss weights of the YAML (`loss_kwargs.loss_weights`).
WEIGHTS = {"semseg": 1.0, "depth": 1.0}


def get_config(arg=None):
    return mtl_config(
        file=__file__,
        dataset="nyud_mt",
        model="multi_task_baseline",
        tasks=("semseg", "depth"),
        directories=DIRECTORIES,
        arg=arg,
        weights=WEIGHTS,
    )
