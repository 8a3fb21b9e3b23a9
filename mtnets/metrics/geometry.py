"""Depth and surface normal metrics, pooled over every valid pixel of the evaluation set.

Both follow the MTL reference's saved-prediction evaluation: errors are pooled pixel-wise over
the whole dataset, not averaged per image or per batch (`MTL:evaluation/eval_depth.py:19-55`,
`MTL:evaluation/eval_normals.py:24-65`).
"""

from __future__ import annotations

import flax
import jax
import jax.numpy as jnp
import numpy as np
from clu import metrics

from mtnets.metrics._common import masked_bincount, safe_divide

# Predicted depths <= 0 are raised to this before any pixel-pooled depth error is computed, as
# MTL's evaluation does once for every metric it reports (rmse and log_rmse).
DEPTH_FLOOR = 1e-9

# Angular error histogram used for the median: 0.01-degree bins over [0, 180].
NORMALS_BIN_WIDTH = 0.01
NORMALS_NUM_BINS = 18000
# Thresholds (degrees) of the "% of pixels within" metrics; strict `<` as in the reference.
NORMALS_THRESHOLDS = (11.25, 22.5, 30.0)


# delta < 1.25^k, k = 1..3 (Eigen et al. 2014), as in the usual depth benchmarks.
DEPTH_DELTAS = (1.25, 1.25**2, 1.25**3)


@flax.struct.dataclass
class DepthMetrics(metrics.Metric):
    """Pixel-pooled depth errors and lorenmt's batch-averaged ones.

    Pooled over all valid pixels of the set (MTL `eval_depth.py` for rmse and log_rmse; the
    usual definitions for the others): `rmse`, `log_rmse`, `abs_rel` = mean |d| / gt,
    `sq_rel` = mean d^2 / gt, `abs_err` = mean |d|, and `delta_<k>` = % of pixels with
    max(gt / pred, pred / gt) < 1.25^k. As in MTL's evaluation, a prediction <= 0 is first
    raised to 1e-9 (`DEPTH_FLOOR`), so it counts as 1e-9 in every pooled error.

    lorenmt (`MTAN:im2im_pred/utils.py:176-181,203-208`) averages per *batch*: `abs_err_batch`
    and `rel_err_batch` are the means over evaluation batches of each batch's mean |d| and
    |d| / gt. They depend on the evaluation batch size, as in lorenmt (batch 2 there); a batch
    with no valid pixel (e.g. all padding) is not counted.

    Fields: float32 scalar sums, int32 `deltas [3]` counts, int32 `count` of valid pixels,
    float32 sums of per-batch means and the int32 number of batches.
    """

    sq_err: jnp.ndarray
    log_sq_err: jnp.ndarray
    abs_err: jnp.ndarray
    abs_rel: jnp.ndarray
    sq_rel: jnp.ndarray
    deltas: jnp.ndarray
    count: jnp.ndarray
    batch_abs_err: jnp.ndarray
    batch_rel_err: jnp.ndarray
    num_batches: jnp.ndarray

    @classmethod
    def from_model_output(
        cls, prediction: jnp.ndarray, target: jnp.ndarray, mask: jnp.ndarray
    ) -> DepthMetrics:
        """`prediction` `[B, H, W, 1]`, `target` `[B, H, W]` (> 0 if valid), `mask` `[B, H, W]`."""
        raw = prediction.astype(jnp.float32)[..., 0]
        # Neutral values at invalid pixels keep log() and the division finite before masking.
        gt = jnp.where(mask, target.astype(jnp.float32), 1.0)
        # MTL floors the prediction once, before rmse and log_rmse alike; the pooled errors
        # all use the floored prediction. lorenmt's batch errors use the raw one, as lorenmt.
        pred = jnp.where(raw > 0, raw, DEPTH_FLOOR)
        diff = pred - gt
        log_diff = jnp.log(gt) - jnp.log(pred)
        ratio = jnp.maximum(gt / pred, pred / gt)
        raw_abs = jnp.abs(raw - gt)

        def total(values: jnp.ndarray) -> jnp.ndarray:
            return jnp.sum(jnp.where(mask, values, 0.0))

        count = jnp.sum(mask, dtype=jnp.int32)
        has_pixels = count > 0
        return cls(
            sq_err=total(jnp.square(diff)),
            log_sq_err=total(jnp.square(log_diff)),
            abs_err=total(jnp.abs(diff)),
            abs_rel=total(jnp.abs(diff) / gt),
            sq_rel=total(jnp.square(diff) / gt),
            deltas=jnp.stack([jnp.sum(mask & (ratio < d), dtype=jnp.int32) for d in DEPTH_DELTAS]),
            count=count,
            batch_abs_err=safe_divide(total(raw_abs), count),
            batch_rel_err=safe_divide(total(raw_abs / gt), count),
            num_batches=has_pixels.astype(jnp.int32),
        )

    @classmethod
    def empty(cls) -> DepthMetrics:
        zero = jnp.zeros((), jnp.float32)
        izero = jnp.zeros((), jnp.int32)
        deltas = jnp.zeros((len(DEPTH_DELTAS),), jnp.int32)
        return cls(zero, zero, zero, zero, zero, deltas, izero, zero, zero, izero)

    def merge(self, other: DepthMetrics) -> DepthMetrics:
        return jax.tree.map(jnp.add, self, other)

    def compute(self) -> dict[str, jnp.ndarray]:
        """rmse = sqrt(sum (gt - pred)^2 / N), log_rmse alike on logs, and the rest as above."""
        result = {
            "rmse": jnp.sqrt(safe_divide(self.sq_err, self.count)),
            "log_rmse": jnp.sqrt(safe_divide(self.log_sq_err, self.count)),
            "abs_rel": safe_divide(self.abs_rel, self.count),
            "sq_rel": safe_divide(self.sq_rel, self.count),
            "abs_err": safe_divide(self.abs_err, self.count),
            "abs_err_batch": safe_divide(self.batch_abs_err, self.num_batches),
            "rel_err_batch": safe_divide(self.batch_rel_err, self.num_batches),
        }
        for k in range(len(DEPTH_DELTAS)):
            result[f"delta_{k + 1}"] = 100.0 * safe_divide(self.deltas[k], self.count)
        return result


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


