"""Depth: one channel in metres, 0 where unknown."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np

from mtnets.tasks.base import Task, squeeze_channel


@dataclasses.dataclass(frozen=True)
class DepthTask(Task):
    """A positive per-pixel value, 0 marking an unknown pixel.

    Masked L1 (both conventions), `DepthMetrics`, Delta_m on rmse; labels resampled with nearest
    neighbours and divided by the zoom factor (a zoom by s brings the scene s times closer);
    predictions resized linearly; a colour-mapped picture over the range target and
    prediction share."""

    channels: int | None = 1

    kind: ClassVar[str] = "depth"
    interpolation: ClassVar[str] = "nearest"
    prediction_resize: ClassVar[str] = "linear"
    delta_m: ClassVar[tuple[str, int]] = ("rmse", -1)
    error_title: ClassVar[str] = "abs. error (m)"
    error_unit: ClassVar[str] = " m"
    colour_bar: ClassVar[str] = "depth (m)"

    def check_values(self, value):
        import tensorflow as tf

        finite = tf.reduce_all(tf.math.is_finite(value))
        return finite & tf.reduce_all(value >= 0), "finite values >= 0"

    def zoomed(self, value, scale):
        import tensorflow as tf

        return value / tf.cast(scale, tf.float32)

    def valid_mask(self, target):
        return target > 0

    def losses(self, **options):
        from mtnets import losses

        return {"mtl": losses.depth_l1, "lorenmt": losses.depth_l1_lorenmt}

    def metric(self):
        from mtnets.metrics.geometry import DepthMetrics

        return DepthMetrics

    def label_from_prediction(self, prediction):
        return np.asarray(prediction, np.float64)[..., 0]

    def picture(self, array, *, vmin=None, vmax=None, **options):
        from mtnets import visualize

        return visualize.colorize_depth(array, vmin, vmax)

    def error_map(self, target, label):
        target = squeeze_channel(np.asarray(target))
        return np.where(target > 0, np.abs(np.asarray(label, np.float64) - target), np.nan)
