"""Per-pixel classification (semantic segmentation, human parts): int class ids, 255 = ignore."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np

from mtnets.tasks.base import IGNORE_LABEL, Task, squeeze_channel


@dataclasses.dataclass(frozen=True)
class ClassificationTask(Task):
    """Logits over the classes; the label is `[B, H, W]` int32 class ids, 255 where unknown.

    Cross-entropy (both conventions), `SegmentationMetrics`, Delta_m on mIoU, nearest-neighbour
    resampling everywhere, a palette picture with ignore in black."""

    kind: ClassVar[str] = "classification"
    interpolation: ClassVar[str] = "nearest"
    prediction_resize: ClassVar[str] = "nearest"
    ignore_value: ClassVar[int] = IGNORE_LABEL
    fill: ClassVar[float] = IGNORE_LABEL
    target_dtype: ClassVar[str] = "int32"
    delta_m: ClassVar[tuple[str, int]] = ("mIoU", +1)
    error_title: ClassVar[str] = "wrong pixels"

    def channels_on(self, dataset: str) -> int:
        from mtnets.tasks.datasets import DATASET_CLASSES

        classes = DATASET_CLASSES.get(dataset, {})
        if self.field not in classes:
            raise ValueError(f"Dataset {dataset!r} states no class count for {self.field!r}.")
        return classes[self.field]

    def check_values(self, value):
        import tensorflow as tf

        allowed = (value < self.channels) | (value == IGNORE_LABEL)
        words = f"the class ids (0..{self.channels - 1} or {IGNORE_LABEL})"
        return tf.reduce_all(allowed), words

    def losses(self, **options):
        from mtnets import losses

        return {"mtl": losses.cross_entropy, "lorenmt": losses.nll_log_softmax}

    def metric(self):
        from mtnets.metrics.segmentation import SegmentationMetrics

        return SegmentationMetrics

    def label_from_prediction(self, prediction):
        return np.argmax(np.asarray(prediction, np.float64), axis=-1).astype(np.int32)

    def picture(self, array, *, num_classes=None, **options):
        from mtnets import visualize

        return visualize.colorize_labels(array, num_classes)

    def error_map(self, target, label):
        target = squeeze_channel(np.asarray(target))
        return np.where(target == IGNORE_LABEL, np.nan, (label != target).astype(np.float64))


@dataclasses.dataclass(frozen=True)
class HumanPartsTask(ClassificationTask):
    """Human parts: the maps of images without a person hold no part."""

    unlabelled_when_empty: ClassVar[bool] = True
