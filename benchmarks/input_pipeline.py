"""Input-pipeline throughput: images per second per CPU core, NYUD training transform at 480x640.

Measures the tf.data pipeline alone (read TFRecords, decode the JPEG/PNG/zlib fields, NYUD
augmentation: flip + centre zoom {1, 1.2, 1.5} warps of image, semseg, depth, normals, edge,
normals re-normalised, ImageNet normalisation, batching), exactly as
`InputPipeline.train_dataset` builds it, on a fake NYUD_MT archive of 480x640 examples that
the script generates (smooth images, so JPEG sizes are realistic). No JAX computation runs.

The tf.data work is pinned to N threads (`private_threadpool_size = N`,
`max_intra_op_parallelism = 1`), so images/s / N is the rate one core sustains.

    python benchmarks/input_pipeline.py --threads 1,2 --batches 30
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # repo root

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402
from PIL import Image  # noqa: E402

from configs.default import get_config  # noqa: E402
from mtnets import sharding  # noqa: E402
from mtnets.data import pipeline as pipeline_lib  # noqa: E402
from mtnets.data.builders import nyud_mt  # noqa: E402

H, W = 480, 640


def write_fake_nyud(root: str, num_train: int, seed: int = 0) -> None:
    """`<root>/NYUD_MT/` with `num_train` train and 2 val examples of 480x640."""
    rng = np.random.default_rng(seed)
    base = os.path.join(root, "NYUD_MT")
    for sub in ("images", "segmentation", "depth", "normals", "edge", "gt_sets"):
        os.makedirs(os.path.join(base, sub), exist_ok=True)
    y, x = np.mgrid[0:H, 0:W]
    ids = {"train": [f"{i:04d}" for i in range(num_train)], "val": ["9000", "9001"]}
    for split, split_ids in ids.items():
        with open(os.path.join(base, "gt_sets", f"{split}.txt"), "w") as f:
            f.write("\n".join(split_ids) + "\n")
        for i in split_ids:
            phase = rng.uniform(0, 6.28)
            rgb = np.stack(
                [128 + 100 * np.sin(x / 40 + phase), 128 + 100 * np.cos(y / 30), (x + y) % 256],
                -1,
            )
            rgb = np.clip(rgb + rng.normal(0, 6, rgb.shape), 0, 255).astype(np.uint8)
            Image.fromarray(rgb).save(os.path.join(base, "images", f"{i}.jpg"), quality=90)
            seg = ((x // 64 + y // 48 + int(phase * 10)) % 41).astype(np.uint8)
            Image.fromarray(seg).save(os.path.join(base, "segmentation", f"{i}.png"))
            depth = (1.0 + 3.0 * y / H + 0.2 * np.sin(x / 50 + phase)).astype(np.float32)
            np.save(os.path.join(base, "depth", f"{i}.npy"), depth)
            n = np.stack([np.sin(x / 90 + phase), np.cos(y / 70), -np.ones_like(x) * 1.5], -1)
            n = (n / np.linalg.norm(n, axis=-1, keepdims=True)).astype(np.float32)
            np.save(os.path.join(base, "normals", f"{i}.npy"), n)
            edge = ((x % 64 == 0) | (y % 48 == 0)).astype(np.float32)
            np.save(os.path.join(base, "edge", f"{i}.npy"), edge)


def measure(pipeline, threads: int, batches: int, warmup: int) -> tuple[float, float]:
    """(images per wall-clock second, CPU seconds per image) of `train_dataset` with its work
    pinned to `threads` threads. The CPU time (all threads of this process) gives the per-core
    rate even on a machine shared with other jobs, where the wall-clock rate is too low."""
    dataset = pipeline.train_dataset(0)
    options = tf.data.Options()
    options.threading.private_threadpool_size = threads
    options.threading.max_intra_op_parallelism = 1
    options.autotune.cpu_budget = threads
    iterator = iter(dataset.with_options(options))
    for _ in range(warmup):
        next(iterator)
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(batches):
        next(iterator)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    images = batches * pipeline.local_batch_size
    return images / elapsed, cpu / images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--num_train", type=int, default=48)
    parser.add_argument(
        "--augmentation", default="nyud", help="config.dataset.augmentation ('none': decode only)"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        write_fake_nyud(os.path.join(tmp, "manual"), args.num_train)
        builder = nyud_mt.NyudMt(data_dir=os.path.join(tmp, "data"))
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=os.path.join(tmp, "manual"))
        )
        config = get_config()
        config.dataset.name = "nyud_mt"
        config.dataset.augmentation = args.augmentation
        config.dataset.shuffle_buffer = args.num_train
        config.tasks = ("semseg", "depth")
        config.aux_tasks = ("normals", "edge")
        config.batch_size = args.batch_size
        pipeline_lib._prepared_builder = lambda _: builder  # the builder prepared above
        mesh = sharding.create_mesh(1)
        pipeline = pipeline_lib.InputPipeline(config, mesh)
        print(f"augmentation {args.augmentation!r}, {H}x{W}, batch {pipeline.local_batch_size}")
        for threads in (int(t) for t in args.threads.split(",")):
            rate, cpu = measure(pipeline, threads, args.batches, args.warmup)
            print(
                f"threads={threads}: {rate:.1f} images/s wall ({rate / threads:.1f} per thread); "
                f"{cpu * 1e3:.1f} CPU ms per image = {1 / cpu:.1f} images/s per busy core"
            )


if __name__ == "__main__":
    main()
