"""Shared-encoder multi-task baseline, five tasks on PASCAL-Context.

Reference: MTL `configs/pascal/{hrnet18,resnet18}/multi_task_baseline.yml`.

See `configs/nyud/common.py` for the launch string (`backbone=...`).
"""

from configs.nyud.common import mtl_config

DIRECTORIES = {
    "hrnet18": dict(epochs=100, batch=8, optimizer="adam", lr=1e-4),
    "resnet18": dict(epochs=100, batch=6, optimizer="adam", lr=1e-4),
}
# Loss weights of the YAML (`loss_kwargs.loss_weights`).
WEIGHTS = {"semseg": 1.0, "human_parts": 2.0, "sal": 5.0, "normals": 10.0, "edge": 50.0}


def get_config(arg=None):
    return mtl_config(
        file=__file__,
        dataset="pascal_context_mt",
        model="multi_task_baseline",
        tasks=("semseg", "human_parts", "sal", "normals", "edge"),
        directories=DIRECTORIES,
        arg=arg,
        weights=WEIGHTS,
    )
