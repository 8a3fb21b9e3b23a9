"""The native BSDS boundary benchmark: small drawn boundaries with known matches, and the fast
implementation against the frozen pre-optimisation one (edge_reference_impl.py) on synthetic
soft edge maps (edge_inputs.py)."""

import logging

import numpy as np
import pytest

from mtnets.metrics import edge_benchmark as eb
from tests.metrics import edge_inputs
from tests.metrics import edge_reference_impl as reference

SIZE = 200  # diagonal 282.8 px: the PASCAL tolerance 0.0075 is 2.12 px


def _line(col, rows=(20, 180), size=SIZE):
    image = np.zeros((size, size), bool)
    image[rows[0] : rows[1], col] = True
    return image


def test_thinning_a_thick_bar_leaves_its_middle_line():
    bar = np.zeros((9, 12), bool)
    bar[3:6, 2:10] = True
    thinned = eb.thin(bar)
    assert thinned[[3, 5]].sum() == 0 and thinned[4].sum() >= 5  # the middle row only
    assert np.array_equal(eb.thin(thinned), thinned)  # idempotent
    line = _line(7, size=20, rows=(3, 15))
    assert np.array_equal(eb.thin(line), line)  # a one-pixel line, end points included, stays


def test_one_to_one_matching():
    gt = np.zeros((10, 10), bool)
    gt[5, 5] = True
    pred = np.zeros((10, 10), bool)
    pred[5, 4] = pred[5, 6] = True  # both within 1.5 px of the single GT pixel
    assert eb.match_count(pred, gt, 1.5) == 1
    gt[5, 7] = True  # now each predicted pixel has its own partner (6 -> 7, 4 -> 5)
    assert eb.match_count(pred, gt, 1.5) == 2
    assert eb.match_count(pred, gt, 0.5) == 0  # nothing at distance 0


@pytest.mark.parametrize("shift, matched", [(0, True), (2, True), (3, False)])
def test_shifted_boundary_inside_and_outside_the_tolerance(shift, matched):
    gt = _line(100)
    prob = _line(100 + shift).astype(np.float32) * 0.8
    counts = eb.image_counts(prob, gt, max_dist=0.0075)
    n = gt.sum()
    at = lambda t: counts[int(round(t * 100)) - 1]  # noqa: E731
    expected = (n if matched else 0, n, n if matched else 0, n)
    np.testing.assert_array_equal(at(0.5), expected)
    np.testing.assert_array_equal(at(0.85), (0, n, 0, 0))  # above the prediction: empty
    benchmark = eb.EdgeBenchmark(max_dist=0.0075, workers=1)
    benchmark.add_image(prob, gt)
    result = benchmark.compute()
    assert result["odsF"] == pytest.approx(1.0 if matched else 0.0)
    assert result["oisF"] == pytest.approx(1.0 if matched else 0.0)


def test_ods_ois_ap_on_two_images():
    # Image A: the boundary found one pixel off, with probability 0.35.
    gt_a, prob_a = _line(100), _line(101).astype(np.float32) * 0.35
    # Image B: the boundary exact at 0.95 and a false boundary (8 px away... far) at 0.55.
    gt_b = _line(50)
    prob_b = _line(50).astype(np.float32) * 0.95
    prob_b[_line(150, rows=(20, 100))] = 0.55
    benchmark = eb.EdgeBenchmark(max_dist=0.0075, workers=1)
    benchmark.add_batch(np.stack([prob_a, prob_b]), np.stack([gt_a, gt_b]), np.array([1, 1]))
    # A padded example is skipped.
    benchmark.add_batch(prob_b[None], gt_a[None], np.array([0]))
    assert benchmark.num_images == 2
    n, false = 160, 80
    # Totals per threshold (cntR, sumR, cntP, sumP) by hand.
    t = eb.EDGE_THRESHOLDS
    cnt_r = np.where(t <= 0.35, 2 * n, np.where(t <= 0.95, n, 0))
    sum_p = np.where(
        t <= 0.35, 2 * n + false, np.where(t <= 0.55, n + false, np.where(t <= 0.95, n, 0))
    )
    np.testing.assert_array_equal(benchmark.totals[:, 0], cnt_r)
    np.testing.assert_array_equal(benchmark.totals[:, 1], 2 * n)
    np.testing.assert_array_equal(benchmark.totals[:, 2], cnt_r)
    np.testing.assert_array_equal(benchmark.totals[:, 3], sum_p)
    result = benchmark.compute()
    # ODS: R = 1, P = 320 / 400 at t <= 0.35: F = 2 * 0.8 / 1.8; the interpolated segments
    # between thresholds never beat it (R and P both fall after 0.35).
    assert result["odsF"] == pytest.approx(1.6 / 1.8)
    assert result["ods_threshold"] == pytest.approx(0.01)
    # OIS: each image at its own best threshold is perfect.
    assert result["oisF"] == pytest.approx(1.0)
    # AP: the PR points (R, P) = (1, 0.8), (0.5, 160/240 first, then 1), (0, 0); BSDS keeps
    # the first point of each recall and interpolates at R = 0, 0.01, ..., 1.
    grid = np.linspace(0, 1, 101)
    precision = np.interp(grid, [0.0, 0.5, 1.0], [0.0, 160 / 240, 0.8])
    assert result["AP"] == pytest.approx(precision.sum() * 0.01)


