"""Surface normals: three channels, a unit vector per pixel, all zero where unknown."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np

from mtnets.tasks.base import Task


@dataclasses.dataclass(frozen=True)
class NormalsTask(Task):
    """Unit normals (x right, y, z); predictions are unnormalised vectors.

    The one rule for reading a prediction is its L2 normalisation (`output`), which the losses,
    the evaluation resize and the reference comparisons share. Labels are resampled with the
    image (bicubic / bilinear) and re-normalised after a resize; a mirror negates x and a
    rotation turns (x, y) with the picture."""

    channels: int | None = 3

    kind: ClassVar[str] = "normals"
    interpolation: ClassVar[str] = "smooth"
    prediction_resize: ClassVar[str] = "linear"
    target_channels: ClassVar[int] = 3
    delta_m: ClassVar[tuple[str, int]] = ("mean", -1)
    error_title: ClassVar[str] = "angle error (deg)"
    error_unit: ClassVar[str] = " deg"

    def decode(self, value):
        """float normals as stored; uint8 ones (pascal_context_mt) are PNG codes
        c -> 2 c / 255 - 1, with (0, 0, 0) meaning invalid (-> all-zero normals)."""
        import tensorflow as tf

        if value.dtype != tf.uint8:
            return value
        valid = tf.reduce_any(value != 0, axis=-1, keepdims=True)
        decoded = 2.0 * tf.cast(value, tf.float32) / 255.0 - 1.0
        return tf.where(valid, decoded, 0.0)

    def flipped(self, value):
        import tensorflow as tf

        return value * tf.constant([-1.0, 1.0, 1.0], tf.float32)

    def rotated(self, value, angle_deg):
        from mtnets.data import augment

        return augment.rotate_normals(value, angle_deg)

    def project(self, value):
        from mtnets.data import augment

        return augment.renormalize(value)

    def valid_mask(self, target):
        import jax.numpy as jnp

        return jnp.any(target != 0, axis=-1)

    def losses(self, **options):
        from mtnets import losses

        return {"mtl": losses.normals_l1, "lorenmt": losses.normals_cosine}

    def metric(self):
        from mtnets.metrics.geometry import NormalsMetrics

        return NormalsMetrics

    def output(self, prediction):
        from mtnets.losses import l2_normalize

        return l2_normalize(prediction)

    def label_from_prediction(self, prediction):
        prediction = np.asarray(prediction, np.float64)
        norm = np.linalg.norm(prediction, axis=-1, keepdims=True)
        return prediction / np.maximum(norm, 1e-12)

    def picture(self, array, **options):
        from mtnets import visualize

        return visualize.colorize_normals(array)

    def error_map(self, target, label):
        target = np.asarray(target)
        valid = np.any(target != 0, axis=-1)
        unit = target / np.maximum(np.linalg.norm(target, axis=-1, keepdims=True), 1e-12)
        cosine = np.clip(np.sum(unit * np.asarray(label, np.float64), axis=-1), -1.0, 1.0)
        return np.where(valid, np.degrees(np.arccos(cosine)), np.nan)
