"""`Task`: everything the model, the losses, the metrics, the input pipeline and the pictures
need to know about one dense prediction task, on one object.

A task is a frozen dataclass (`name`, `channels`, `field`) whose class states the rules shared
by its kind (class attributes and methods); the built-in kinds are in the sibling modules and
a new task is a subclass (or an instance of an existing kind) passed to `register_task`.

The methods fall into three groups, each importing its framework only when called, so that
this package stays importable by the config layer (no JAX) and by the models, losses and
metrics (no TensorFlow):

- labels in the input pipeline (TensorFlow, `[H, W, C]` tensors): `decode`, `check_values`,
  `flipped`, `rotated`, `zoomed`, `project`, `to_batch`;
- training and evaluation (JAX, `[B, H, W, ...]` arrays): `valid_mask`, `loss_fn`, `metric`,
  `output` / `from_output` (what a resize of the predictions blends);
- pictures (NumPy): `picture`, `label_from_prediction`, `error_map`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:  # the config layer reads this package, and config time loads no JAX
    import jax
    import numpy as np

IGNORE_LABEL = 255

LossFn = Callable[[Any, Any, Any], Any]  # (prediction, target, mask) -> float32 scalar


@dataclasses.dataclass(frozen=True)
class Task:
    """One dense prediction task.

    Fields:
      name: the key of the task in configs, batches, model outputs and results.
      channels: the prediction channels of the model's head for it; None until the dataset
        decides (the class count of a classification task, see `on`).
      field: the stored feature of the dataset its label is decoded from (default: `name`).
        Two tasks may read one field (e.g. depth and an inverse depth).
    """

    name: str
    channels: int | None = None
    field: str = ""

    kind: ClassVar[str] = "task"
    # How a label is resampled by warps and resizes: "nearest" (values kept; a label is never
    # blended) or "smooth" (with the image: bicubic in the MTL recipes, bilinear in lorenmt's).
    interpolation: ClassVar[str] = "nearest"
    # How evaluation resizes a prediction back to the image's size: "nearest" or "linear".
    prediction_resize: ClassVar[str] = "linear"
    ignore_value: ClassVar[int | None] = None  # the label value that marks an unknown pixel
    fill: ClassVar[float] = 0  # the label outside an image padded to the evaluation canvas
    target_channels: ClassVar[int] = 1  # a batch holds [B, H, W] for 1, else [B, H, W, C]
    target_dtype: ClassVar[str] = "float32"
    # A map with no labelled pixel means "this image has no label for the task" (human parts
    # of an image without a person): the PASCAL recipe marks it ignore, and training on this
    # task alone skips such images, as the MTL reference does.
    unlabelled_when_empty: ClassVar[bool] = False
    # Delta_m: (metric name, +1 if higher is better), or None if the task takes no part.
    delta_m: ClassVar[tuple[str, int] | None] = None
    delta_m_hint: ClassVar[str] = ""  # appended to the error when that metric is missing
    # Pictures: the title over the error map, the unit of its mean, its colour bar's top (None:
    # the largest error shown), and the colour bar label of a value map drawn over a range
    # shared by target and prediction (None: coloured by `picture` alone).
    error_title: ClassVar[str] = "error"
    error_unit: ClassVar[str] = ""
    error_max: ClassVar[float | None] = None
    colour_bar: ClassVar[str | None] = None

    def __post_init__(self):
        if not self.field:
            object.__setattr__(self, "field", self.name)

    @property
    def is_classification(self) -> bool:
        return self.kind == "classification"

    def channels_on(self, dataset: str) -> int:
        """The head's channels on `dataset` (classification tasks: its class count)."""
        if self.channels is None:
            raise ValueError(f"Task {self.name!r} states no channels.")
        return self.channels

    def on(self, dataset: str) -> Task:
        """This task with its channels on `dataset`."""
        return dataclasses.replace(self, channels=self.channels_on(dataset))

    # -----------------------------------------------------------------------------------------
    # Labels in the input pipeline (TensorFlow).
    def decode(self, value):
        """The stored field -> the label `[H, W, C]` (a stored `[H, W]` map gets its channel)."""
        return value if value.shape.rank == 3 else value[..., None]

    def check_values(self, value) -> tuple[Any, str]:
        """(scalar bool tensor: every value of the label is allowed, words for what is)."""
        import tensorflow as tf

        return tf.reduce_all(tf.math.is_finite(value)), "finite values"

    def flipped(self, value):
        """The label of a left-right mirrored image, once its pixels are mirrored."""
        return value

    def rotated(self, value, angle_deg):
        """The label of an image turned by `angle_deg`, before its pixels are warped."""
        return value

    def zoomed(self, value, scale):
        """The label of an image zoomed in by `scale`, once its pixels are resampled."""
        return value

    def project(self, value):
        """The label made valid again after a smooth resampling blended it."""
        return value

    def to_batch(self, value):
        """`[H, W, C]` label -> the batch's `[H, W]` (one channel) or `[H, W, C]`, its dtype."""
        import tensorflow as tf

        if self.target_channels == 1:
            value = value[..., 0]
        return tf.cast(value, self.target_dtype)

    # -----------------------------------------------------------------------------------------
    # Training and evaluation (JAX).
    def valid_mask(self, target: jax.Array) -> jax.Array:
        """Boolean `[B, H, W]`: the pixels whose label takes part in losses and metrics."""
        import jax.numpy as jnp

        if self.ignore_value is not None:
            return target != self.ignore_value
        return jnp.ones(target.shape[:3], dtype=bool)

    def losses(self, **options) -> Mapping[str, LossFn]:
        """`{convention: loss}`; `options` are the loss settings of the config (e.g.
        `edge_pos_weight`), each task reads those it needs."""
        return {}

    def loss_fn(self, convention: str, **options) -> LossFn:
        """The loss `(prediction, target, mask) -> scalar` under `convention`."""
        losses = self.losses(**options)
        if convention not in losses:
            raise ValueError(f"No {convention!r} loss for task {self.name!r}.")
        return losses[convention]

    def metric(self):
        """The `clu.metrics.Metric` class of the task's evaluation."""
        raise ValueError(f"No metric for task {self.name!r} of kind {self.kind!r}.")

    def host_metric(self, config):
        """An empty scorer of whole images on the host for `config` (an experiment config), or
        None (the default: `metric` measures everything on device). Some measures, such as the
        BSDS edge benchmark, match pixels across an image and run as NumPy on the host; the
        evaluation feeds such a scorer and adds what it computes to the task's results.

        A scorer has `add_outputs(outputs, targets, valid)` (host arrays of a batch: the raw
        head outputs `[B, H, W, C]`, the labels, and `[B]` False for padding examples),
        `finish()`, `num_images`, `summed_over_processes()` (a scorer of every process's
        images) and `compute() -> {metric: float}`."""
        return None

    def output(self, prediction: jax.Array) -> jax.Array:
        """The head output as the reference reads it before resizing it (probabilities, unit
        vectors); class scores stay scores, as the nearest resize commutes with the argmax."""
        return prediction

    def from_output(self, value: jax.Array) -> jax.Array:
        """The inverse of `output`: what the losses and metrics take."""
        return value

    # -----------------------------------------------------------------------------------------
    # Pictures (NumPy).
    def label_from_prediction(self, prediction: np.ndarray) -> np.ndarray:
        """What `picture` takes, from a raw head output `[H, W, C]`."""
        raise ValueError(f"Task {self.name!r} has no picture.")

    def picture(self, array: np.ndarray, **options) -> np.ndarray:
        """uint8 `[H, W, 3]` of a target or of `label_from_prediction` of an output."""
        raise ValueError(f"Task {self.name!r} has no picture.")

    def error_map(self, target: np.ndarray, label: np.ndarray) -> np.ndarray:
        """float `[H, W]` error of `label` against `target`; NaN where the target is invalid."""
        raise ValueError(f"Task {self.name!r} has no error map.")


def squeeze_channel(array: np.ndarray) -> np.ndarray:
    """`[H, W, 1]` -> `[H, W]`; other shapes unchanged."""
    return array[..., 0] if array.ndim == 3 and array.shape[-1] == 1 else array
