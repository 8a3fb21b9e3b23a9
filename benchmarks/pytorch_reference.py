"""MTI-Net's CPU train step: the official PyTorch code against ours, timed alternately.

The reference is the MTL code (SimonVandenhende/Multi-Task-Learning-PyTorch), checked out
outside this repository and run with a separate Python that has torch (plus numpy, pyyaml,
termcolor). Nothing of it is copied here: this script imports its classes from the checkout.

    # The reference alone (the torch venv):
    /tmp/torchref-venv/bin/python benchmarks/pytorch_reference.py reference \\
        --reference /tmp/mtl-ref --batch 2 --size 128x160
    # Both, alternating timed windows (our venv drives; the torch venv serves the reference):
    python benchmarks/pytorch_reference.py compare --torch-python /tmp/torchref-venv/bin/python \\
        --reference /tmp/mtl-ref --batch 2 --size 128x160 --rounds 6 --steps 8

The model is the NYUD MTI-Net of `configs/nyud/hrnet18/mti_net+edges_normals.yml`: HRNet-W18
small v2 (`models/model_info/hrnet_w18.yml`), main tasks semseg and depth, auxiliary tasks
semseg, normals, edge and depth, the MTI-Net loss (every scale's initial predictions and the
final outputs) with the YAML's loss weights, Adam with lr 1e-4 and weight decay 1e-4, random
initialisation, float32, eager mode, `torch.set_num_threads(os.cpu_count())`. Ours is
`configs/nyud/mti_net.py` with `aux=edge+normals`, compiled as `benchmarks/train_step.py` does.

`compare` runs the two sides in two processes and times them in turns: each round runs one
window of each side, the order swapped every round, so both see the same machine load. It
reports images/s per window, the ratio ours / reference per round and the median ratio, in
wall-clock time and in CPU time (images per CPU second of each process). On a machine shared
with other jobs the CPU-time ratio is the steadier one; `--threads 1` (both sides on one
thread) keeps thread synchronisation out of it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import types

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The reference's NYUD task set for MTI-Net +edge+normals (`parse_task_dictionary` order) and
# the YAML's loss weights and edge positive weight.
MAIN_TASKS = ("semseg", "depth")
AUX_TASKS = ("semseg", "normals", "edge", "depth")
NUM_OUTPUT = {"semseg": 40, "depth": 1, "normals": 3, "edge": 1}
LOSS_WEIGHTS = {"semseg": 1.0, "depth": 1.0, "normals": 10.0, "edge": 50.0}
EDGE_POS_WEIGHT = 0.95
HRNET_CHANNELS = [18, 36, 72, 144]
ADAM = dict(lr=1e-4, weight_decay=1e-4)


# ---------------------------------------------------------------------------------------------
# Alternation and aggregation (no torch, no JAX).


def window_order(round_index: int) -> tuple[str, str]:
    """Which side runs first in a round: swapped every round, so that a load change during a
    round favours neither side on average."""
    return ("mtnets", "reference") if round_index % 2 == 0 else ("reference", "mtnets")


def summarize(rounds: list[dict], key: str = "") -> dict:
    """`rounds`: one `{"mtnets<key>": rate, "reference<key>": rate, ...}` per round, rates where
    more is faster (images per wall-clock second; with key "_per_cpu_s", images per CPU second).
    Returns the ratio ours / reference of each round, the median of each side and the median
    ratio (the median of the per-round ratios, which pairs windows measured under the same
    load)."""
    if not rounds:
        raise ValueError("summarize: no rounds were measured")
    ours, theirs = f"mtnets{key}", f"reference{key}"
    for i, r in enumerate(rounds):
        for side in (ours, theirs):
            if not r.get(side, 0) > 0:
                raise ValueError(f"summarize: round {i} has {side}={r.get(side)!r}, not > 0")
    ratios = [r[ours] / r[theirs] for r in rounds]
    return {
        f"ratios{key}": ratios,
        f"median_ratio{key}": statistics.median(ratios),
        f"{ours}_median": statistics.median(r[ours] for r in rounds),
        f"{theirs}_median": statistics.median(r[theirs] for r in rounds),
    }


def parse_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size {text!r}: expected HxW, e.g. 128x160") from None
    return h, w


# ---------------------------------------------------------------------------------------------
# The reference side (torch; imported only here).


def _import_reference(reference: str):
    """Puts the MTL checkout on the path and returns its modules, with two shims for today's
    libraries (the checkout itself is not modified). Its `models/resnet.py` imports
    `torchvision.models.utils.load_state_dict_from_url`, which newer torchvision no longer has
    and which only ImageNet loading uses; a stand-in that refuses keeps that import working."""
    if not os.path.isfile(os.path.join(reference, "models", "mti_net.py")):
        raise SystemExit(f"--reference {reference}: no models/mti_net.py (not an MTL checkout)")
    sys.path.insert(0, os.path.abspath(reference))
    try:
        from torchvision.models.utils import load_state_dict_from_url  # noqa: F401
    except ImportError:
        utils = types.ModuleType("torchvision.models.utils")

        def refuse(*args, **kwargs):
            raise RuntimeError("pretrained weights are not used by this benchmark")

        utils.load_state_dict_from_url = refuse
        for name in ("torchvision", "torchvision.models"):
            sys.modules.setdefault(name, types.ModuleType(name))
        sys.modules["torchvision.models.utils"] = utils
    import numpy as np
    import yaml

    # seg_hrnet.py uses `np.int`, which NumPy 1.24 removed; the builtin is what it meant.
    if "int" not in np.__dict__:
        np.int = int
    from losses import loss_functions, loss_schemes
    from models import mti_net, seg_hrnet

    return types.SimpleNamespace(
        yaml=yaml, mti_net=mti_net, seg_hrnet=seg_hrnet, losses=loss_functions,
        schemes=loss_schemes,
    )  # fmt: skip


class _Namespace(dict):
    """The attribute-and-key access the reference's config object (an EasyDict) offers."""

    __getattr__ = dict.__getitem__


