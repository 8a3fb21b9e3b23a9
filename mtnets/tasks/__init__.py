"""The dense prediction tasks, each one registered `Task` object.

A task knows its label format and invalid value, how its stored field is decoded, how warps,
flips and zooms act on its labels, its loss under each convention, its metric and Delta_m
metric, how a prediction is read and resized, and how it is drawn (`mtnets.tasks.base`). The
rest of the library loops over task objects and never tests a task's name: a new task is a
`register_task` call (docs/extending.md#a-task).

The number of classes of a classification task depends on the dataset, so `task_spec` returns
the registered task with its channels on a dataset (`Task.on`). A dataset declares the label
fields it stores and their class counts in `mtnets.tasks.datasets`.

Label conventions in a batch (all arrays `[B, H, W, ...]`, NHWC):

| task        | prediction channels | target            | invalid pixels       |
|-------------|---------------------|-------------------|----------------------|
| semseg      | num classes (logits)| int32 class id    | 255                  |
| human_parts | num parts (logits)  | int32 part id     | 255                  |
| depth       | 1 (metres)          | float32 metres    | 0                    |
| normals     | 3 (unnormalized)    | float32 unit xyz  | all three zero       |
| edge        | 1 (logit)           | int32 {0, 1}      | none                 |
| sal         | 1 (logit)           | int32 {0, 1}      | none                 |

This package imports neither JAX nor TensorFlow: the config layer reads it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mtnets.tasks.base import IGNORE_LABEL, LossFn, Task
from mtnets.tasks.binary import BinaryTask, EdgeTask, SaliencyTask
from mtnets.tasks.classification import ClassificationTask, HumanPartsTask
from mtnets.tasks.datasets import DATASET_CLASSES, DATASET_TASKS, register_dataset
from mtnets.tasks.depth import DepthTask
from mtnets.tasks.normals import NormalsTask

__all__ = [
    "DATASET_CLASSES",
    "DATASET_TASKS",
    "IGNORE_LABEL",
    "MTL_TASK_ORDER",
    "TASKS",
    "BinaryTask",
    "ClassificationTask",
    "DepthTask",
    "EdgeTask",
    "HumanPartsTask",
    "LossFn",
    "NormalsTask",
    "SaliencyTask",
    "Task",
    "TaskSpec",
    "get_task",
    "output_channels",
    "register_dataset",
    "register_task",
    "task_spec",
    "task_specs",
]

TaskSpec = Task  # the name of a task object before tasks were registered objects

# name -> the registered task (its channels unset where the dataset decides them).
TASKS: dict[str, Task] = {}

# The MTL reference's task order (`TASKS.NAMES` / `AUXILARY_TASKS`, `MTL:utils/config.py:15-89`),
# which fixes the order of its auxiliary tasks and of NDDR-CNN's concatenated inputs.
MTL_TASK_ORDER = ("semseg", "human_parts", "sal", "normals", "edge", "depth")


def register_task(task: Task, *, replace: bool = False) -> Task:
    """Makes `task` known under `task.name`; registering a taken name again is an error unless
    `replace`. Returns the task, so that it can be used as an expression."""
    if not isinstance(task, Task):
        raise TypeError(f"register_task takes a Task instance, got {task!r}.")
    if task.name in TASKS and not replace:
        raise ValueError(f"A task named {task.name!r} is registered already.")
    TASKS[task.name] = task
    return task


def get_task(name: str) -> Task:
    """The registered task `name`; a clear error listing the known ones."""
    if name not in TASKS:
        raise ValueError(f"Unknown task {name!r}; the tasks are {', '.join(TASKS)}.")
    return TASKS[name]


def task_spec(name: str, dataset: str) -> Task:
    """Task `name` with its channels on `dataset`; a clear error for an unknown task or dataset,
    or a dataset without its labels."""
    task = get_task(name)
    if dataset not in DATASET_TASKS:
        raise ValueError(
            f"Unknown dataset {dataset!r}; the datasets are {', '.join(DATASET_TASKS)}."
        )
    if task.field not in DATASET_TASKS[dataset]:
        raise ValueError(
            f"Dataset {dataset!r} has no labels for task {name!r}; "
            f"it has {', '.join(DATASET_TASKS[dataset])}."
        )
    return task.on(dataset)


def task_specs(names: Sequence[str], dataset: str) -> dict[str, Task]:
    """Tasks on `dataset`, in the given order."""
    return {name: task_spec(name, dataset) for name in names}


def output_channels(specs: Mapping[str, Task]) -> dict[str, int]:
    """`{task: channels}`, what the model heads need to know."""
    return {name: spec.channels for name, spec in specs.items()}


for _task in (
    ClassificationTask("semseg"),
    DepthTask("depth"),
    NormalsTask("normals"),
    EdgeTask("edge"),
    SaliencyTask("sal"),
    HumanPartsTask("human_parts"),
):
    register_task(_task)
