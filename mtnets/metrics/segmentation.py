"""Semantic segmentation and human parts: a dataset-level confusion matrix.

The MTL reference accumulates per-class TP/FP/FN over the whole evaluation set and averages the
per-class IoU over *all* classes, an absent class counting as 0
(`MTL:evaluation/eval_semseg.py:35-77`, the same for `eval_human_parts.py:21-75`). A confusion
matrix carries exactly that information and merges by addition.
"""

from __future__ import annotations

import flax
import jax.numpy as jnp
from clu import metrics

from mtnets.metrics._common import masked_bincount, safe_divide

# IoU_c = TP / max(TP + FP + FN, 1e-8) (`MTL:evaluation/eval_semseg.py`).
_IOU_EPS = 1e-8


def confusion_matrix(logits: jnp.ndarray, labels: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
    """int32 `[C, C]` counts; rows are the ground truth, columns the argmax prediction.

    Args:
      logits: `[B, H, W, C]` class scores; C is read from the shape.
      labels: int `[B, H, W]`; any value (e.g. 255) where `mask` is False.
      mask: bool `[B, H, W]`.

    Each valid pixel is counted in bin `gt * C + pred`; invalid pixels go to a dropped bin.
    """
    num_classes = logits.shape[-1]
    pred = jnp.argmax(logits, axis=-1).astype(jnp.int32)
    gt = jnp.clip(labels.astype(jnp.int32), 0, num_classes - 1)
    counts = masked_bincount(gt * num_classes + pred, mask, num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


@flax.struct.dataclass
class SegmentationMetrics(metrics.Metric):
    """mIoU, pixel accuracy and per-class IoU from a summed confusion matrix.

    `confusion` is int32 `[C, C]` (rows ground truth, columns prediction). int32 holds up to
    2^31 pixels per cell, about 10^4 PASCAL-sized images of a single class.
    """

    confusion: jnp.ndarray

    @classmethod
    def from_model_output(
        cls, prediction: jnp.ndarray, target: jnp.ndarray, mask: jnp.ndarray
    ) -> SegmentationMetrics:
        """`prediction` `[B, H, W, C]` logits, `target` int `[B, H, W]`, `mask` `[B, H, W]`."""
        return cls(confusion=confusion_matrix(prediction, target, mask))

    @classmethod
    def empty(cls, num_classes: int | None = None) -> SegmentationMetrics:
        """An all-zero accumulator.

        Without `num_classes` the confusion is a scalar 0, which broadcasts when merged with a
        real `[C, C]` matrix (what clu's `Collection.empty()` needs); pass `num_classes` when the
        shape must stay fixed, e.g. as a `lax.scan`/`fori_loop` carry.
        """
        shape = () if num_classes is None else (num_classes, num_classes)
        return cls(confusion=jnp.zeros(shape, jnp.int32))

    def merge(self, other: SegmentationMetrics) -> SegmentationMetrics:
        return type(self)(confusion=self.confusion + other.confusion)

    def compute(self) -> dict[str, jnp.ndarray]:
        """`mIoU` (MTL: mean over all classes, absent ones count 0), `mIoU_lorenmt` (mean over
        the classes present in ground truth or prediction), `pixel_accuracy` (fractions in
        [0, 1], the same in both repos) and `iou/<c>` for every class c."""
        confusion = jnp.asarray(self.confusion)
        if confusion.ndim != 2:  # Still the shapeless empty accumulator: nothing was seen.
            zero = jnp.float32(0.0)
            return {"mIoU": zero, "mIoU_lorenmt": zero, "pixel_accuracy": zero}
        confusion = confusion.astype(jnp.float32)
        tp = jnp.diagonal(confusion)
        fn = jnp.sum(confusion, axis=1) - tp
        fp = jnp.sum(confusion, axis=0) - tp
        iou = tp / jnp.maximum(tp + fp + fn, _IOU_EPS)
        # lorenmt (`MTAN:im2im_pred/utils.py:84-103`): IoU = diag / (row + col - diag) and
        # torch.mean, which is NaN as soon as one class is absent from both the ground truth and
        # the prediction. We average over the classes that do appear (NaN-safe); with every
        # class present this is lorenmt's number (and the MTL one).
        union = tp + fp + fn
        present = union > 0
        result = {
            "mIoU": jnp.mean(iou),
            "mIoU_lorenmt": safe_divide(
                jnp.sum(jnp.where(present, tp / jnp.where(present, union, 1.0), 0.0)),
                jnp.sum(present),
            ),
            "pixel_accuracy": safe_divide(jnp.sum(tp), jnp.sum(confusion)),
        }
        result.update({f"iou/{c}": iou[c] for c in range(iou.shape[0])})
        return result