def test_merge_adds_counts():
    a, b = eb.EdgeBenchmark(workers=1), eb.EdgeBenchmark(workers=1)
    a.add_image(_line(100).astype(np.float32) * 0.5, _line(100))
    b.add_image(_line(60).astype(np.float32) * 0.7, _line(61))
    both = a.merge(b)
    np.testing.assert_array_equal(both.totals, a.totals + b.totals)
    assert both.num_images == 2


def test_match_count_is_the_maximum_matching():
    """Against a dense assignment over all pairs within the radius (SciPy's Hungarian)."""
    from scipy.optimize import linear_sum_assignment

    rng = np.random.default_rng(0)
    for _ in range(5):
        pred, gt = rng.random((2, 30, 30)) < 0.08
        p, g = np.argwhere(pred), np.argwhere(gt)
        near = np.hypot(*(p[:, None] - g[None]).transpose(2, 0, 1)) <= 2.5
        r, c = linear_sum_assignment(near, maximize=True)
        assert eb.match_count(pred, gt, 2.5) == near[r, c].sum()


# The inputs the fast implementation must score exactly as the frozen one: each kind at
# 128x160 with all 99 thresholds, and one 321x481 map at a few thresholds (the frozen code
# takes several seconds per image at that size).
SMALL = [(seed, kind) for seed, kind in enumerate(edge_inputs.KINDS)]
FEW_THRESHOLDS = np.array([0.02, 0.1, 0.25, 0.4, 0.55, 0.7])


@pytest.mark.parametrize("seed, kind", SMALL)
def test_counts_and_thinning_equal_the_frozen_implementation(seed, kind):
    prob, gt = edge_inputs.edge_pair(seed, (128, 160), kind)
    counts = eb.image_counts(prob, gt, 0.0075)
    np.testing.assert_array_equal(counts, reference.image_counts(prob, gt, 0.0075))
    assert len(np.unique(counts[:, 3])) > 20  # many distinct thinned maps along the thresholds
    stack = prob[None] >= FEW_THRESHOLDS[:, None, None]
    thinned = eb.thin_planes(stack)
    for plane, t in zip(stack, thinned, strict=True):
        expected = reference.thin(plane)
        np.testing.assert_array_equal(t, expected)
        np.testing.assert_array_equal(eb.thin(plane), expected)


def test_large_map_equals_the_frozen_implementation():
    prob, gt = edge_inputs.edge_pair(7, (321, 481), "clutter")
    counts = eb.image_counts(prob, gt, 0.011, FEW_THRESHOLDS)
    expected = reference.image_counts(prob, gt, 0.011, FEW_THRESHOLDS)
    np.testing.assert_array_equal(counts, expected)
    thinned = eb.thin_planes(prob[None] >= FEW_THRESHOLDS[:, None, None])
    np.testing.assert_array_equal(thinned.sum(axis=(1, 2)), expected[:, 3])
    np.testing.assert_array_equal(thinned[2], reference.thin(prob >= FEW_THRESHOLDS[2]))


def test_unordered_thresholds_and_a_map_without_foreground():
    prob, gt = edge_inputs.edge_pair(3, (40, 56), "noise")
    thresholds = np.array([0.5, 0.2, 0.2, 0.9, 1.5, 0.5])
    np.testing.assert_array_equal(
        eb.image_counts(prob, gt, 0.02, thresholds),
        reference.image_counts(prob, gt, 0.02, thresholds),
    )
    empty_gt = np.zeros_like(gt)
    np.testing.assert_array_equal(
        eb.image_counts(prob, empty_gt, 0.02, thresholds),
        reference.image_counts(prob, empty_gt, 0.02, thresholds),
    )


def _benchmark(cls, images, **kwargs):
    benchmark = cls(max_dist=0.0075, **kwargs)
    for prob, gt in images:
        benchmark.add_image(prob, gt)
    return benchmark


def test_ods_ois_ap_equal_the_frozen_implementation_in_worker_processes(caplog, monkeypatch):
    images = [edge_inputs.edge_pair(seed, (64, 80), kind) for seed, kind in SMALL]
    expected = _benchmark(reference.EdgeBenchmark, images)
    serial = _benchmark(eb.EdgeBenchmark, images, workers=1)
    monkeypatch.setattr(eb, "PROGRESS_SECS", 0.0)
    with caplog.at_level(logging.INFO):
        parallel = _benchmark(eb.EdgeBenchmark, images, workers=2).finish()
    for benchmark in (serial, parallel):
        np.testing.assert_array_equal(benchmark.totals, expected.totals)
        np.testing.assert_array_equal(benchmark.best, expected.best)
        assert benchmark.num_images == expected.num_images
        assert benchmark.compute() == expected.compute()
    assert "images scored (2 workers)" in caplog.text and "ETA" in caplog.text
    assert f"Edge benchmark: {len(images)} images scored in" in caplog.text
    assert parallel.merge(serial).num_images == 2 * len(images)


def test_bad_input_and_a_failing_worker():
    with pytest.raises(ValueError, match=r"prob has shape \(4, 5\) and gt \(4, 6\)"):
        eb.EdgeBenchmark(workers=2).add_image(np.zeros((4, 5)), np.zeros((4, 6)))
    with pytest.raises(ValueError, match="workers=0"):
        eb.EdgeBenchmark(workers=0).add_image(np.zeros((4, 5)), np.zeros((4, 5)))
    benchmark = eb.EdgeBenchmark(max_dist=float("nan"), workers=2)
    benchmark.add_image(np.ones((8, 8)), np.eye(8))
    with pytest.raises(RuntimeError, match=r"(?s)worker failed.*max_dist=nan"):
        benchmark.finish()
