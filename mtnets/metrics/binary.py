"""Saliency and edge metrics (binary tasks whose head outputs one logit per pixel)."""

from __future__ import annotations

import flax
import jax
import jax.numpy as jnp
import numpy as np
from clu import metrics

from mtnets.losses import EDGE_POS_WEIGHT, logistic_loss
from mtnets.metrics._common import safe_divide

# Thresholds on the predicted probability (`MTL:evaluation/eval_sal.py`: linspace(0.2, 0.9, 15)).
SALIENCY_THRESHOLDS = np.linspace(0.2, 0.9, 15).astype(np.float32)


def saliency_image_scores(
    logits: jnp.ndarray, target: jnp.ndarray, mask: jnp.ndarray
) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """Per image and threshold: Jaccard, precision and recall, each float32 `[B, T]`.

    Args:
      logits: `[B, H, W, 1]`; the prediction at threshold t is `sigmoid(logit) > t`.
      target: `[B, H, W]` in {0, 1}.
      mask: bool `[B, H, W]`; only these pixels count.

    Conventions of `MTL:evaluation/eval_sal.py` (`jaccard`, `precision_recall`):
    Jaccard = |P & G| / |P | G|, and 1 when both P and G are empty. Precision = TP / (TP + FP)
    and recall = TP / (TP + FN), the reference adds 1e-12 to the denominators, so an empty
    prediction has precision 0 and an empty ground truth recall 0; we use exactly 0 there.
    """
    prob = jax.nn.sigmoid(logits.astype(jnp.float32)[..., 0])
    pred = prob[..., None] > jnp.asarray(SALIENCY_THRESHOLDS)  # [B, H, W, T]
    gt = (target > 0.5)[..., None]
    valid = mask[..., None]

    def count(values: jnp.ndarray) -> jnp.ndarray:
        return jnp.sum(values & valid, axis=(1, 2), dtype=jnp.int32)

    tp = count(pred & gt)
    fp = count(pred & ~gt)
    fn = count(~pred & gt)
    union = tp + fp + fn
    jaccard = jnp.where(union == 0, 1.0, safe_divide(tp, union))
    return jaccard, safe_divide(tp, tp + fp), safe_divide(tp, tp + fn)


@flax.struct.dataclass
class SaliencyMetrics(metrics.Metric):
    """maxF and mIoU over the thresholds, from per-image scores summed over images.

    Fields: float32 `[T]` sums over images of Jaccard, precision and recall per threshold, and
    the int32 number of images with at least one valid pixel (only those are scored, so padded
    examples, whose mask is all False, add nothing).

    The reference thresholds the 8-bit PNG of sigmoid * 255; this uses the unquantised sigmoid.
    """

    jaccard: jnp.ndarray
    precision: jnp.ndarray
    recall: jnp.ndarray
    num_images: jnp.ndarray

    @classmethod
    def from_model_output(
        cls, prediction: jnp.ndarray, target: jnp.ndarray, mask: jnp.ndarray
    ) -> SaliencyMetrics:
        """`prediction` `[B, H, W, 1]` logits, `target` `[B, H, W]` {0, 1}, `mask` `[B, H, W]`."""
        jaccard, precision, recall = saliency_image_scores(prediction, target, mask)
        scored = jnp.any(mask, axis=(1, 2))[:, None]

        def total(values: jnp.ndarray) -> jnp.ndarray:
            return jnp.sum(jnp.where(scored, values, 0.0), axis=0)

        return cls(
            jaccard=total(jaccard),
            precision=total(precision),
            recall=total(recall),
            num_images=jnp.sum(scored, dtype=jnp.int32),
        )

    @classmethod
    def empty(cls) -> SaliencyMetrics:
        zeros = jnp.zeros(SALIENCY_THRESHOLDS.shape, jnp.float32)
        return cls(zeros, zeros, zeros, jnp.zeros((), jnp.int32))

    def merge(self, other: SaliencyMetrics) -> SaliencyMetrics:
        return type(self)(
            jaccard=self.jaccard + other.jaccard,
            precision=self.precision + other.precision,
            recall=self.recall + other.recall,
            num_images=self.num_images + other.num_images,
        )

    def compute(self) -> dict[str, jnp.ndarray]:
        """`maxF` and `mIoU` (fractions), each the maximum over thresholds.

        Per threshold, F = 2 P R / (P + R) of the mean precision P and mean recall R over
        images, 0 when P + R = 0 (`MTL:evaluation/eval_sal.py`).
        """
        precision = safe_divide(self.precision, self.num_images)
        recall = safe_divide(self.recall, self.num_images)
        f_measure = safe_divide(2.0 * precision * recall, precision + recall)
        return {
            "maxF": jnp.max(f_measure),
            "mIoU": jnp.max(safe_divide(self.jaccard, self.num_images)),
        }


@flax.struct.dataclass
class EdgeMetrics(metrics.Metric):
    """The online edge proxy: balanced BCE (positive weight 0.95) and a pixel F1 at 0.5.

    `loss` is the MTL `EdgeMeter` quantity (`MTL:evaluation/eval_edge.py:14-40`), pooled over all
    valid pixels: sum_pos(0.95 l) + sum_neg(0.05 l) over the number of valid pixels.
    `f1_at_0.5` is 2 TP / (2 TP + FP + FN) of `sigmoid > 0.5` with no distance tolerance, so it
    is far stricter than the ODS-F of the edge benchmark.

    Fields: float32 weighted loss sum; int32 valid pixel count, TP, FP and FN.
    """

    loss_sum: jnp.ndarray
    count: jnp.ndarray
    tp: jnp.ndarray
    fp: jnp.ndarray
    fn: jnp.ndarray

    @classmethod
    def from_model_output(
        cls, prediction: jnp.ndarray, target: jnp.ndarray, mask: jnp.ndarray
    ) -> EdgeMetrics:
        """`prediction` `[B, H, W, 1]` logits, `target` `[B, H, W]` {0, 1}, `mask` `[B, H, W]`."""
        x = prediction.astype(jnp.float32)[..., 0]
        gt = target > 0.5
        weight = jnp.where(gt, EDGE_POS_WEIGHT, 1.0 - EDGE_POS_WEIGHT)
        loss = weight * logistic_loss(x, gt.astype(jnp.float32))
        pred = x > 0.0  # sigmoid(x) > 0.5

        def count(values: jnp.ndarray) -> jnp.ndarray:
            return jnp.sum(values & mask, dtype=jnp.int32)

        return cls(
            loss_sum=jnp.sum(jnp.where(mask, loss, 0.0)),
            count=jnp.sum(mask, dtype=jnp.int32),
            tp=count(pred & gt),
            fp=count(pred & ~gt),
            fn=count(~pred & gt),
        )

    @classmethod
    def empty(cls) -> EdgeMetrics:
        zero = jnp.zeros((), jnp.int32)
        return cls(jnp.zeros((), jnp.float32), zero, zero, zero, zero)

    def merge(self, other: EdgeMetrics) -> EdgeMetrics:
        return type(self)(
            loss_sum=self.loss_sum + other.loss_sum,
            count=self.count + other.count,
            tp=self.tp + other.tp,
            fp=self.fp + other.fp,
            fn=self.fn + other.fn,
        )

    def compute(self) -> dict[str, jnp.ndarray]:
        return {
            "loss": safe_divide(self.loss_sum, self.count),
            "f1_at_0.5": safe_divide(2 * self.tp, 2 * self.tp + self.fp + self.fn),
        }
