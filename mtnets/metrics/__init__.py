"""Evaluation metrics for the dense prediction tasks, as `clu.metrics.Metric`s.

Every metric holds sums and counts only, so `merge` is an elementwise addition: merging the
metrics of two halves of a set gives the metric of the whole set, whatever the batching, the
device sharding or the padding (a padded example has an all-False mask and adds zeros).
`from_model_output(prediction, target, mask)` takes the head output, the labels and the mask of
valid, non-padded pixels, like the losses in `mtnets.losses`; it is plain `jnp` and can run
inside `jax.jit` on globally sharded batches.

The definitions follow the MTL reference's evaluation (`MTL:evaluation/eval_*.py`); see each
class for the details and the few deliberate differences.
"""

from __future__ import annotations

from collections.abc import Mapping

from clu import metrics as clu_metrics

from mtnets.metrics.binary import SALIENCY_THRESHOLDS, EdgeMetrics, SaliencyMetrics
from mtnets.metrics.geometry import (
    NORMALS_BIN_WIDTH,
    DepthMetrics,
    NormalsMetrics,
    angular_error_degrees,
    histogram_median,
)
from mtnets.metrics.segmentation import SegmentationMetrics, confusion_matrix
from mtnets.tasks import Task

__all__ = [
    "NORMALS_BIN_WIDTH",
    "SALIENCY_THRESHOLDS",
    "DepthMetrics",
    "EdgeMetrics",
    "NormalsMetrics",
    "SaliencyMetrics",
    "SegmentationMetrics",
    "angular_error_degrees",
    "compute_all",
    "confusion_matrix",
    "histogram_median",
    "metric_for",
]


def metric_for(spec: Task) -> type[clu_metrics.Metric]:
    """The metric class of a task (`Task.metric`): semseg/human_parts ->
    `SegmentationMetrics`, depth -> `DepthMetrics`, normals -> `NormalsMetrics`, sal ->
    `SaliencyMetrics`, edge -> `EdgeMetrics`."""
    return spec.metric()


def compute_all(metrics: Mapping[str, clu_metrics.Metric]) -> dict[str, float]:
    """`{"<task>/<name>": float}` from `{task: metric}`, ready for JSON or TensorBoard."""
    flat: dict[str, float] = {}
    for task, metric in metrics.items():
        for name, value in metric.compute().items():
            flat[f"{task}/{name}"] = float(value)
    return flat
