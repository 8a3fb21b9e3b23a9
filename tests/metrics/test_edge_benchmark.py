"""The native BSDS boundary benchmark on small drawn boundaries with known matches."""

import numpy as np
import pytest

from mtnets.metrics import edge_benchmark as eb

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
    benchmark = eb.EdgeBenchmark(max_dist=0.0075)
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
    benchmark = eb.EdgeBenchmark(max_dist=0.0075)
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
    a, b = eb.EdgeBenchmark(), eb.EdgeBenchmark()
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
