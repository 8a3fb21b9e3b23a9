"""The evaluation pass: the tasks' host-side measures (the edge benchmark) and Delta_m join
the device metrics."""

import logging

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from mtnets.metrics import DepthMetrics
from mtnets.metrics.edge_benchmark import MAX_DIST, EdgeBenchmark
from mtnets.tasks import TASKS, get_task
from mtnets.train.evaluate import evaluate


def _fake_eval_step(state, batch):
    """Perfect edge logits on the real examples, and a depth metric."""
    logits = np.where(batch["edge"][..., None] > 0, 5.0, -5.0).astype(np.float32)
    depth = DepthMetrics.from_model_output(
        jnp.asarray(batch["depth"])[..., None],
        jnp.asarray(batch["depth"]),
        jnp.ones((2, 40, 40), bool),
    )
    return {"depth": depth}, {"edge": logits}


def test_edge_benchmark_runs_in_evaluate_and_skips_padding():
    edge = np.zeros((2, 40, 40), np.int32)
    edge[:, 5:35, 20] = 1
    batch = {
        "image": np.zeros((2, 40, 40, 3), np.float32),
        "edge": edge,
        "depth": np.ones((2, 40, 40), np.float32),
        "mask": np.array([True, False]),
    }
    benchmark = EdgeBenchmark(max_dist=0.0075)
    results, _ = evaluate(
        _fake_eval_step, None, [batch], num_images=1, host_metrics={"edge": benchmark}
    )
    assert benchmark.num_images == 1  # the padding example is not scored
    assert results["edge/odsF"] == pytest.approx(1.0)
    assert results["edge/oisF"] == pytest.approx(1.0)
    assert results["depth/rmse"] == pytest.approx(0.0)
    results, _ = evaluate(_fake_eval_step, None, [batch], num_images=1)
    assert "edge/odsF" not in results


def test_evaluate_reports_progress(caplog):
    batch = {
        "image": np.zeros((2, 40, 40, 3), np.float32),
        "edge": np.zeros((2, 40, 40), np.int32),
        "depth": np.ones((2, 40, 40), np.float32),
        "mask": np.array([True, True]),
    }
    with caplog.at_level(logging.INFO):
        evaluate(_fake_eval_step, None, [batch] * 3, num_images=1, num_batches=3)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Evaluation:")]
    assert lines[0] == "Evaluation: 0/3 batches (0%)"
    assert lines[-1].startswith("Evaluation: 3/3 batches (100%), ")
    assert "images/s, took " in lines[-1]


def test_only_the_edge_task_measures_on_the_host_at_the_datasets_tolerance():
    config = ml_collections.ConfigDict(
        {"dataset": {"name": "nyud_mt"}, "eval": {"edge_max_dist": 0.0}}
    )
    scorer = get_task("edge").host_metric(config)
    assert isinstance(scorer, EdgeBenchmark) and scorer.max_dist == MAX_DIST["nyud_mt"]
    config.eval.edge_max_dist = 0.02
    assert get_task("edge").host_metric(config).max_dist == 0.02
    others = [name for name in TASKS if name != "edge"]
    assert [get_task(name).host_metric(config) for name in others] == [None] * len(others)


def test_edge_outputs_are_scored_as_their_sigmoid():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 24, 24, 1)) * 4
    gts = np.zeros((2, 24, 24), np.int32)
    gts[:, 4:20, 12] = 1
    from_outputs, from_probabilities = EdgeBenchmark(workers=1), EdgeBenchmark(workers=1)
    from_outputs.add_outputs(logits, gts)
    from_probabilities.add_batch(1.0 / (1.0 + np.exp(-logits[..., 0])), gts)
    np.testing.assert_array_equal(from_outputs.totals, from_probabilities.totals)
    np.testing.assert_array_equal(from_outputs.best, from_probabilities.best)
