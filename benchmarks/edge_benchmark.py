"""Speed of the edge benchmark (ODS/OIS/AP): the fast implementation against the frozen one.

    python benchmarks/edge_benchmark.py                      # 128x160 and 321x481, 6 images each
    python benchmarks/edge_benchmark.py --sizes 32x40 --images 3 --set-images 4   # seconds

For each size, `--images` synthetic soft edge maps with their GT boundaries
(tests/metrics/edge_inputs.py: scene, clutter and noise in turn) are scored by the frozen
pre-optimisation code (tests/metrics/edge_reference_impl.py, "old") and by
`mtnets.metrics.edge_benchmark` ("new"), image by image, alternating which goes first. Each
call is timed in CPU seconds of this process (one core), and the counts must be identical.
Then a set of `--set-images` maps is scored by `EdgeBenchmark` with `--workers` processes
(default: every CPU) and timed by the wall clock, from the first `add_image` to `compute`,
with the CPU time of this process and its workers (CPU / wall = the cores kept busy).
With `--breakdown`, one more pass splits each implementation's time into thinning and
matching. Prints (and with `--json` writes) the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from mtnets.metrics import edge_benchmark as new  # noqa: E402
from tests.metrics import edge_inputs  # noqa: E402
from tests.metrics import edge_reference_impl as old  # noqa: E402


def _inputs(size: tuple[int, int], count: int, first_seed: int) -> list:
    kinds = edge_inputs.KINDS
    return [
        edge_inputs.edge_pair(first_seed + i, size, kinds[i % len(kinds)]) for i in range(count)
    ]


def _cpu(fn, *args):
    start = time.process_time()
    result = fn(*args)
    return time.process_time() - start, result


def paired(size, count, max_dist) -> dict:
    """CPU seconds per image of old and new on the same images, alternating the order."""
    times = {"old": [], "new": []}
    for i, (prob, gt) in enumerate(_inputs(size, count, first_seed=0)):
        order = ("old", "new") if i % 2 == 0 else ("new", "old")
        counts = {}
        for name in order:
            module = old if name == "old" else new
            seconds, counts[name] = _cpu(module.image_counts, prob, gt, max_dist)
            times[name].append(seconds)
        if not np.array_equal(counts["old"], counts["new"]):
            raise AssertionError(f"{size} image {i}: the counts differ from the frozen code's")
    return {
        "images": count,
        "old_s_per_image": float(np.mean(times["old"])),
        "new_s_per_image": float(np.mean(times["new"])),
        "speedup_per_core": float(np.sum(times["old"]) / np.sum(times["new"])),
        "old_s": times["old"],
        "new_s": times["new"],
        "identical": True,
    }


def breakdown(size, count, max_dist) -> dict:
    """CPU seconds per image spent thinning and matching, in old and new."""
    radius = max_dist * float(np.hypot(*size))
    out = dict.fromkeys(("old_thin", "old_match", "new_thin", "new_match"), 0.0)
    for prob, gt in _inputs(size, count, first_seed=0):
        binary = prob[None] >= new.EDGE_THRESHOLDS[:, None, None]
        distinct = binary[np.r_[True, (binary[1:] != binary[:-1]).any(axis=(1, 2))]]
        for plane in distinct:
            seconds, thinned = _cpu(old.thin, plane)
            out["old_thin"] += seconds
            out["old_match"] += _cpu(old.match_count, thinned, gt, radius)[0]
        seconds, thinned = _cpu(new.thin_planes, distinct)
        out["new_thin"] += seconds

        out["new_match"] += _cpu(new.match_counts, thinned, gt, radius)[0]
    return {k: v / count for k, v in out.items()}


def whole_set(size, count, max_dist, workers) -> dict:
    """Wall seconds for `EdgeBenchmark` with `workers` processes over `count` images."""
    images = _inputs(size, count, first_seed=1000)
    benchmark = new.EdgeBenchmark(max_dist=max_dist, workers=workers, progress=False)
    before = _cpu_seconds()
    start = time.perf_counter()
    for prob, gt in images:
        benchmark.add_image(prob, gt)
    benchmark.compute()
    wall = time.perf_counter() - start
    cpu = _cpu_seconds() - before
    return {
        "images": count,
        "workers": benchmark._num_workers(),
        "wall_s": wall,
        "images_per_s": count / wall,
        # This process and its (finished) workers: cpu / wall is the number of busy cores.
        "cpu_s": cpu,
        "cores_busy": cpu / wall,
    }


def _cpu_seconds() -> float:
    """CPU seconds of this process and of its children that have exited."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="128x160,321x481", help="HxW[,HxW...]")
    parser.add_argument("--images", type=int, default=6, help="paired images per size")
    parser.add_argument("--set-images", type=int, default=24, help="images of the whole set")
    parser.add_argument("--workers", type=int, default=None, help="default: every CPU")
    parser.add_argument("--max-dist", type=float, default=new.DEFAULT_MAX_DIST)
    parser.add_argument("--breakdown", action="store_true", help="thinning vs matching")
    parser.add_argument("--json", default=None, help="also write the result to this file")
    args = parser.parse_args(argv)
    results = {"cpus": len(os.sched_getaffinity(0)), "load_average": os.getloadavg()}
    for text in args.sizes.split(","):
        size = tuple(int(v) for v in text.lower().split("x"))
        result = {"paired": paired(size, args.images, args.max_dist)}
        if args.breakdown:
            result["breakdown_s_per_image"] = breakdown(size, args.images, args.max_dist)
        result["whole_set"] = whole_set(size, args.set_images, args.max_dist, args.workers)
        p, w = result["paired"], result["whole_set"]
        print(
            f"{text}: old {p['old_s_per_image']:.3f} s/image, new {p['new_s_per_image']:.3f} "
            f"s/image (CPU, one core): {p['speedup_per_core']:.1f}x, identical counts; "
            f"{w['images']} images with {w['workers']} workers: {w['wall_s']:.2f} s wall, "
            f"{w['images_per_s']:.1f} images/s, {w['cores_busy']:.2f} cores busy",
            flush=True,
        )
        if args.breakdown:
            print("  breakdown, CPU s/image:", result["breakdown_s_per_image"], flush=True)
        results[text] = result
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return results


if __name__ == "__main__":
    main()
