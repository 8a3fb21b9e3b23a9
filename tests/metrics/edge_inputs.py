"""Seeded synthetic inputs for the edge benchmark: soft edge maps and their GT boundaries.

Shared by tests/metrics/test_edge_benchmark.py and benchmarks/edge_benchmark.py. Three kinds of
prediction, from easy to hard for the benchmark:

* `scene`: blurred ridges along a slightly displaced copy of the GT boundaries, of varying
  strength, over a weak background, as a trained network's sigmoid looks;
* `clutter`: the same plus strong texture edges (the ridges of smooth noise), so mid
  thresholds hold many false curves;
* `noise`: mostly smooth plus white noise: the low thresholds cover nearly the whole image
  (the slowest case for thinning and matching).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

KINDS = ("scene", "clutter", "noise")


def _regions(rng: np.random.Generator, size: tuple[int, int], seeds: np.ndarray) -> np.ndarray:
    """int `[H, W]` Voronoi labels of `seeds` `[K, 2]` (y, x), with wobbly borders."""
    yy, xx = np.mgrid[: size[0], : size[1]].astype(np.float64)
    wobble = ndimage.gaussian_filter(rng.normal(size=size), 6) * 40
    d = (yy[None] + wobble - seeds[:, 0, None, None]) ** 2 + (
        xx[None] - wobble - seeds[:, 1, None, None]
    ) ** 2
    return np.argmin(d, axis=0)


def _boundary(labels: np.ndarray) -> np.ndarray:
    """bool `[H, W]`: pixels whose right or lower neighbour has another label."""
    edge = np.zeros(labels.shape, bool)
    edge[:, :-1] |= labels[:, 1:] != labels[:, :-1]
    edge[:-1] |= labels[1:] != labels[:-1]
    return edge


def edge_pair(seed: int, size: tuple[int, int], kind: str = "scene"):
    """(prob float32 `[H, W]` in [0, 1], gt bool `[H, W]`) for one synthetic image."""
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}: expected one of {KINDS}")
    rng = np.random.default_rng(seed)
    scale = np.hypot(*size) / 200.0
    seeds = rng.random((int(rng.integers(6, 16)), 2)) * size
    gt = _boundary(_regions(np.random.default_rng(seed + 1000), size, seeds))
    # The prediction sees the scene with its region seeds moved by a pixel or two.
    moved = seeds + rng.normal(scale=1.5 * scale, size=seeds.shape)
    pred_edges = _boundary(_regions(np.random.default_rng(seed + 1000), size, moved))
    strength = ndimage.gaussian_filter(rng.random(size), 8 * scale)
    strength = 0.3 + 0.7 * (strength - strength.min()) / np.ptp(strength)
    distance = ndimage.distance_transform_edt(~pred_edges)
    prob = strength * np.exp(-(distance**2) / (2 * (1.2 * scale) ** 2))
    prob += 0.05 * rng.random(size)
    if kind in ("clutter", "noise"):
        smooth = ndimage.gaussian_filter(rng.normal(size=size), 2 * scale)
        ridges = np.exp(-((smooth / smooth.std()) ** 2) * 8)  # the zero-crossings of smooth noise
        prob = np.maximum(prob, ridges * (0.35 + 0.4 * rng.random(size)))
    if kind == "noise":
        prob = (
            0.5 * prob
            + 0.3 * rng.random(size)
            + 0.2 * ndimage.gaussian_filter(rng.random(size), 1.5)
        )
    return np.clip(prob, 0.0, 1.0).astype(np.float32), gt
