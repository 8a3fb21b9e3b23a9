"""Depth and surface normal metrics, pooled over every valid pixel of the evaluation set.

Both follow the MTL reference's saved-prediction evaluation: errors are pooled pixel-wise over
the whole dataset, not averaged per image or per batch (`MTL:evaluation/eval_depth.py:19-55`,
`MTL:evaluation/eval_normals.py:24-65`).
"""

from __future__ import annotations

import flax
import jax.numpy as jnp
import numpy as np
from clu import metrics

from mtnets.metrics._common import masked_bincount, safe_divide

# Predicted depths <= 0 are raised to this before the log (`MTL:evaluation/eval_depth.py`).
DEPTH_LOG_FLOOR = 1e-9

# Angular error histogram used for the median: 0.01-degree bins over [0, 180].
NORMALS_BIN_WIDTH = 0.01
NORMALS_NUM_BINS = 18000
# Thresholds (degrees) of the "% of pixels within" metrics; strict `<` as in the reference.
NORMALS_THRESHOLDS = (11.25, 22.5, 30.0)


@flax.struct.dataclass
class DepthMetrics(metrics.Metric):
    """Pixel-pooled depth errors: `rmse`, `log_rmse`, `abs_rel` and `abs_err`.

    All fields are scalar sums over valid pixels (float32), `count` the number of valid pixels
    (int32). `abs_err` (mean absolute error) is the lorenmt metric; it costs nothing to keep.
    """

    sq_err: jnp.ndarray
    log_sq_err: jnp.ndarray
    abs_err: jnp.ndarray
    abs_rel: jnp.ndarray
    count: jnp.ndarray

    @classmethod
    def from_model_output(
        cls, prediction: jnp.ndarray, target: jnp.ndarray, mask: jnp.ndarray
    ) -> DepthMetrics:
        """`prediction` `[B, H, W, 1]`, `target` `[B, H, W]` (> 0 if valid), `mask` `[B, H, W]`."""
        pred = prediction.astype(jnp.float32)[..., 0]
        # Neutral values at invalid pixels keep log() and the division finite before masking.
        gt = jnp.where(mask, target.astype(jnp.float32), 1.0)
        diff = pred - gt
        # log_rmse: pred <= 0 becomes 1e-9 (`MTL:evaluation/eval_depth.py`).
        log_diff = jnp.log(gt) - jnp.log(jnp.where(pred > 0, pred, DEPTH_LOG_FLOOR))

        def total(values: jnp.ndarray) -> jnp.ndarray:
            return jnp.sum(jnp.where(mask, values, 0.0))

        return cls(
            sq_err=total(jnp.square(diff)),
            log_sq_err=total(jnp.square(log_diff)),
            abs_err=total(jnp.abs(diff)),
            abs_rel=total(jnp.abs(diff) / gt),
            count=jnp.sum(mask, dtype=jnp.int32),
        )

    @classmethod
    def empty(cls) -> DepthMetrics:
        zero = jnp.zeros((), jnp.float32)
        return cls(zero, zero, zero, zero, jnp.zeros((), jnp.int32))

    def merge(self, other: DepthMetrics) -> DepthMetrics:
        return type(self)(
            sq_err=self.sq_err + other.sq_err,
            log_sq_err=self.log_sq_err + other.log_sq_err,
            abs_err=self.abs_err + other.abs_err,
            abs_rel=self.abs_rel + other.abs_rel,
            count=self.count + other.count,
        )

    def compute(self) -> dict[str, jnp.ndarray]:
        """rmse = sqrt(sum (gt - pred)^2 / N), log_rmse alike on logs, abs_rel = mean |d| / gt."""
        return {
            "rmse": jnp.sqrt(safe_divide(self.sq_err, self.count)),
            "log_rmse": jnp.sqrt(safe_divide(self.log_sq_err, self.count)),
            "abs_rel": safe_divide(self.abs_rel, self.count),
            "abs_err": safe_divide(self.abs_err, self.count),
        }


def angular_error_degrees(prediction: jnp.ndarray, target: jnp.ndarray) -> jnp.ndarray:
    """`[...]` angle in degrees between the vectors on the last axis.

    Computed as atan2(|p x t|, p . t), which equals arccos of the clipped cosine of the
    normalised vectors (`MTL:evaluation/eval_normals.py`) but keeps its precision in float32
    near 0 and 180 degrees, where arccos loses it. Both vectors may have any non-zero length.
    """
    p = prediction.astype(jnp.float32)
    t = target.astype(jnp.float32)
    cross = jnp.cross(p, t)
    sin_part = jnp.sqrt(jnp.sum(jnp.square(cross), axis=-1))
    cos_part = jnp.sum(p * t, axis=-1)
    return jnp.degrees(jnp.arctan2(sin_part, cos_part))


