"""Single-task baseline for edge on PASCAL-Context.

Reference: MTL `configs/pascal/{hrnet18,resnet18}/edge.yml`.

Backbone and head per reference directory; see `configs/nyud/common.py` for the launch string.
"""

from configs.nyud.common import mtl_config

DIRECTORIES = {
    "hrnet18": dict(epochs=60, batch=8, optimizer="sgd", lr=1e-2),
    "resnet18": dict(epochs=60, batch=12, optimizer="adam", lr=1e-4),
}


def get_config(arg=None):
    return mtl_config(
        file=__file__,
        dataset="pascal_context_mt",
        model="single_task_baseline",
        tasks=("edge",),
        directories=DIRECTORIES,
        arg=arg,
    )
