"""Binary maps (edges, saliency): one logit per pixel, labels in {0, 1}, no unknown pixels."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np

from mtnets.tasks.base import Task, squeeze_channel

_PROB_EPS = 1e-6  # probabilities are clipped to [eps, 1 - eps] before they become logits


@dataclasses.dataclass(frozen=True)
class BinaryTask(Task):
    """A logit per pixel. Balanced binary cross-entropy (the positive weight from `pos_weight`,
    the same loss under both conventions: lorenmt has no binary task); labels resampled with
    nearest neighbours; predictions resized as probabilities; a grey picture."""

    channels: int | None = 1

    kind: ClassVar[str] = "binary"
    interpolation: ClassVar[str] = "nearest"
    prediction_resize: ClassVar[str] = "linear"
    target_dtype: ClassVar[str] = "int32"
    error_title: ClassVar[str] = "|probability - label|"
    error_max: ClassVar[float] = 1.0

    def check_values(self, value):
        import tensorflow as tf

        return tf.reduce_all((value == 0) | (value == 1)), "{0, 1}"

    def pos_weight(self, **options) -> float | None:
        """The weight of positive pixels (negatives get 1 - w); None: the fraction of negative
        pixels in the batch."""
        return None

    def losses(self, **options):
        import functools

        from mtnets import losses

        loss = functools.partial(losses.balanced_bce, pos_weight=self.pos_weight(**options))
        return {"mtl": loss, "lorenmt": loss}

    def output(self, prediction):
        import jax

        return jax.nn.sigmoid(prediction)

    def from_output(self, value):
        import jax.numpy as jnp

        prob = jnp.clip(value, _PROB_EPS, 1.0 - _PROB_EPS)
        return jnp.log(prob) - jnp.log1p(-prob)

    def label_from_prediction(self, prediction):
        # exp(-|x|) form: a sigmoid that does not overflow for large negative logits.
        x = np.asarray(prediction, np.float64)[..., 0]
        e = np.exp(-np.abs(x))
        return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))

    def picture(self, array, **options):
        from mtnets import visualize

        return visualize.colorize_probability(array)

    def error_map(self, target, label):
        target = squeeze_channel(np.asarray(target))
        return np.abs(np.asarray(label, np.float64) - target)


@dataclasses.dataclass(frozen=True)
class EdgeTask(BinaryTask):
    """Boundaries: a fixed positive weight (`config.loss.edge_pos_weight`), `EdgeMetrics`;
    Delta_m uses the host edge benchmark's odsF."""

    delta_m: ClassVar[tuple[str, int]] = ("odsF", +1)
    delta_m_hint: ClassVar[str] = " (run the edge benchmark: config.eval.edge_benchmark)"

    def pos_weight(self, *, edge_pos_weight: float, **options) -> float:
        return edge_pos_weight

    def metric(self):
        from mtnets.metrics.binary import EdgeMetrics

        return EdgeMetrics

    def host_metric(self, config):
        """The BSDS benchmark (ODS/OIS/AP) at `config.eval.edge_max_dist`, or the dataset's
        tolerance when that is None."""
        from mtnets.metrics.edge_benchmark import DEFAULT_MAX_DIST, MAX_DIST, EdgeBenchmark

        max_dist = config.eval.edge_max_dist or MAX_DIST.get(config.dataset.name, DEFAULT_MAX_DIST)
        return EdgeBenchmark(max_dist=max_dist)


@dataclasses.dataclass(frozen=True)
class SaliencyTask(BinaryTask):
    """Saliency: the batch-adaptive positive weight (HED), `SaliencyMetrics`, Delta_m on mIoU."""

    delta_m: ClassVar[tuple[str, int]] = ("mIoU", +1)

    def metric(self):
        from mtnets.metrics.binary import SaliencyMetrics

        return SaliencyMetrics
