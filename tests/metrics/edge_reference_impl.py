"""FROZEN: the edge benchmark as it was before the speed-up of issue 14 (commit e7708ed).

`mtnets/metrics/edge_benchmark.py` at e7708ed, copied unchanged below this docstring except for
this paragraph. Do not edit or optimise it: tests/metrics/test_edge_benchmark.py and
benchmarks/edge_benchmark.py use it as the slow reference that the fast implementation must
reproduce exactly (same thinned images, same counts per image and threshold).

Original module docstring:

The BSDS/SEISM boundary benchmark (ODS-F, OIS-F, AP) in NumPy/SciPy, without MATLAB.

The MTL reference scores edges by rsyncing PNGs into SEISM and running MATLAB
(`MTL:evaluation/eval_edge.py:43-147`, 99 thresholds 0.01..0.99, measure "fb"); SEISM's
boundary measure is the BSDS benchmark's (`evaluation_bdry_image.m`, `collect_eval_bdry.m`).
This module computes the same quantities on the host:

1. For each threshold t in 0.01..0.99 the prediction `prob >= t` is thinned to one-pixel-wide
   curves (MATLAB `bwmorph(.., 'thin', inf)`, the two-subiteration algorithm of Lam, Lee and
   Suen 1992, implemented with lookup tables over 3x3 neighbourhoods).
2. Thinned pixels are matched one-to-one to ground-truth boundary pixels at Euclidean distance
   <= maxDist * image diagonal (0.0075 for PASCAL, 0.011 for NYUD in later work; the BSDS
   default is 0.0075). BSDS `correspondPixels` solves a min-cost assignment whose outlier cost
   (100 * maxDist) makes it match as many pixels as it can; only the *number* of matches enters
   the counts, so we compute a maximum-cardinality bipartite matching over all pairs within
   the tolerance (as a min-cost full matching with outlier nodes, see `_maximum_matching`).
   BSDS approximates its graph by the 6 nearest candidates per pixel; we use all candidates,
   so we can find a few more matches than BSDS in very dense clutter, never fewer.
3. Per image and threshold: `cntR` = matched GT pixels, `sumR` = GT pixels, `cntP` = matched
   predicted pixels, `sumP` = predicted (thinned) pixels.
4. ODS: the counts summed over the set per threshold, R = cntR / sumR, P = cntP / sumP,
   F = 2PR / (P + R), maximised along the curve linearly interpolated between consecutive
   thresholds (100 steps, BSDS `maxF`). OIS: per image the threshold of best F, its counts
   summed over images, then F. AP: precision interpolated at recall 0, 0.01, ..., 1 over the
   range of the curve's recall (0 outside), summed times 0.01 (BSDS `collect_eval_bdry.m`).

Differences from the reference: predictions are the float sigmoid, not the 8-bit PNG; the
accumulator holds sums only (per threshold totals for ODS/AP and the per-image-best totals for
OIS), so it merges across batches and processes by addition.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

# `MTL:evaluation/eval_edge.py:72-76`: 99 thresholds (SEISM `thresh = 0.01:0.01:0.99`).
EDGE_THRESHOLDS = np.linspace(0.01, 0.99, 99)
# Maximum match distance, as a fraction of the image diagonal.
MAX_DIST = {"pascal_context_mt": 0.0075, "nyud_mt": 0.011}
DEFAULT_MAX_DIST = 0.0075

# Neighbourhood codes: bit k is neighbour x_{k+1} of Lam, Lee and Suen, counter-clockwise from
# the east: x1 E, x2 NE, x3 N, x4 NW, x5 W, x6 SW, x7 S, x8 SE (rows grow downwards).


def _thinning_tables() -> tuple[np.ndarray, np.ndarray]:
    """bool `[256]` deletion tables of the two subiterations (conditions G1, G2 and G3 / G3')."""
    first = np.zeros(256, bool)
    second = np.zeros(256, bool)
    for code in range(256):
        x = [(code >> k) & 1 for k in range(8)]  # x[0] = x1, ..., x[7] = x8
        x9 = x + [x[0]]
        # G1: the crossing number X_H(p) = 1.
        crossing = sum(1 for i in range(4) if not x9[2 * i] and (x9[2 * i + 1] or x9[2 * i + 2]))
        # G2: 2 <= min(n1, n2) <= 3.
        n1 = sum(1 for k in range(4) if x9[2 * k] or x9[2 * k + 1])
        n2 = sum(1 for k in range(4) if x9[2 * k + 1] or x9[2 * k + 2])
        g12 = crossing == 1 and 2 <= min(n1, n2) <= 3
        x1, x2, x3, x4, x5, x6, x7, x8 = x
        # G3: (x2 | x3 | !x8) & x1 == 0; G3': (x6 | x7 | !x4) & x5 == 0.
        first[code] = g12 and not ((x2 or x3 or not x8) and x1)
        second[code] = g12 and not ((x6 or x7 or not x4) and x5)
    return first, second


_THIN_FIRST, _THIN_SECOND = _thinning_tables()


def thin(binary: np.ndarray) -> np.ndarray:
    """Thins a bool `[H, W]` image to one-pixel-wide curves (MATLAB `bwmorph(b,'thin',inf)`).

    Alternates the two parallel subiterations until a full iteration deletes nothing; outside
    the image counts as background. Only border pixels (a background 8-neighbour) can satisfy
    G1, so each subiteration looks at the current border only: the cost is proportional to the
    foreground area, not to (image area x number of iterations).
    """
    padded = np.pad(np.asarray(binary, dtype=bool), 1).astype(np.uint8)
    width = padded.shape[1]
    flat = padded.reshape(-1)
    # Flat offsets of x1..x8 (E, NE, N, NW, W, SW, S, SE).
    offsets = np.array([1, -width + 1, -width, -width - 1, -1, width - 1, width, width + 1])
    bits = (1 << np.arange(8)).astype(np.int32)
    foreground = np.flatnonzero(flat)
    candidates = foreground[(flat[foreground[:, None] + offsets] == 0).any(axis=1)]
    while candidates.size:
        deleted_any = False
        for table in (_THIN_FIRST, _THIN_SECOND):
            codes = flat[candidates[:, None] + offsets].astype(np.int32) @ bits
            deleted = candidates[table[codes]]
            if deleted.size == 0:
                continue
            deleted_any = True
            flat[deleted] = 0
            neighbours = (deleted[:, None] + offsets).reshape(-1)
            neighbours = neighbours[flat[neighbours] == 1]
            survivors = candidates[flat[candidates] == 1]
            candidates = np.unique(np.concatenate([survivors, neighbours]))
        if not deleted_any:
            break
    return padded[1:-1, 1:-1].astype(bool)


def _offsets(radius: float) -> np.ndarray:
    """int `[K, 2]` offsets (dy, dx) with dy^2 + dx^2 <= radius^2."""
    r = int(np.floor(radius))
    dy, dx = np.mgrid[-r : r + 1, -r : r + 1]
    keep = dy**2 + dx**2 <= radius**2 + 1e-9
    return np.stack([dy[keep], dx[keep]], axis=-1)


def match_count(pred: np.ndarray, gt: np.ndarray, radius: float) -> int:
    """The size of a maximum one-to-one matching between the True pixels of `pred` and `gt`
    (bool `[H, W]`) where a pair may match if their Euclidean distance is <= `radius` pixels."""
    pred_yx = np.argwhere(pred)
    if len(pred_yx) == 0 or not gt.any():
        return 0
    height, width = gt.shape
    gt_index = np.full(gt.shape, -1, np.int64)
    gt_index[gt] = np.arange(int(gt.sum()))
    rows, cols = [], []
    for dy, dx in _offsets(radius):
        y, x = pred_yx[:, 0] + dy, pred_yx[:, 1] + dx
        inside = (y >= 0) & (y < height) & (x >= 0) & (x < width)
        idx = np.where(inside, gt_index[np.clip(y, 0, height - 1), np.clip(x, 0, width - 1)], -1)
        hit = idx >= 0
        rows.append(np.nonzero(hit)[0])
        cols.append(idx[hit])
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    if len(rows) == 0:
        return 0
    return _maximum_matching(rows, cols)


def _maximum_matching(rows: np.ndarray, cols: np.ndarray) -> int:
    """Size of a maximum matching of the bipartite graph with edges `(rows[e], cols[e])`.

    A min-cost *full* matching (LAPJVsp, `scipy.sparse.csgraph.min_weight_full_bipartite_
    matching`) on the graph extended as in BSDS `correspondPixels` with an outlier node per
    pixel: left = predicted pixels + one outlier per GT pixel, right = GT pixels + one outlier
    per predicted pixel; pixel-outlier edges cost `c`, real edges 1, and outlier-outlier edges
    mirroring each real edge 1, so a full matching always exists. With k real matches the cost
    is 2k + c (n_pred + n_gt - 2k), decreasing in k for c > 1: the optimum has the maximum
    number of matches. (scipy's Hopcroft-Karp gives the same counts but ran 100x slower on
    thinned boundary maps.)
    """
    _, left = np.unique(rows, return_inverse=True)
    _, right = np.unique(cols, return_inverse=True)
    n_left, n_right, n_edges = left.max() + 1, right.max() + 1, len(left)
    outlier_cost = 100.0
    src = np.concatenate([left, np.arange(n_left), n_left + np.arange(n_right), n_left + right])
    dst = np.concatenate([right, n_right + np.arange(n_left), np.arange(n_right), n_right + left])
    cost = np.concatenate(
        [np.ones(n_edges), np.full(n_left + n_right, outlier_cost), np.ones(n_edges)]
    )
    size = n_left + n_right
    graph = sparse.csr_matrix((cost, (src, dst)), shape=(size, size))
    row_ind, col_ind = csgraph.min_weight_full_bipartite_matching(graph)
    real = (row_ind < n_left) & (col_ind < n_right)
    return int(np.sum(real))


def image_counts(
    prob: np.ndarray,
    gt: np.ndarray,
    max_dist: float = DEFAULT_MAX_DIST,
    thresholds: np.ndarray = EDGE_THRESHOLDS,
) -> np.ndarray:
    """int64 `[T, 4]` (cntR, sumR, cntP, sumP) of one image at every threshold.

    Args:
      prob: `[H, W]` edge probability in [0, 1].
      gt: `[H, W]` ground-truth boundary map (non-zero = boundary).
      max_dist: the tolerance as a fraction of the image diagonal.
    """
    gt = np.asarray(gt) > 0
    radius = max_dist * float(np.hypot(*gt.shape))
    counts = np.zeros((len(thresholds), 4), np.int64)
    sum_r = int(gt.sum())
    previous = None
    for i, t in enumerate(thresholds):
        binary = prob >= t
        if previous is not None and np.array_equal(binary, previous[0]):
            counts[i] = previous[1]
            continue
        thinned = thin(binary)
        matched = match_count(thinned, gt, radius)
        counts[i] = (matched, sum_r, matched, int(thinned.sum()))
        previous = (binary, counts[i].copy())
    return counts


def _fmeasure(r: np.ndarray, p: np.ndarray) -> np.ndarray:
    """2PR / (P + R), 0 where P + R = 0 (BSDS `fmeasure`)."""
    r, p = np.asarray(r, np.float64), np.asarray(p, np.float64)
    total = p + r
    return np.where(total > 0, 2 * p * r / np.where(total > 0, total, 1.0), 0.0)


def _ratio(count: np.ndarray, total: np.ndarray) -> np.ndarray:
    """count / total, and 0 where total is 0 (BSDS `cnt ./ (sum + (sum==0))`)."""
    total = np.asarray(total, np.float64)
    return np.asarray(count, np.float64) / np.where(total == 0, 1.0, total)


def best_interpolated_f(thresholds, recall, precision) -> tuple[float, float, float, float]:
    """BSDS `maxF`: the best (F, threshold, R, P) along the curve linearly interpolated between
    consecutive thresholds in 100 steps (`linspace(0, 1)`)."""
    best = (float(_fmeasure(recall[0], precision[0])), thresholds[0], recall[0], precision[0])
    d = np.linspace(0.0, 1.0, 100)
    for i in range(1, len(thresholds)):
        t = thresholds[i] * d + thresholds[i - 1] * (1 - d)
        r = recall[i] * d + recall[i - 1] * (1 - d)
        p = precision[i] * d + precision[i - 1] * (1 - d)
        f = _fmeasure(r, p)
        k = int(np.argmax(f))
        if f[k] > best[0]:
            best = (float(f[k]), float(t[k]), float(r[k]), float(p[k]))
    return best


def average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """BSDS AP: precision interpolated at recall 0:0.01:1 (0 outside the curve), times 0.01."""
    recall_u, first = np.unique(recall, return_index=True)
    if len(recall_u) < 2:
        return 0.0
    grid = np.linspace(0.0, 1.0, 101)
    interp = np.interp(grid, recall_u, np.asarray(precision)[first])
    interp[(grid < recall_u[0]) | (grid > recall_u[-1])] = 0.0
    return float(np.sum(interp) * 0.01)


@dataclasses.dataclass
class EdgeBenchmark:
    """Host-side accumulator of the boundary benchmark; merges by summing its arrays.

    Attributes:
      max_dist: tolerance as a fraction of the image diagonal.
      totals: int64 `[T, 4]` (cntR, sumR, cntP, sumP) summed over images (ODS, AP).
      best: int64 `[4]` the counts at each image's best threshold, summed (OIS).
      num_images: images added.
    """

    max_dist: float = DEFAULT_MAX_DIST
    totals: np.ndarray = dataclasses.field(
        default_factory=lambda: np.zeros((len(EDGE_THRESHOLDS), 4), np.int64)
    )
    best: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(4, np.int64))
    num_images: int = 0

    def add_image(self, prob: np.ndarray, gt: np.ndarray) -> None:
        """Adds one image: `prob` `[H, W]` in [0, 1], `gt` `[H, W]` boundary map."""
        counts = image_counts(np.asarray(prob, np.float32), gt, self.max_dist)
        self.totals += counts
        f = _fmeasure(_ratio(counts[:, 0], counts[:, 1]), _ratio(counts[:, 2], counts[:, 3]))
        self.best += counts[int(np.argmax(f))]  # the first best threshold, as MATLAB's max
        self.num_images += 1

    def add_batch(self, probs: np.ndarray, gts: np.ndarray, valid: np.ndarray | None = None):
        """Adds the images of `probs` `[B, H, W]` / `gts` `[B, H, W]` whose `valid` `[B]` holds
        (padding examples are skipped)."""
        for n in range(len(probs)):
            if valid is None or bool(valid[n]):
                self.add_image(probs[n], gts[n])

    def merge(self, other: EdgeBenchmark) -> EdgeBenchmark:
        return EdgeBenchmark(
            self.max_dist,
            self.totals + other.totals,
            self.best + other.best,
            self.num_images + other.num_images,
        )

    def compute(self) -> dict[str, float]:
        """`odsF`, `oisF`, `AP` (fractions) and the ODS threshold `ods_threshold`."""
        recall = _ratio(self.totals[:, 0], self.totals[:, 1])
        precision = _ratio(self.totals[:, 2], self.totals[:, 3])
        ods_f, ods_t, _, _ = best_interpolated_f(EDGE_THRESHOLDS, recall, precision)
        ois_f = float(
            _fmeasure(_ratio(self.best[0], self.best[1]), _ratio(self.best[2], self.best[3]))
        )
        return {
            "odsF": ods_f,
            "oisF": ois_f,
            "AP": average_precision(recall, precision),
            "ods_threshold": float(ods_t),
        }
