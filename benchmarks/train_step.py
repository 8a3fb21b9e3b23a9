"""Train-step speed of a config on the local accelerator, with device-resident synthetic data.

    python benchmarks/train_step.py --config configs/nyud/mti_net.py --arg aux=edge+normals \
        --batch 8 --size 480x640 [--dtype bfloat16]
    python benchmarks/train_step.py --preset mti_net_nyud        # the rows of benchmarks/README.md
    python benchmarks/train_step.py --small                       # tiny shapes, runs on a CPU
    python benchmarks/train_step.py --table                       # both presets, both dtypes

Reports images per second (median over timed windows after warm-up), compile time (tracing,
lowering and XLA compilation; wall and process CPU seconds), peak device
memory and the achieved TFLOP/s (XLA's FLOP count of the compiled step). Imports no TensorFlow,
so it runs where only JAX is installed (the GPU machine).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

if __name__ == "__main__":  # as train.py does, before JAX is imported
    from mtnets import host_memory

    host_memory.restart_with_huge_pages()

import jax  # noqa: E402
import numpy as np  # noqa: E402

from mtnets import sharding  # noqa: E402
from mtnets.config_utils import load_config, resolve_durations  # noqa: E402
from mtnets.models import create_model  # noqa: E402
from mtnets.tasks import task_specs  # noqa: E402
from mtnets.train.optim import create_optimizer, create_schedule  # noqa: E402
from mtnets.train.state import create_train_state  # noqa: E402
from mtnets.train.step import compile_config_steps, trained_tasks  # noqa: E402
from mtnets.weighting import create_weighting  # noqa: E402

# The two rows of the performance table, with the reference's shapes
# (docs/reference_notes.md#parameter-counts).
PRESETS = {
    "mti_net_nyud": ("configs/nyud/mti_net.py", "aux=edge+normals", 8, (480, 640)),
    "segnet_mtan_nyuv2": ("configs/nyuv2/segnet_mtan.py", None, 8, (288, 384)),
}
# The official PyTorch code on one H100 80GB at the same shapes, images/s: float32
# (TF32 convolutions, PyTorch's default) and bf16 autocast + channels_last.
REFERENCE_IMAGES_PER_S = {
    ("mti_net_nyud", "float32"): 33.6,
    ("mti_net_nyud", "bfloat16"): 26.5,
    ("segnet_mtan_nyuv2", "float32"): 37.2,
    ("segnet_mtan_nyuv2", "bfloat16"): 67.8,
}


def synthetic_batch(config, batch: int, size: tuple[int, int], seed: int = 0) -> dict:
    """A batch in the pipeline's conventions for every task of the config (host NumPy)."""
    rng = np.random.default_rng(seed)
    shape = (batch, *size)
    tasks = dict.fromkeys((*config.tasks, *config.aux_tasks))
    specs = task_specs(list(tasks), config.dataset.name)
    out = {"image": rng.normal(size=(*shape, 3)).astype(np.float32), "mask": np.ones(batch, bool)}
    for name, spec in specs.items():
        if spec.kind == "classification":
            out[name] = rng.integers(0, spec.channels, shape).astype(np.int32)
        elif spec.kind == "depth":
            out[name] = rng.uniform(0.5, 10.0, shape).astype(np.float32)
        elif spec.kind == "normals":
            normals = rng.normal(size=(*shape, 3)).astype(np.float32)
            out[name] = normals / np.linalg.norm(normals, axis=-1, keepdims=True)
        else:
            out[name] = (rng.uniform(size=shape) < 0.1).astype(np.int32)
    return out


class CompiledStep:
    """The compiled train step of a config with its state and one device-resident synthetic
    batch; `run(steps)` times a window of steps. The PyTorch comparison
    (benchmarks/pytorch_reference.py) interleaves these windows with the reference's."""

    def __init__(self, config, batch: int, size: tuple[int, int]):
        mesh = sharding.create_mesh(-1)
        # Durations in epochs need an epoch length; the schedule's length does not change the
        # cost.
        config = resolve_durations(config, examples_per_epoch=100 * batch)
        self.config, self.batch, self.size = config, batch, size
        model = create_model(config)
        tx = create_optimizer(config, create_schedule(config))
        # DWA's period does not change the step's cost; any steps_per_epoch will do.
        weighting = create_weighting(config, trained_tasks(config), steps_per_epoch=100)
        init = jax.tree_util.Partial(
            create_train_state, model, tx, weighting, (*size, 3), config.seed
        )
        shardings = sharding.state_shardings(mesh, jax.eval_shape(init))
        self.state = jax.jit(init, out_shardings=shardings)()
        train_step, _ = compile_config_steps(config, model, tx, weighting, mesh, shardings)
        self.data = jax.device_put(
            synthetic_batch(config, batch, size), sharding.batch_sharding(mesh)
        )
        start, start_cpu = time.perf_counter(), time.process_time()
        self.compiled = train_step.lower(self.state, self.data).compile()
        self.compile_s = time.perf_counter() - start
        # CPU seconds of all the process's threads: on a shared machine, wall time also counts
        # the time the compiler waited for a core.
        self.compile_cpu_s = time.process_time() - start_cpu
        cost = self.compiled.cost_analysis()
        cost = cost[0] if isinstance(cost, list) else cost
        self.flops = float(cost.get("flops", 0.0)) if cost else 0.0
        self.scalars = None

    def run(self, steps: int) -> float:
        """Runs `steps` steps and returns the wall-clock seconds until the last one is done."""
        start = time.perf_counter()
        for _ in range(steps):
            self.state, self.scalars = self.compiled(self.state, self.data)
        jax.block_until_ready(self.scalars)
        return time.perf_counter() - start


