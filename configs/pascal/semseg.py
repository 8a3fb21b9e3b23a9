"""Single-task baseline for semseg on PASCAL-Context.

Reference: MTL `configs/pascal/{hrnet18,resnet18}/semseg.yml`.

Backbone and head per reference directory; see `configs/nyud/common.py` for the launch string.
"""

from configs.nyud.common import mtl_config

DIRECTORIES = {
    "hrnet18": dict(epochs=60, batch=8, optimizer="sgd", lr=1e-2),
    "resnet18": dict(epochs=60, batch=12, optimizer="adam", lr=1e-4),
}


def get_config(arg=None):
    return single_task_config("semseg", __file__, arg)


def single_task_config(task: str, file: str, arg=None):
    """A PASCAL-Context single-task YAML: the five differ only in the task."""
    return mtl_config(
        file=file,
        dataset="pascal_context_mt",
        model="single_task_baseline",
        tasks=(task,),
        directories=DIRECTORIES,
        arg=arg,
    )
