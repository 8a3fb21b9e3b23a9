"""Single-task baseline for depth on nyud_mt (MTL `configs/nyud/{hrnet18,resnet50}/depth.yml`).

Backbone and head per reference directory; see `configs/nyud/common.py` for the launch string.
"""

from configs.nyud.common import mtl_config

DIRECTORIES = {
    "hrnet18": dict(epochs=100, batch=8, optimizer="adam", lr=1e-4),
    "resnet50": dict(epochs=100, batch=8, optimizer="adam", lr=1e-4),
}


def get_config(arg=None):
    return mtl_config(
        file=__file__,
        dataset="nyud_mt",
        model="single_task_baseline",
        tasks=("depth",),
        directories=DIRECTORIES,
        arg=arg,
    )