def measure(
    config,
    batch: int,
    size: tuple[int, int],
    *,
    warmup: int,
    windows: int,
    steps_per_window: int,
    profile_dir: str | None = None,
) -> dict:
    """Compiles and times the train step of `config` on all local devices; with `profile_dir`,
    one more window is traced there (TensorBoard / Perfetto trace)."""
    step = CompiledStep(config, batch, size)
    step.run(warmup)
    rates = [steps_per_window * batch / step.run(steps_per_window) for _ in range(windows)]
    images_per_s = statistics.median(rates)
    if profile_dir:
        with jax.profiler.trace(profile_dir):
            step.run(steps_per_window)
    memory = jax.local_devices()[0].memory_stats() or {}
    return {
        "model": step.config.model.name,
        "dtype": step.config.dtype,
        "batch": batch,
        "size": list(size),
        "device": jax.devices()[0].device_kind,
        "num_devices": jax.device_count(),
        "images_per_s": images_per_s,
        "window_images_per_s": rates,
        "compile_s": step.compile_s,
        "compile_cpu_s": step.compile_cpu_s,
        "peak_memory_gib": memory.get("peak_bytes_in_use", float("nan")) / 2**30,
        "tflop_per_step": step.flops / 1e12,
        "achieved_tflop_per_s": step.flops / 1e12 * images_per_s / batch,
        "loss": float(step.scalars["loss"]),
        # Host malloc settings (mtnets.host_memory): they change the CPU step's speed.
        "glibc_tunables": os.environ.get("GLIBC_TUNABLES", ""),
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS))
    parser.add_argument("--config", default="configs/default.py")
    parser.add_argument("--arg", default=None, help="the config's get_config argument")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument(
        "--size", default=None, help="HxW, e.g. 480x640; default: config.dataset.image_size"
    )
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default=None)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30, help="steps per timed window")
    parser.add_argument("--small", action="store_true", help="tiny shapes for a CPU")
    parser.add_argument("--json", default=None, help="also write the result to this file")
    parser.add_argument("--profile", default=None, help="trace one more window into this dir")
    parser.add_argument(
        "--table",
        action="store_true",
        help="both presets in float32 and bfloat16, as a Markdown table beside the reference",
    )
    args = parser.parse_args(argv)
    if args.small:
        args.warmup, args.windows, args.steps = 1, 2, 2
    results = table(args) if args.table else single(args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return results


def _timed(config, batch: int, size: tuple[int, int], args) -> dict:
    """`measure` with the command line's timing (and, with --small, tiny shapes)."""
    if args.small:
        batch, size = min(batch, 2), (64, 96)
    return measure(
        config,
        batch,
        size,
        warmup=args.warmup,
        windows=args.windows,
        steps_per_window=args.steps,
        profile_dir=args.profile,
    )


def single(args) -> dict:
    """One config (or preset), printed as JSON."""
    path, arg, batch, size = args.config, args.arg, args.batch, None
    if args.preset:
        path, arg, batch, size = PRESETS[args.preset]
    config = load_config(path, arg)
    if args.dtype:
        config.dtype = args.dtype
    if args.size:
        size = tuple(int(v) for v in args.size.lower().split("x"))
    # Without --size: the config's input size, else the default dataset's stored 128x160.
    size = size or tuple(config.dataset.image_size or (128, 160))
    result = _timed(config, batch, size, args)
    print(json.dumps(result, indent=2))
    return result


def table(args) -> list[dict]:
    """Every preset in both dtypes, printed as the rows of the performance table in
    docs/training.md."""
    results = []
    print(
        "| model, shapes | dtype | reference img/s | ours img/s | ratio | compile s | "
        "peak GiB | TFLOP/s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for preset, (path, arg, batch, size) in PRESETS.items():
        for dtype in ("float32", "bfloat16"):
            config = load_config(path, arg)
            config.dtype = dtype
            result = {"preset": preset, **_timed(config, batch, size, args)}
            reference = REFERENCE_IMAGES_PER_S[(preset, dtype)]
            h, w = result["size"]
            print(
                f"| {preset} {h}x{w} b{result['batch']} | {dtype} | {reference} | "
                f"{result['images_per_s']:.1f} | {result['images_per_s'] / reference:.2f}x | "
                f"{result['compile_s']:.0f} | {result['peak_memory_gib']:.1f} | "
                f"{result['achieved_tflop_per_s']:.1f} |",
                flush=True,
            )
            results.append(result)
    return results


if __name__ == "__main__":
    main()