def reference_model_and_loss(reference: str):
    """The reference's MTI-Net and MTI-Net loss for NYUD semseg+depth with aux edge+normals,
    assembled from its classes as its `utils/common_config.py` does for that YAML."""
    import torch

    ref = _import_reference(reference)
    with open(os.path.join(reference, "models", "model_info", "hrnet_w18.yml")) as f:
        backbone = ref.seg_hrnet.HighResolutionNet(ref.yaml.safe_load(f))
    p = _Namespace(
        TASKS=_Namespace(NAMES=list(MAIN_TASKS), NUM_OUTPUT=dict(NUM_OUTPUT)),
        AUXILARY_TASKS=_Namespace(NAMES=list(AUX_TASKS), NUM_OUTPUT=dict(NUM_OUTPUT)),
    )
    heads = torch.nn.ModuleDict(
        {t: ref.seg_hrnet.HighResolutionHead(HRNET_CHANNELS, NUM_OUTPUT[t]) for t in MAIN_TASKS}
    )
    model = ref.mti_net.MTINet(p, backbone, HRNET_CHANNELS, heads)
    per_task = {
        "semseg": ref.losses.SoftMaxwithLoss(),
        "depth": ref.losses.DepthLoss("l1"),
        "normals": ref.losses.NormalsLoss(normalize=True, size_average=True, norm=1),
        "edge": ref.losses.BalancedCrossEntropyLoss(size_average=True, pos_weight=EDGE_POS_WEIGHT),
    }
    loss = ref.schemes.MTINetLoss(
        list(MAIN_TASKS), list(AUX_TASKS), torch.nn.ModuleDict(per_task), dict(LOSS_WEIGHTS)
    )
    return model, loss


def reference_batch(batch: int, size: tuple[int, int], seed: int = 0) -> dict:
    """Random inputs in the reference's layout (NCHW, labels as float maps with one channel),
    drawn as `benchmarks/train_step.synthetic_batch` draws ours."""
    import numpy as np
    import torch

    rng = np.random.default_rng(seed)
    shape = (batch, 1, *size)
    normals = rng.normal(size=(batch, 3, *size))
    arrays = {
        "image": rng.normal(size=(batch, 3, *size)),
        "semseg": rng.integers(0, NUM_OUTPUT["semseg"], shape),
        "depth": rng.uniform(0.5, 10.0, shape),
        "normals": normals / np.linalg.norm(normals, axis=1, keepdims=True),
        "edge": rng.uniform(size=shape) < 0.1,
    }
    return {k: torch.from_numpy(v.astype(np.float32)) for k, v in arrays.items()}


