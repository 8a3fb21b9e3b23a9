"""The names of the classes of each dataset's classification tasks, for legends of pictures.

Index i of a tuple names label id i as the builders store it (ignore, 255, has no name). The
labels are stored as integer PNGs, not as TFDS `ClassLabel`s, so the names live here, beside
the builders that define the ids.
"""

from __future__ import annotations

from mtnets.data.builders.scene_renderer import CLASS_NAMES as SYNTHETIC_CLASSES
from mtnets.data.builders.scene_renderer import PART_NAMES as SYNTHETIC_PARTS

# NYUD-v2's 40-class grouping (Gupta et al.), ids 1..40 of the archive stored as 0..39.
NYUD_CLASSES = (
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf",
    "picture", "counter", "blinds", "desk", "shelves", "curtain", "dresser", "pillow", "mirror",
    "floor mat", "clothes", "ceiling", "books", "refrigerator", "television", "paper", "towel",
    "shower curtain", "box", "whiteboard", "person", "night stand", "toilet", "sink", "lamp",
    "bathtub", "bag", "other structure", "other furniture", "other prop",
)  # fmt: skip

# The 13-class NYUv2 mapping of lorenmt's preprocessed data (ids 1..13 stored as 0..12).
NYUV2_13_CLASSES = (
    "bed", "books", "ceiling", "chair", "floor", "furniture", "objects", "picture", "sofa",
    "table", "tv", "wall", "window",
)  # fmt: skip

# PASCAL VOC's 20 object classes plus background, the semseg ids of PASCAL-Context MT.
VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "dining table", "dog", "horse", "motorbike", "person", "potted plant",
    "sheep", "sofa", "train", "tv monitor",
)  # fmt: skip

# The 6 person parts (plus background) of `pascal_context_mt.PART_GROUPS`, in id order.
PASCAL_PARTS = (
    "background", "head", "torso", "upper arms", "lower arms", "upper legs", "lower legs",
)  # fmt: skip

CLASS_NAMES: dict[str, dict[str, tuple[str, ...]]] = {
    "synthetic_scenes": {"semseg": SYNTHETIC_CLASSES, "human_parts": SYNTHETIC_PARTS},
    "nyud_mt": {"semseg": NYUD_CLASSES},
    "nyuv2_mtan": {"semseg": NYUV2_13_CLASSES},
    "pascal_context_mt": {"semseg": VOC_CLASSES, "human_parts": PASCAL_PARTS},
}


def class_names(dataset: str) -> dict[str, tuple[str, ...]]:
    """`{task: names}` of the classification tasks of `dataset` ({} for an unknown one)."""
    return dict(CLASS_NAMES.get(dataset, {}))
