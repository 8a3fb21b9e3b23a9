"""The evaluation pass: the host-side edge benchmark and Delta_m join the device metrics."""

import logging

import jax.numpy as jnp
import numpy as np
import pytest

from mtnets.metrics import DepthMetrics
from mtnets.metrics.edge_benchmark import EdgeBenchmark
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
    results, _ = evaluate(_fake_eval_step, None, [batch], num_images=1, edge_benchmark=benchmark)
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