def masked_median(values: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
    """`np.median` of `values[mask]` (mean of the two middle values for an even count); 0 if
    the mask is empty. One sort of all the values, so use it per batch, not per dataset."""
    flat = jnp.where(mask, values, jnp.inf).reshape(-1)
    ordered = jnp.sort(flat)
    n = jnp.sum(mask, dtype=jnp.int32)
    low = ordered[jnp.maximum((n - 1) // 2, 0)]
    high = ordered[jnp.maximum(n // 2, 0)]
    return jnp.where(n > 0, (low + high) / 2.0, 0.0)


@flax.struct.dataclass
class NormalsMetrics(metrics.Metric):
    """Angular error statistics pooled over valid pixels, and lorenmt's batch averages.

    Pooled (MTL `eval_normals.py`): `mean`, `rmse`, `median` and `within_<t>` (% of pixels).
    The median comes from an int32 histogram of `NORMALS_NUM_BINS` bins of `NORMALS_BIN_WIDTH`
    degrees (exact to within one bin, 0.01 degree; see `histogram_median`).

    lorenmt (`MTAN:im2im_pred/utils.py:106-120`) computes mean, `np.median` and the fractions
    within each threshold per evaluation *batch* and averages them over batches:
    `mean_batch`, `median_batch`, `within_<t>_batch` (also in %). They depend on the batch
    size (2 in lorenmt); a batch with no valid pixel is not counted.
    """

    angle_sum: jnp.ndarray
    angle_sq_sum: jnp.ndarray
    histogram: jnp.ndarray
    within: jnp.ndarray
    count: jnp.ndarray
    batch_mean: jnp.ndarray
    batch_median: jnp.ndarray
    batch_within: jnp.ndarray
    num_batches: jnp.ndarray

    @classmethod
    def from_model_output(
        cls, prediction: jnp.ndarray, target: jnp.ndarray, mask: jnp.ndarray
    ) -> NormalsMetrics:
        """`prediction` `[B, H, W, 3]` (any length), `target` `[B, H, W, 3]`, `mask` `[B, H, W]`."""
        angle = angular_error_degrees(prediction, target)
        bins = jnp.clip(
            jnp.floor(angle / NORMALS_BIN_WIDTH).astype(jnp.int32), 0, NORMALS_NUM_BINS - 1
        )
        within = jnp.stack(
            [jnp.sum(mask & (angle < t), dtype=jnp.int32) for t in NORMALS_THRESHOLDS]
        )
        count = jnp.sum(mask, dtype=jnp.int32)
        angle_sum = jnp.sum(jnp.where(mask, angle, 0.0))
        return cls(
            angle_sum=angle_sum,
            angle_sq_sum=jnp.sum(jnp.where(mask, jnp.square(angle), 0.0)),
            histogram=masked_bincount(bins, mask, NORMALS_NUM_BINS),
            within=within,
            count=count,
            batch_mean=safe_divide(angle_sum, count),
            batch_median=masked_median(angle, mask),
            batch_within=safe_divide(within, count),
            num_batches=(count > 0).astype(jnp.int32),
        )

    @classmethod
    def empty(cls) -> NormalsMetrics:
        zero = jnp.zeros((), jnp.float32)
        izero = jnp.zeros((), jnp.int32)
        num = len(NORMALS_THRESHOLDS)
        return cls(
            angle_sum=zero,
            angle_sq_sum=zero,
            histogram=jnp.zeros((NORMALS_NUM_BINS,), jnp.int32),
            within=jnp.zeros((num,), jnp.int32),
            count=izero,
            batch_mean=zero,
            batch_median=zero,
            batch_within=jnp.zeros((num,), jnp.float32),
            num_batches=izero,
        )

    def merge(self, other: NormalsMetrics) -> NormalsMetrics:
        return jax.tree.map(jnp.add, self, other)

    def compute(self) -> dict[str, jnp.ndarray]:
        """Degrees for `mean`, `rmse`, `median`; percent of pixels for `within_<t>`."""
        result = {
            "mean": safe_divide(self.angle_sum, self.count),
            "rmse": jnp.sqrt(safe_divide(self.angle_sq_sum, self.count)),
            "median": histogram_median(self.histogram, NORMALS_BIN_WIDTH),
            "mean_batch": safe_divide(self.batch_mean, self.num_batches),
            "median_batch": safe_divide(self.batch_median, self.num_batches),
        }
        for i, threshold in enumerate(NORMALS_THRESHOLDS):
            result[f"within_{threshold:g}"] = 100.0 * safe_divide(self.within[i], self.count)
            result[f"within_{threshold:g}_batch"] = 100.0 * safe_divide(
                self.batch_within[i], self.num_batches
            )
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
