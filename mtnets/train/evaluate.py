"""A full pass over the evaluation split: metrics of every task, and pictures of predictions."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping

import jax
import numpy as np

from mtnets import metrics as metrics_lib
from mtnets import visualize


def evaluate(eval_step, state, batches: Iterable, *, num_images: int = 4):
    """Runs `eval_step` over `batches`; returns `({"<task>/<metric>": float}, samples)`.

    `samples` holds the first `num_images` examples of the first batch (host NumPy arrays):
    the batch fields and `predictions`, for pictures.
    """
    merged, samples = None, None
    for batch in batches:
        task_metrics, predictions = eval_step(state, batch)
        merged = (
            task_metrics
            if merged is None
            else jax.tree.map(lambda a, b: a.merge(b), merged, task_metrics, is_leaf=_is_metric)
        )
        if samples is None:
            samples = _first_examples({**batch, "predictions": predictions}, num_images)
    if merged is None:
        raise ValueError("The evaluation split produced no batch.")
    return metrics_lib.compute_all(merged), samples


def write_results(workdir: str, step: int, results: Mapping[str, float]) -> str:
    """Writes `<workdir>/eval_<step>.json` and returns its path (process 0 only)."""
    path = os.path.join(workdir, f"eval_{step}.json")
    if jax.process_index() == 0:
        with open(path, "w") as f:
            json.dump(
                {"step": step, **{k: float(v) for k, v in results.items()}},
                f,
                indent=2,
                sort_keys=True,
            )
    return path


def prediction_picture(samples: Mapping, tasks, mean_rgb, std_rgb) -> np.ndarray:
    """uint8 `[H', W', 3]`: per example, the input then ground truth next to prediction."""
    images = np.clip(samples["image"] * np.asarray(std_rgb) + np.asarray(mean_rgb), 0, 1)
    targets = {t: samples[t] for t in tasks}
    return visualize.prediction_grid(images, targets, samples["predictions"], tasks)


def _first_examples(tree, count: int):
    """The first `count` rows of every (globally sharded) array, gathered to the host."""

    def take(x):
        x = (
            jax.experimental.multihost_utils.process_allgather(x, tiled=True)
            if jax.process_count() > 1
            else np.asarray(x)
        )
        return np.asarray(x[:count])

    return jax.tree.map(take, tree)


def _is_metric(x) -> bool:
    return hasattr(x, "merge") and hasattr(x, "compute")