class ReferenceStep:
    """The reference's training iteration (`train/train_utils.py:train_vanilla` without the
    meters): forward, MTI-Net loss, zero_grad, backward, Adam step."""

    def __init__(self, reference: str, batch: int, size: tuple[int, int], threads: int):
        import torch

        torch.manual_seed(0)
        torch.set_num_threads(threads)
        self.torch = torch
        self.model, self.loss = reference_model_and_loss(reference)
        self.model.train()
        self.optimizer = torch.optim.Adam(self.model.parameters(), **ADAM)
        self.data = reference_batch(batch, size)
        self.batch = batch
        self.parameters = sum(p.numel() for p in self.model.parameters())

    def step(self) -> float:
        output = self.model(self.data["image"])
        total = self.loss(output, {t: self.data[t] for t in AUX_TASKS})["total"]
        self.optimizer.zero_grad()
        total.backward()
        self.optimizer.step()
        return float(total)

    def run(self, steps: int) -> tuple[float, float]:
        """Runs `steps` steps; returns (wall-clock seconds, CPU seconds of this process)."""
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(steps):
            self.last_loss = self.step()
        return time.perf_counter() - start, time.process_time() - cpu


def _quiet_reference_warnings():
    import warnings

    # F.interpolate's align_corners default and the like: printed once per call site.
    warnings.filterwarnings("ignore", category=UserWarning)


def run_reference(args) -> dict:
    """The reference alone: warm-up, then `--windows` windows; median images/s."""
    _quiet_reference_warnings()
    step = ReferenceStep(args.reference, args.batch, args.size, args.threads)
    step.run(args.warmup)
    rates = [args.steps * args.batch / step.run(args.steps)[0] for _ in range(args.windows)]
    result = {
        "side": "reference",
        "torch": step.torch.__version__,
        "threads": step.torch.get_num_threads(),
        "parameters": step.parameters,
        "batch": args.batch,
        "size": list(args.size),
        "images_per_s": statistics.median(rates),
        "window_images_per_s": rates,
        "loss": step.last_loss,
    }
    print(json.dumps(result, indent=2))
    return result


def serve_reference(args) -> None:
    """The reference as a subprocess of `compare`: after the warm-up it prints one JSON line
    `{"ready": ...}`, then answers each stdin line `<steps>` with `{"seconds": ...}`; an empty
    line or EOF ends it."""
    _quiet_reference_warnings()
    # The reference prints (e.g. "Using L1 loss for surface normals"); stdout carries only the
    # replies.
    replies, sys.stdout = sys.stdout, sys.stderr
    step = ReferenceStep(args.reference, args.batch, args.size, args.threads)
    step.run(args.warmup)
    info = {"torch": step.torch.__version__, "threads": step.torch.get_num_threads()}
    print(json.dumps({"ready": {**info, "parameters": step.parameters}}), file=replies, flush=True)
    for line in sys.stdin:
        if not line.strip():
            break
        seconds, cpu = step.run(int(line))
        reply = {"seconds": seconds, "cpu_seconds": cpu, "loss": step.last_loss}
        print(json.dumps(reply), file=replies, flush=True)


# ---------------------------------------------------------------------------------------------
# The driver (our venv: JAX, no torch).


class _OurProcess:
    """Our compiled step, timed like the reference: wall-clock and CPU seconds per window (CPU
    time of this process, all of XLA's threads included)."""

    def __init__(self, step):
        self.step = step

    def run(self, steps: int) -> tuple[float, float]:
        cpu = time.process_time()
        seconds = self.step.run(steps)
        return seconds, time.process_time() - cpu