@flax.struct.dataclass
class NormalsMetrics(metrics.Metric):
    """Angular error statistics pooled over valid pixels: mean, rmse, median and % within.

    Fields: float32 sums of the error and its square, an int32 histogram of `NORMALS_NUM_BINS`
    bins of `NORMALS_BIN_WIDTH` degrees for the median, int32 counts below each of
    `NORMALS_THRESHOLDS`, and the int32 number of valid pixels.
    """

    angle_sum: jnp.ndarray
    angle_sq_sum: jnp.ndarray
    histogram: jnp.ndarray
    within: jnp.ndarray
    count: jnp.ndarray

    @classmethod
    def from_model_output(
        cls, prediction: jnp.ndarray, target: jnp.ndarray, mask: jnp.ndarray
    ) -> NormalsMetrics:
        """`prediction` `[B, H, W, 3]` (any length), `target` `[B, H, W, 3]`, `mask` `[B, H, W]`."""
        angle = angular_error_degrees(prediction, target)
        bins = jnp.clip(
            jnp.floor(angle / NORMALS_BIN_WIDTH).astype(jnp.int32), 0, NORMALS_NUM_BINS - 1
        )
        within = [jnp.sum(mask & (angle < t), dtype=jnp.int32) for t in NORMALS_THRESHOLDS]
        return cls(
            angle_sum=jnp.sum(jnp.where(mask, angle, 0.0)),
            angle_sq_sum=jnp.sum(jnp.where(mask, jnp.square(angle), 0.0)),
            histogram=masked_bincount(bins, mask, NORMALS_NUM_BINS),
            within=jnp.stack(within),
            count=jnp.sum(mask, dtype=jnp.int32),
        )

    @classmethod
    def empty(cls) -> NormalsMetrics:
        zero = jnp.zeros((), jnp.float32)
        return cls(
            angle_sum=zero,
            angle_sq_sum=zero,
            histogram=jnp.zeros((NORMALS_NUM_BINS,), jnp.int32),
            within=jnp.zeros((len(NORMALS_THRESHOLDS),), jnp.int32),
            count=jnp.zeros((), jnp.int32),
        )

    def merge(self, other: NormalsMetrics) -> NormalsMetrics:
        return type(self)(
            angle_sum=self.angle_sum + other.angle_sum,
            angle_sq_sum=self.angle_sq_sum + other.angle_sq_sum,
            histogram=self.histogram + other.histogram,
            within=self.within + other.within,
            count=self.count + other.count,
        )

    def compute(self) -> dict[str, jnp.ndarray]:
        """Degrees for `mean`, `rmse`, `median`; percent of pixels for `within_<t>`."""
        result = {
            "mean": safe_divide(self.angle_sum, self.count),
            "rmse": jnp.sqrt(safe_divide(self.angle_sq_sum, self.count)),
            "median": histogram_median(self.histogram, NORMALS_BIN_WIDTH),
        }
        for i, threshold in enumerate(NORMALS_THRESHOLDS):
            key = f"within_{threshold:g}"
            result[key] = 100.0 * safe_divide(self.within[i], self.count)
        return result


def histogram_median(histogram: jnp.ndarray, bin_width: float) -> jnp.ndarray:
    """Median of the values binned in `histogram` (bin k covers [k w, (k + 1) w)); 0 if empty.

    The r-th smallest value is placed by linear interpolation inside its bin, as if the n values
    of the bin sat at the centres of n equal slices of it; the median is that value at rank
    (N + 1) / 2, or the mean of ranks N / 2 and N / 2 + 1 when N is even (like `np.median`).
    Each estimate lies in the bin of the true value, so the result is within one bin width of
    the exact median.
    """
    histogram = jnp.asarray(histogram)
    cumulative = jnp.cumsum(histogram)
    total = cumulative[-1]
    low = _value_at_rank(histogram, cumulative, (total + 1) // 2, bin_width)
    high = _value_at_rank(histogram, cumulative, total // 2 + 1, bin_width)
    return jnp.where(total > 0, (low + high) / 2.0, 0.0)


def _value_at_rank(
    histogram: jnp.ndarray, cumulative: jnp.ndarray, rank: jnp.ndarray, bin_width: float
) -> jnp.ndarray:
    """Interpolated value of 1-based `rank`; integer arithmetic until the last step, so counts
    above 2^24 stay exact."""
    k = jnp.searchsorted(cumulative, rank, side="left")
    k = jnp.clip(k, 0, histogram.shape[0] - 1)
    below = jnp.where(k > 0, cumulative[jnp.maximum(k - 1, 0)], 0)
    position = safe_divide((rank - below).astype(jnp.float32) - 0.5, histogram[k])
    return (k.astype(jnp.float32) + jnp.clip(position, 0.0, 1.0)) * np.float32(bin_width)
