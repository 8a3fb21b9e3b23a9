"""A full pass over the evaluation split: metrics of every task, and pictures of predictions."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence

import jax
import numpy as np
from absl import logging

from mtnets import metrics as metrics_lib
from mtnets import visualize
from mtnets.data import normalization as normalization_lib
from mtnets.metrics import delta_m as delta_m_lib
from mtnets.progress import Progress


def evaluate(
    eval_step,
    state,
    batches: Iterable,
    *,
    num_images: int = 4,
    host_metrics: Mapping | None = None,
    num_batches: int | None = None,
    progress_every_secs: float = 30.0,
):
    """Runs `eval_step` over `batches`; returns `({"<task>/<metric>": float}, samples)`.

    `samples` holds the first `num_images` examples of the first batch (host NumPy arrays):
    the batch fields and `predictions`, for pictures.

    `host_metrics` (`{task: empty scorer}`, see `Task.host_metric`) are also fed this process's
    examples and their measures join the results as `<task>/<name>` (counts summed over
    processes): for edges the BSDS benchmark's `odsF`, `oisF`, `AP` and `ods_threshold`. They
    are slow (host-side matching), so the train loop's periodic evaluation may leave them out.

    Progress (batches done of `num_batches`, images/s, ETA) is logged every
    `progress_every_secs` seconds by process 0.
    """
    merged, samples, progress = None, None, None
    host_metrics = dict(host_metrics or {})
    if jax.process_index() != 0:
        for scorer in host_metrics.values():
            scorer.progress = False  # one progress log, process 0's
    for done, batch in enumerate(batches, start=1):
        if progress is None:
            progress = Progress(
                "Evaluation",
                num_batches,
                items_per_unit=batch["image"].shape[0],
                item="images",
                every_secs=progress_every_secs,
            ).start()
        task_metrics, predictions = eval_step(state, batch)
        merged = (
            task_metrics
            if merged is None
            else jax.tree.map(lambda a, b: a.merge(b), merged, task_metrics, is_leaf=_is_metric)
        )
        if samples is None:
            samples = _first_examples({**batch, "predictions": predictions}, num_images)
        for task, scorer in host_metrics.items():
            scorer.add_outputs(
                _local_rows(predictions[task]), _local_rows(batch[task]), _local_rows(batch["mask"])
            )
        if progress.due(done):  # wait for the device only when a line reports the rate
            jax.block_until_ready(merged)
        progress(done)
    for scorer in host_metrics.values():
        scorer.finish()  # waits for the images its worker processes are scoring
    if merged is None:
        raise ValueError("The evaluation split produced no batch.")
    results = metrics_lib.compute_all(merged)
    for task, scorer in host_metrics.items():
        if scorer.num_images:
            total = scorer.summed_over_processes()
            results.update({f"{task}/{k}": v for k, v in total.compute().items()})
    return results, samples


def with_delta_m(
    results: Mapping[str, float],
    references: str | Mapping[str, str] | Sequence[str] | None,
    tasks: Sequence[str],
) -> dict[str, float]:
    """`results` plus `"delta_m"` (percent, docs/reference_notes.md#evaluation-and-delta_m) over
    the main `tasks` when
    single-task reference JSON files are given (`config.eval.delta_m_references`).

    If `results` lack a task's metric (e.g. `edge/odsF` in a periodic evaluation that skipped
    the edge benchmark), `delta_m` is left out and a warning is logged; a reference file that
    lacks it is an error.
    """
    results = dict(results)
    if not references:
        return results
    refs = delta_m_lib.load_references(
        dict(references) if hasattr(references, "items") else references
    )
    keys = [delta_m_lib.delta_m_metric(t)[0] for t in tasks]
    missing = [key for key in keys if key not in results]
    if missing:
        logging.warning("Delta_m left out: the results have no %s.", ", ".join(missing))
        return results
    results["delta_m"] = delta_m_lib.delta_m(results, refs, tasks)
    return results


def _local_rows(x) -> np.ndarray:
    """The rows of a batch-sharded global array that this process holds, in order (host)."""
    if not isinstance(x, jax.Array) or jax.process_count() == 1:
        return np.asarray(x)
    shards = {}
    for shard in x.addressable_shards:
        start = shard.index[0].start or 0
        shards.setdefault(start, shard.data)
    return np.concatenate([np.asarray(shards[k]) for k in sorted(shards)], axis=0)


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


def denormalize(images: np.ndarray, normalization: str) -> np.ndarray:
    """Batch images as float in [0, 1] for pictures, undoing `config.dataset.image_normalization`
    ("imagenet": x std + mean; "none": the images are shown as they are, clipped)."""
    images = normalization_lib.denormalize(np.asarray(images, np.float64), normalization)
    return np.clip(images, 0.0, 1.0)


def prediction_picture(
    samples: Mapping,
    tasks,
    normalization: str,
    class_names: Mapping[str, Sequence[str]] | None = None,
) -> np.ndarray:
    """uint8 `[H', W', 3]`: the titled figure of `visualize.prediction_figure` (per example the
    input, then ground truth, prediction and error map of every task), rendered. The inputs
    are shown de-normalised with `normalization`, the config's `dataset.image_normalization`
    (no default: ImageNet statistics would garble the pictures of an unnormalised config)."""
    images = denormalize(samples["image"], normalization)
    targets = {t: samples[t] for t in tasks}
    figure = visualize.prediction_figure(
        images, targets, samples["predictions"], tasks, class_names=class_names
    )
    return visualize.figure_to_array(figure)


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