class _ReferenceProcess:
    """`serve_reference` in the torch Python, driven over pipes."""

    def __init__(self, args):
        command = [args.torch_python, os.path.abspath(__file__), "serve"]
        command += ["--reference", args.reference, "--batch", str(args.batch)]
        command += ["--size", "x".join(map(str, args.size)), "--threads", str(args.threads)]
        command += ["--warmup", str(args.warmup)]
        env = dict(os.environ)
        if args.reference_malloc == "default":
            from mtnets import host_memory  # compare mode: ROOT is on the path (main)

            env = host_memory.without_huge_pages(env)
        self.glibc_tunables = env.get("GLIBC_TUNABLES", "")
        self.proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1, env=env
        )

    def _reply(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the reference process ended (exit {self.proc.wait()})")
        return json.loads(line)

    def ready(self) -> dict:
        return self._reply()["ready"]

    def run(self, steps: int) -> tuple[float, float]:
        self.proc.stdin.write(f"{steps}\n")
        reply = self._reply()
        return reply["seconds"], reply["cpu_seconds"]

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.write("\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=60)


def compare(args) -> dict:
    """Both sides, alternating windows of `--steps` steps for `--rounds` rounds."""
    sys.path.insert(0, ROOT)
    if args.threads == 1:
        # XLA's CPU convolutions and matmuls run on Eigen's pool unless told otherwise.
        flags = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flags}".strip()
    reference = _ReferenceProcess(args)  # builds and warms up while ours compiles
    try:
        import jax

        from benchmarks.train_step import CompiledStep
        from mtnets import compilation_cache
        from mtnets.config_utils import load_config

        compilation_cache.enable()  # a second run skips the compile
        config = load_config(os.path.join(ROOT, "configs/nyud/mti_net.py"), "aux=edge+normals")
        compiled = CompiledStep(config, args.batch, args.size)
        compiled.run(args.warmup)
        info = reference.ready()
        print(f"compile {compiled.compile_s:.0f} s; reference: {info}", file=sys.stderr)
        sides = {"mtnets": _OurProcess(compiled), "reference": reference}
        rounds = []
        for i in range(args.rounds):
            record = {"load_average": os.getloadavg()[0]}
            for side in window_order(i):
                seconds, cpu = sides[side].run(args.steps)
                record[side] = args.steps * args.batch / seconds
                record[f"{side}_per_cpu_s"] = args.steps * args.batch / cpu
            record["ratio"] = record["mtnets"] / record["reference"]
            print(json.dumps(record), file=sys.stderr, flush=True)
            rounds.append(record)
    finally:
        reference.close()
    result = {
        "batch": args.batch,
        "size": list(args.size),
        "threads": args.threads,
        "steps_per_window": args.steps,
        "mtnets_compile_s": compiled.compile_s,
        "jax": jax.__version__,
        "reference": info,
        "glibc_tunables": {
            "mtnets": os.environ.get("GLIBC_TUNABLES", ""),
            "reference": reference.glibc_tunables,
        },
        "rounds": rounds,
        **summarize(rounds),
        **summarize(rounds, "_per_cpu_s"),
    }
    print(json.dumps(result, indent=2))
    return result


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=("reference", "serve", "compare"))
    parser.add_argument("--reference", required=True, help="the MTL checkout (outside the repo)")
    parser.add_argument("--torch-python", default=None, help="compare: the Python with torch")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--size", type=parse_size, default=(128, 160), help="HxW")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--windows", type=int, default=3, help="reference mode: timed windows")
    parser.add_argument("--rounds", type=int, default=6, help="compare mode: rounds")
    parser.add_argument("--steps", type=int, default=8, help="steps per timed window")
    parser.add_argument("--json", default=None, help="also write the result to this file")
    parser.add_argument(
        "--reference-malloc",
        choices=("same", "default"),
        default="same",
        help="compare: the reference process runs under the same glibc malloc settings as ours "
        "(transparent huge pages, mtnets.host_memory), or under glibc's defaults",
    )
    args = parser.parse_args(argv)
    if args.mode == "compare" and not args.torch_python:
        parser.error("compare needs --torch-python (the Python of the torch venv)")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.mode == "compare":
        # Ours runs in this process, set up as train.py sets itself up; the reference process
        # inherits the same environment, so both sides run under the same malloc settings.
        sys.path.insert(0, ROOT)
        from mtnets import host_memory

        host_memory.restart_with_huge_pages()
    if args.mode == "serve":
        return serve_reference(args)
    result = run_reference(args) if args.mode == "reference" else compare(args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
