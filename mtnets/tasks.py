"""The dense prediction tasks: what each one predicts, how its labels mark invalid pixels, and
how a horizontal flip acts on it.

Everything task-specific that the model, the losses, the metrics and the data pipeline need to
agree on lives here, so that a task is spelled out once. The number of classes of a
classification task depends on the dataset, so a `TaskSpec` is made for a (task, dataset) pair
by `task_specs`.

Label conventions in a batch (all arrays `[B, H, W, ...]`, NHWC):

| task        | prediction channels | target            | invalid pixels       |
|-------------|---------------------|-------------------|----------------------|
| semseg      | num classes (logits)| int32 class id    | 255                  |
| human_parts | num parts (logits)  | int32 part id     | 255                  |
| depth       | 1 (metres)          | float32 metres    | 0                    |
| normals     | 3 (unnormalized)    | float32 unit xyz  | all three zero       |
| edge        | 1 (logit)           | int32 {0, 1}      | none                 |
| sal         | 1 (logit)           | int32 {0, 1}      | none                 |
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the config layer reads this module, and config time loads no JAX
    import jax

TASKS = ("semseg", "depth", "normals", "edge", "sal", "human_parts")
IGNORE_LABEL = 255

# Classes per classification task for each dataset the library knows. A dataset missing from a
# task's entry does not have that task.
DATASET_CLASSES: dict[str, dict[str, int]] = {
    "synthetic_scenes": {"semseg": 7, "human_parts": 4},
    "nyud_mt": {"semseg": 40},
    "pascal_context_mt": {"semseg": 21, "human_parts": 7},
    "nyuv2_mtan": {"semseg": 13},
}
DATASET_TASKS: dict[str, tuple[str, ...]] = {
    "synthetic_scenes": TASKS,
    "nyud_mt": ("semseg", "depth", "normals", "edge"),
    "pascal_context_mt": ("semseg", "human_parts", "sal", "normals", "edge"),
    "nyuv2_mtan": ("semseg", "depth", "normals"),
}


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """What a model predicts for one task and how its labels are read."""

    name: str
    kind: str  # "classification", "depth", "normals" or "binary"
    channels: int

    @property
    def is_classification(self) -> bool:
        return self.kind == "classification"

    def valid_mask(self, target: jax.Array) -> jax.Array:
        """Boolean `[B, H, W]`: the pixels whose label takes part in losses and metrics."""
        import jax.numpy as jnp  # here, not at the top: see TYPE_CHECKING above

        if self.kind == "classification":
            return target != IGNORE_LABEL
        if self.kind == "depth":
            return target > 0
        if self.kind == "normals":
            return jnp.any(target != 0, axis=-1)
        return jnp.ones(target.shape[:3], dtype=bool)


def task_spec(name: str, dataset: str) -> TaskSpec:
    """The spec of task `name` on `dataset`; a clear error for an unknown task or dataset."""
    if name not in TASKS:
        raise ValueError(f"Unknown task {name!r}; the tasks are {', '.join(TASKS)}.")
    if dataset not in DATASET_TASKS:
        raise ValueError(
            f"Unknown dataset {dataset!r}; the datasets are {', '.join(DATASET_TASKS)}."
        )
    if name not in DATASET_TASKS[dataset]:
        raise ValueError(
            f"Dataset {dataset!r} has no labels for task {name!r}; "
            f"it has {', '.join(DATASET_TASKS[dataset])}."
        )
    if name in ("semseg", "human_parts"):
        return TaskSpec(name, "classification", DATASET_CLASSES[dataset][name])
    if name == "depth":
        return TaskSpec(name, "depth", 1)
    if name == "normals":
        return TaskSpec(name, "normals", 3)
    return TaskSpec(name, "binary", 1)


def task_specs(names: Sequence[str], dataset: str) -> dict[str, TaskSpec]:
    """Specs for several tasks, in the given order."""
    return {name: task_spec(name, dataset) for name in names}


def output_channels(specs: Mapping[str, TaskSpec]) -> dict[str, int]:
    """`{task: channels}`, what the model heads need to know."""
    return {name: spec.channels for name, spec in specs.items()}
