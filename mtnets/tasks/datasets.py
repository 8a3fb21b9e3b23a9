"""What each dataset has: the label fields it stores and the class counts of its
classification fields. A task is available on a dataset when the dataset stores its `field`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

DATASET_TASKS: dict[str, tuple[str, ...]] = {
    "synthetic_scenes": ("semseg", "depth", "normals", "edge", "sal", "human_parts"),
    "nyud_mt": ("semseg", "depth", "normals", "edge"),
    "pascal_context_mt": ("semseg", "human_parts", "sal", "normals", "edge"),
    "nyuv2_mtan": ("semseg", "depth", "normals"),
}
# Classes per classification field.
DATASET_CLASSES: dict[str, dict[str, int]] = {
    "synthetic_scenes": {"semseg": 7, "human_parts": 4},
    "nyud_mt": {"semseg": 40},
    "pascal_context_mt": {"semseg": 21, "human_parts": 7},
    "nyuv2_mtan": {"semseg": 13},
}


def register_dataset(
    name: str, fields: Sequence[str], classes: Mapping[str, int] | None = None
) -> None:
    """Declares a dataset's label fields and the class counts of its classification fields
    (the TFDS builder of the same name stores them)."""
    DATASET_TASKS[name] = tuple(fields)
    DATASET_CLASSES[name] = dict(classes or {})
