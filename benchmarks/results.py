"""Every model trained on the embedded `synthetic_scenes` data, several seeds, with a Delta_m table.

    python benchmarks/results.py --out results/synthetic_scenes [--jobs 2] [--seeds 3]
        [--scale cpu|full] [--only PATTERN] [--report]

All six tasks are main tasks. The runs (`RUNS`, each `<out>/runs/<name>/seed_<k>`):

* `single_<task>`: one single-task network per task on `hrnet_tiny` (the Delta_m references of
  the HRNet models);
* `baseline` (shared encoder, fixed PASCAL loss weights), `pad_net`, `mti_net` (distillation
  at every scale, the paper's model) and its ablations `mti_net_no_fpm`, `mti_net_one_scale`;
* `baseline_<weighting>`: the baseline under equal, DWA, uncertainty, GradNorm, PCGrad and RLW
  weights (and FAMO when `mtnets.weighting.STRATEGIES` has it);
* on `resnet18_narrow` (ResNet-18's two blocks per stage at quarter width, dilated to output
  stride 8, DeepLab heads, as MTL's ResNet models): `resnet_single_<task>` (the references of
  this family), `mtan`, and `cross_stitch` / `nddr_cnn` whose task networks start from the
  `resnet_single_<task>` runs of the same seed, as the reference does.

Each run is `train.py --config=benchmarks/results.py:<overrides> --workdir <dir>` in its own
process (this file is also the config file: `get_config` below). A run whose final
`eval_<steps>.json` exists is skipped; an interrupted one resumes from its checkpoint; runs
whose inputs failed are left out. Seed 0 of every model runs before seed 1, so a partial table
covers every model. At the end, or with `--report` alone, the results are aggregated into
`<out>/results.json` (every number), `<out>/results.md` (mean ± std over seeds) and PNG plots.

Budget (`SCALES`; the same for every model): `--scale cpu` (the default) trains 400 steps of
batch 8 on `synthetic_scenes/small` (the default scenes rendered at 64x96; 1.6 epochs of the
2000 training images), Adam 2e-3 with poly decay, evaluates on the 300 validation images at
steps 200 and 400, with the edge benchmark (ODS F) at the final evaluation only. It is sized
to fit a 2-core CPU in about 3 hours with `--jobs 2` (docs/results.md has the measured time).
`--scale full` (a GPU/TPU) trains 5000 steps of batch 16 at the stored 128x160 on all 300
validation images, with PAD-Net and the DeepLab heads at the reference's width.

Delta_m (MTL's definition, `mtnets.metrics.delta_m`, percent) of each seed is taken against
the mean over seeds of the single-task networks of the same backbone; the table gives its mean
and sample standard deviation (ddof=1) over seeds.
"""

from __future__ import annotations

import argparse
import fnmatch
import glob
import json
import math
import os
import re
import resource
import subprocess
import sys
import time
from typing import Any, NamedTuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # as a config file, this module imports `configs.default`
    sys.path.insert(0, ROOT)

TASKS = ("semseg", "depth", "normals", "edge", "sal", "human_parts")
# The metric shown per task (higher is better: +1). Delta_m uses each task's `delta_m` instead
# (sal: mIoU there, as the MTL repo).
TABLE_METRICS = {
    "semseg": ("mIoU", +1),
    "depth": ("rmse", -1),
    "normals": ("mean", -1),
    "sal": ("maxF", +1),
    "edge": ("odsF", +1),
    "human_parts": ("mIoU", +1),
}
RESNET = "resnet18_narrow"
WEIGHTINGS = ("equal", "dwa", "uncertainty", "gradnorm", "pcgrad", "rlw", "famo")

# The budget of every run; `steps // 2` between evaluations (and checkpoints).
# `pad_net_width` / `deeplab_width`: PAD-Net's per-task features and the DeepLab heads of the
# ResNet models (`model.head_width`; 0: the reference's 256, which alone would take most of a
# CPU budget).
SCALES = {
    "cpu": dict(
        dataset="small", size="64x96", steps=400, batch=8, eval_split="validation",
        pad_net_width=32, deeplab_width=64,
    ),
    "full": dict(
        dataset="default", size="128x160", steps=5000, batch=16, eval_split="validation",
        pad_net_width=0, deeplab_width=0,
    ),
    # A few steps on a few images: checks that every model runs (not a result).
    "smoke": dict(
        dataset="default", size="128x160", steps=4, batch=2, eval_split="validation[:4]",
        pad_net_width=16, deeplab_width=16,
    ),
}


# ------------------------------------------------------------------------------------------
# The config (this file is the `--config` of every run).
def get_config(arg: str | None = None):
    """configs/default.py with the budget of `scale=` (first item of `arg`, default cpu) and
    the units' weights of the ResNet models; the other items of `arg` override fields."""
    from configs.default import get_config as default_config
    from mtnets.config_utils import apply_overrides

    items = [i for i in (arg or "").split(",") if i]
    scale = "cpu"
    if items and items[0].startswith("scale="):
        scale = items.pop(0).partition("=")[2]
    if scale not in SCALES:
        raise ValueError(f"benchmarks/results.py: unknown scale={scale!r}; use {list(SCALES)}.")
    budget = SCALES[scale]
    config = default_config()
    config.tasks = TASKS
    config.batch_size = budget["batch"]
    config.num_train_steps = budget["steps"]
    config.log_every_steps = max(1, budget["steps"] // 30)
    # Two evaluations (half-way and final): on a CPU each costs as much as 20 to 40 steps.
    config.eval_every_steps = budget["steps"] // 2
    config.checkpoint_every_steps = budget["steps"] // 2
    config.keep_checkpoints = 1
    config.dataset.config = budget["dataset"]
    config.dataset.eval_split = budget["eval_split"]
    config.eval.edge_benchmark = "final"
    # DWA's period: a fifteenth of the run instead of an epoch (250 steps at batch 8), else a
    # short budget ends before DWA's first update and it equals equal weighting.
    config.weighting.dwa.update_every_steps = max(1, budget["steps"] // 15)
    # The units' initial self/cross weights of the MTL PASCAL configs (configs/pascal/
    # cross_stitch.py); output stride and single-task starts keep configs/default.py's.
    config.model.alpha, config.model.beta = 0.8, 0.05
    return apply_overrides(config, ",".join(items))


# ------------------------------------------------------------------------------------------
# The runs.
class Run(NamedTuple):
    """One model: its name, config overrides, the references of its Delta_m, and the runs
    (of the same seed) that must finish before it starts."""

    name: str
    overrides: tuple[str, ...]
    family: str  # "hrnet" or "resnet": whose single-task networks are its references
    needs: tuple[str, ...] = ()
    tasks: tuple[str, ...] = TASKS

    @property
    def single(self) -> bool:
        return len(self.tasks) == 1


def available_weightings() -> tuple[str, ...]:
    """The weightings of `WEIGHTINGS` that `mtnets.weighting` knows (FAMO may be missing)."""
    from mtnets import weighting

    return tuple(w for w in WEIGHTINGS if w in weighting.STRATEGIES)


def all_runs(scale: str = "cpu", weightings: tuple[str, ...] | None = None) -> list[Run]:
    """Every model of the table, references first."""
    if weightings is None:
        weightings = available_weightings()
    width = SCALES[scale]["pad_net_width"]
    heads = f"model.head_width={SCALES[scale]['deeplab_width']}"
    resnet = (f"model.backbone={RESNET}", "model.dilated=True", "model.head=deeplab", heads)
    runs = [
        Run(f"single_{t}", ("model.name=single_task_baseline", f"tasks={t}"), "hrnet", tasks=(t,))
        for t in TASKS
    ]
    mti = ("model.name=mti_net", "model.mti_net.distill_all_scales=True")
    runs += [
        Run("baseline", ("model.name=multi_task_baseline",), "hrnet"),
        Run("mti_net", mti, "hrnet"),
        Run("pad_net", ("model.name=pad_net", f"model.head_width={width}"), "hrnet"),
        Run("mti_net_no_fpm", (*mti, "model.mti_net.use_fpm=False"), "hrnet"),
        Run("mti_net_one_scale", (*mti, "model.mti_net.num_scales=1"), "hrnet"),
    ]
    runs += [
        Run(f"baseline_{w}", ("model.name=multi_task_baseline", f"weighting.name={w}"), "hrnet")
        for w in weightings
    ]
    runs += [
        Run(f"resnet_single_{t}", ("model.name=single_task_baseline", f"tasks={t}", *resnet),
            "resnet", tasks=(t,))
        for t in TASKS
    ]
    runs.append(Run("mtan", ("model.name=mtan", f"model.backbone={RESNET}", heads), "resnet"))
    singles = tuple(f"resnet_single_{t}" for t in TASKS)
    for name in ("cross_stitch", "nddr_cnn"):
        overrides = (f"model.name={name}", f"model.backbone={RESNET}", heads)
        runs.append(Run(name, overrides, "resnet", singles))
    return runs


def workdir(out: str, run: Run, seed: int) -> str:
    return os.path.join(out, "runs", run.name, f"seed_{seed}")


def final_eval(out: str, run: Run, seed: int, steps: int) -> str:
    """The file whose existence marks a finished run."""
    return os.path.join(workdir(out, run, seed), f"eval_{steps}.json")


def command(out: str, run: Run, seed: int, scale: str) -> list[str]:
    """The train.py command line of one run."""
    overrides = [f"scale={scale}", f"seed={seed}", *run.overrides]
    for need in run.needs:  # cross-stitch / NDDR-CNN: resnet_single_<task> of this seed
        task = need.rpartition("single_")[2]
        path = os.path.abspath(os.path.join(out, "runs", need, f"seed_{seed}"))
        overrides.append(f"model.single_task_checkpoints.{task}={path}")
    return [
        sys.executable,
        os.path.join(ROOT, "train.py"),
        f"--config={os.path.abspath(__file__)}:{','.join(overrides)}",
        f"--workdir={os.path.abspath(workdir(out, run, seed))}",
    ]


# ------------------------------------------------------------------------------------------
# Scheduling.
class Job:
    """One run of one seed and its state: pending, running, done, failed or skipped.

    (Plain classes: config_flags loads this file as a module outside sys.modules, where
    dataclasses fail.)"""

    def __init__(self, run: Run, seed: int, status: str = "pending"):
        self.run, self.seed, self.status = run, seed, status
        self.process: subprocess.Popen | None = None
        self.stream = None  # the run's train.log, open while it runs
        self.started = 0.0


def plan(out: str, runs: list[Run], seeds: int, steps: int) -> list[Job]:
    """The jobs in launch order (seed 0 of every model first); finished ones marked done."""
    jobs = []
    for seed in range(seeds):
        for run in runs:
            job = Job(run, seed)
            if os.path.exists(final_eval(out, run, seed, steps)):
                job.status = "done"
            jobs.append(job)
    return jobs


def _ready(job: Job, jobs: list[Job]) -> str:
    """"yes", "wait" or "no" (a run it needs failed or is not in the plan)."""
    for need in job.run.needs:
        match = [j for j in jobs if j.run.name == need and j.seed == job.seed]
        if not match or match[0].status in ("failed", "skipped"):
            return "no"
        if match[0].status != "done":
            return "wait"
    return "yes"


def execute(out: str, jobs: list[Job], scale: str, num_jobs: int, log=print, poll: float = 5.0):
    """Runs the pending jobs, `num_jobs` at a time, logging progress with an ETA."""
    steps = SCALES[scale]["steps"]
    todo = [j for j in jobs if j.status == "pending"]
    total, finished, started_at = len(todo), 0, time.time()
    log(f"{len(jobs) - total} of {len(jobs)} runs already finished; {total} to run.")
    while True:
        running = [j for j in jobs if j.status == "running"]
        for job in running:
            code = job.process.poll()
            if code is None:
                continue
            job.stream.close()
            done = code == 0 and os.path.exists(final_eval(out, job.run, job.seed, steps))
            job.status = "done" if done else "failed"
            finished += 1
            _record_cost(out, job)
            elapsed = time.time() - started_at
            eta = elapsed / finished * (total - finished)
            log(
                f"[{finished}/{total}] {job.run.name} seed {job.seed} {job.status} "
                f"(exit {code}) in {time.time() - job.started:.0f} s; "
                f"elapsed {elapsed / 60:.1f} min, ETA {eta / 60:.1f} min"
            )
        for job in jobs:
            if job.status == "pending" and _ready(job, jobs) == "no":
                job.status = "skipped"
                finished += 1
                log(f"[{finished}/{total}] {job.run.name} seed {job.seed} skipped: "
                    f"a run it starts from failed ({', '.join(job.run.needs)})")
        running = [j for j in jobs if j.status == "running"]
        pending = [j for j in jobs if j.status == "pending"]
        if not running and not pending:
            return
        for job in pending:
            if len(running) >= num_jobs:
                break
            if _ready(job, jobs) == "yes":
                _start(out, job, scale, log)
                running.append(job)
        time.sleep(poll)


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _record_cost(out: str, job: Job) -> None:
    """Appends this process's wall and CPU seconds to `<workdir>/cost.json` (one entry per
    start: a resumed run has several). CPU time is what the run costs on an idle machine of
    any load; it counts the children reaped since the previous reap, which is this run alone
    as `execute` reaps one at a time."""
    cpu = _children_cpu_s()
    entry = {"wall_s": time.time() - job.started, "cpu_s": cpu - _children_cpu_s.last}
    _children_cpu_s.last = cpu
    path = os.path.join(workdir(out, job.run, job.seed), "cost.json")
    entries = json.load(open(path)) if os.path.exists(path) else []
    with open(path, "w") as f:
        json.dump([*entries, entry], f)


_children_cpu_s.last = 0.0


def _start(out: str, job: Job, scale: str, log) -> None:
    directory = workdir(out, job.run, job.seed)
    os.makedirs(directory, exist_ok=True)
    resumed = bool(glob.glob(os.path.join(directory, "checkpoints", "*")))
    cmd = command(out, job.run, job.seed, scale)
    job.stream = open(os.path.join(directory, "train.log"), "a")  # a resumed run appends
    job.process = subprocess.Popen(cmd, stdout=job.stream, stderr=subprocess.STDOUT, cwd=ROOT)
    job.started, job.status = time.time(), "running"
    log(f"start {job.run.name} seed {job.seed}{' (resuming)' if resumed else ''}: {directory}")


# ------------------------------------------------------------------------------------------
# Reading the runs.
_LOSS_LINE = re.compile(r"step (\d+): loss ([-+\d.eE]+|nan|inf) \((.*)\)")


def read_evals(directory: str) -> dict[int, dict[str, float]]:
    """`{step: {"<task>/<metric>": value}}` from the run's `eval_<step>.json` files."""
    evals = {}
    for path in glob.glob(os.path.join(directory, "eval_*.json")):
        with open(path) as f:
            table = json.load(f)
        step = int(table.pop("step", os.path.basename(path)[5:-5]))
        evals[step] = {k: float(v) for k, v in table.items()}
    return dict(sorted(evals.items()))


def read_cost(directory: str) -> dict[str, float] | None:
    """Wall and CPU seconds of a run, summed over its starts (`cost.json`), or None."""
    path = os.path.join(directory, "cost.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        entries = json.load(f)
    return {k: sum(e[k] for e in entries) for k in ("wall_s", "cpu_s")}


def read_train_losses(directory: str) -> dict[int, dict[str, float]]:
    """`{step: {"loss": total, "loss/<task>": ...}}` from the `step N: loss ...` lines of the
    run's train.log (averages since the previous line; a resumed run's later lines win)."""
    path = os.path.join(directory, "train.log")
    losses: dict[int, dict[str, float]] = {}
    if not os.path.exists(path):
        return losses
    with open(path, errors="replace") as f:
        for line in f:
            match = _LOSS_LINE.search(line)
            if not match:
                continue
            row = {"loss": float(match.group(2))}
            for item in match.group(3).split(", "):
                task, _, value = item.rpartition(" ")
                if task:
                    row[f"loss/{task}"] = float(value)
            losses[int(match.group(1))] = row
    return dict(sorted(losses.items()))


# ------------------------------------------------------------------------------------------
# Aggregation.
def mean_std(values: list[float]) -> dict[str, float]:
    """Mean and sample standard deviation (ddof=1; 0 for one value) of finite `values`."""
    values = [v for v in values if v is not None and math.isfinite(v)]
    n = len(values)
    if not n:
        return {"mean": float("nan"), "std": float("nan"), "n": 0}
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return {"mean": mean, "std": std, "n": n}


def references(finals: dict[str, dict[int, dict]], runs: list[Run]) -> dict[str, dict]:
    """Per family, `{"<task>/<metric>": mean over seeds}` of its single-task runs (every
    metric of each single-task run's own task)."""
    refs: dict[str, dict] = {}
    for run in runs:
        if not run.single or run.name not in finals:
            continue
        task = run.tasks[0]
        keys = {k for seed in finals[run.name].values() for k in seed if k.startswith(f"{task}/")}
        for key in keys:
            values = [seed[key] for seed in finals[run.name].values() if key in seed]
            refs.setdefault(run.family, {})[key] = mean_std(values)["mean"]
    return refs


def delta_m_of(results: dict, refs: dict, tasks=TASKS) -> float | None:
    """Delta_m (percent) of one run's results, or None if a metric or reference is missing."""
    from mtnets.metrics.delta_m import delta_m

    try:
        return delta_m(results, refs, tasks)
    except (KeyError, ValueError):
        return None


def aggregate(out: str, runs: list[Run], seeds: int, steps: int) -> dict:
    """Every number: per run and seed (final metrics, Delta_m, eval history, train losses) and
    per model (mean/std over the finished seeds)."""
    finals: dict[str, dict[int, dict]] = {}
    history: dict[str, dict[int, dict]] = {}
    losses: dict[str, dict[int, dict]] = {}
    costs: dict[str, dict[int, dict]] = {}
    for run in runs:
        for seed in range(seeds):
            directory = workdir(out, run, seed)
            cost = read_cost(directory)
            if cost:
                costs.setdefault(run.name, {})[seed] = cost
            evals = read_evals(directory)
            if evals:
                history.setdefault(run.name, {})[seed] = evals
            train = read_train_losses(directory)
            if train:
                losses.setdefault(run.name, {})[seed] = train
            if steps in evals:
                finals.setdefault(run.name, {})[seed] = evals[steps]
    refs = references(finals, runs)
    per_run, summary = {}, {}
    singles = {r.family: [s for s in runs if s.single and s.family == r.family] for r in runs}
    for run in runs:
        if run.single:
            continue
        seeds_done = finals.get(run.name, {})
        per_seed = {}
        for seed, results in seeds_done.items():
            per_seed[seed] = dict(results)
            dm = delta_m_of(results, refs.get(run.family, {}))
            if dm is not None:
                per_seed[seed]["delta_m"] = dm
        per_run[run.name] = per_seed
    # The single-task networks as one model per family: seed k holds every task's seed k.
    for family, members in singles.items():
        combined = {}
        for seed in range(seeds):
            results = {}
            for member in members:
                results.update(finals.get(member.name, {}).get(seed, {}))
            if all(any(k.startswith(f"{t}/") for k in results) for t in TASKS):
                dm = delta_m_of(results, refs.get(family, {}))
                combined[seed] = {**results, **({"delta_m": dm} if dm is not None else {})}
        per_run[f"single_task_{family}"] = combined
    for name, per_seed in per_run.items():
        keys = sorted({k for r in per_seed.values() for k in r})
        summary[name] = {k: mean_std([r.get(k) for r in per_seed.values()]) for k in keys}
    return {
        "references": refs,
        "final": per_run,
        "single_runs": {r.name: finals.get(r.name, {}) for r in runs if r.single},
        "summary": summary,
        "eval_history": history,
        "train_losses": losses,
        "cost": costs,
        "total_cost": {
            k: sum(c[k] for per_seed in costs.values() for c in per_seed.values())
            for k in ("wall_s", "cpu_s")
        },
    }


def table_rows(runs: list[Run]) -> list[tuple[str, str]]:
    """(row key in `summary`, label) in table order."""
    rows = [("single_task_hrnet", "single-task networks (hrnet_tiny)")]
    rows += [(r.name, r.name) for r in runs if not r.single and r.family == "hrnet"]
    rows += [("single_task_resnet", f"single-task networks ({RESNET})")]
    rows += [(r.name, r.name) for r in runs if not r.single and r.family == "resnet"]
    return rows


def _cell(stats: dict | None, scale: float = 1.0, digits: int = 2) -> str:
    if not stats or not stats["n"]:
        return "–"
    return f"{stats['mean'] * scale:.{digits}f} ± {stats['std'] * scale:.{digits}f}"


def markdown(summary: dict, runs: list[Run], budget: str) -> str:
    """The table: mean ± std over seeds of each task's main metric and Delta_m."""
    header = ["model", "seeds"]
    for task, (metric, sign) in TABLE_METRICS.items():
        header.append(f"{task} {metric} {'↑' if sign > 0 else '↓'}")
    header.append("Δm % ↑")
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for key, label in table_rows(runs):
        stats = summary.get(key)
        if not stats:
            lines.append(f"| {label} | 0 |" + " – |" * (len(header) - 2))
            continue
        n = max(s["n"] for s in stats.values())
        cells = [label, str(n)]
        for task, (metric, _) in TABLE_METRICS.items():
            percent = metric in ("mIoU", "maxF", "odsF")
            cells.append(_cell(stats.get(f"{task}/{metric}"), 100.0 if percent else 1.0))
        cells.append(_cell(stats.get("delta_m")))
        lines.append("| " + " | ".join(cells) + " |")
    note = (
        f"\nMean ± sample standard deviation over seeds; {budget}. mIoU, maxF and odsF in "
        "percent, depth RMSE in the dataset's depth units, normals mean angular error in "
        "degrees. Δm (MTL's definition; sal by mIoU) against the single-task networks of the "
        "same backbone (mean over seeds).\n"
    )
    return "\n".join(lines) + "\n" + note


# ------------------------------------------------------------------------------------------
# Plots.
def plot_delta_m(summary: dict, runs: list[Run], path: str, budget: str) -> list[str]:
    """Delta_m per model with its seed spread as error bars; returns the titles drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(k, lbl) for k, lbl in table_rows(runs) if summary.get(k, {}).get("delta_m")]
    fig, ax = plt.subplots(figsize=(10, 0.35 * max(len(rows), 4) + 1.8))
    means = [summary[k]["delta_m"]["mean"] for k, _ in rows]
    stds = [summary[k]["delta_m"]["std"] for k, _ in rows]
    colours = ["tab:green" if m >= 0 else "tab:red" for m in means]
    ax.barh(range(len(rows)), means, xerr=stds, color=colours, capsize=3)
    ax.set_yticks(range(len(rows)), [lbl for _, lbl in rows])
    ax.invert_yaxis()
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel("Δm (%) against the single-task networks, mean ± std over seeds")
    ax.set_title(f"Multi-task performance Δm on synthetic_scenes\n{budget}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [ax.get_title()]


def _mean_curve(per_seed: dict[int, dict[int, dict]], key: str):
    """Steps and the mean over seeds of `key` at the steps every seed has."""
    steps = sorted(set.intersection(*(set(s) for s in per_seed.values()))) if per_seed else []
    steps = [s for s in steps if all(key in per_seed[k][s] for k in per_seed)]
    return steps, [sum(per_seed[k][s][key] for k in per_seed) / len(per_seed) for s in steps]


def _label(run: Run) -> str:
    """Legend label: the single-task networks of a family share one."""
    if not run.single:
        return run.name
    return f"single-task ({'hrnet_tiny' if run.family == 'hrnet' else RESNET})"


def _colours(runs: list[Run]) -> dict[str, Any]:
    """One colour per legend label, the same in every panel."""
    import matplotlib

    labels = list(dict.fromkeys(_label(r) for r in runs))
    cmap = matplotlib.colormaps["tab20"]
    return {label: cmap(i % 20) for i, label in enumerate(labels)}


def plot_eval_curves(history: dict, runs: list[Run], path: str, budget: str) -> list[str]:
    """Validation metric against step, one panel per task, one line per model (seed mean)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = _colours(runs)
    legend = {}
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    for ax, (task, (metric, sign)) in zip(axes.flat, TABLE_METRICS.items(), strict=True):
        key = f"{task}/{metric}"
        for run in runs:
            if run.single and run.tasks[0] != task or run.name not in history:
                continue
            steps, values = _mean_curve(history[run.name], key)
            if steps:
                label = _label(run)
                (line,) = ax.plot(
                    steps,
                    values,
                    "--" if run.family == "resnet" else "-",
                    marker="o",
                    markersize=3,
                    linewidth=2.5 if run.single else 1.2,
                    color=colours[label],
                )
                legend.setdefault(label, line)
        ax.set_title(f"{task} {metric} ({'higher' if sign > 0 else 'lower'} is better)")
        ax.set_xlabel("train step")
    fig.legend(list(legend.values()), list(legend), loc="center right", fontsize=8)
    title = fig.suptitle(f"Validation metrics during training (mean over seeds); {budget}")
    fig.tight_layout(rect=(0, 0, 0.84, 0.96))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [title.get_text(), *(ax.get_title() for ax in axes.flat)]


def plot_train_losses(losses: dict, runs: list[Run], path: str, budget: str) -> list[str]:
    """Per task, the train loss of its single-task networks and of the baseline (mean over
    seeds): the budget is long enough if these have flattened. (MTI-Net's and PAD-Net's task
    losses also hold their intermediate terms, so they are not drawn here.)"""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    for ax, task in zip(axes.flat, TASKS, strict=True):
        key = f"loss/{task}"
        for name in (f"single_{task}", "baseline", f"resnet_single_{task}", "mtan"):
            if name in losses:
                steps, values = _mean_curve(losses[name], key)
                if steps:
                    ax.plot(steps, values, "--" if "resnet" in name or name == "mtan" else "-",
                            label=name)
        ax.set_yscale("log")
        ax.set_title(f"{task}: train loss (unweighted)")
        ax.set_xlabel("train step")
        if ax.get_lines():
            ax.legend(fontsize=8)
    title = fig.suptitle(f"Train loss curves, mean over seeds; {budget}")
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [title.get_text(), *(ax.get_title() for ax in axes.flat)]


def budget_text(scale: str, seeds: int) -> str:
    b = SCALES[scale]
    return (f"scale {scale}: {b['steps']} steps of batch {b['batch']} at {b['size']}, "
            f"eval on {b['eval_split']}, {seeds} seeds")


def report(out: str, runs: list[Run], seeds: int, scale: str, log=print) -> dict:
    """Writes results.json, results.md and the PNG plots into `out`; returns the numbers."""
    steps = SCALES[scale]["steps"]
    numbers = aggregate(out, runs, seeds, steps)
    budget = budget_text(scale, seeds)
    numbers["budget"] = dict(SCALES[scale], scale=scale, seeds=seeds, text=budget)
    numbers["runs"] = {r.name: list(r.overrides) for r in runs}
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(numbers, f, indent=1, sort_keys=True, allow_nan=True)
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(markdown(numbers["summary"], runs, budget))
    numbers["plots"] = {
        "delta_m.png": plot_delta_m(numbers["summary"], runs, os.path.join(out, "delta_m.png"),
                                    budget),
        "eval_curves.png": plot_eval_curves(
            numbers["eval_history"], runs, os.path.join(out, "eval_curves.png"), budget
        ),
        "train_loss.png": plot_train_losses(
            numbers["train_losses"], runs, os.path.join(out, "train_loss.png"), budget
        ),
    }
    log(f"Wrote {out}/results.json, results.md, delta_m.png, eval_curves.png, train_loss.png.")
    return numbers


# ------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="output folder (runs under <out>/runs)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--scale", choices=sorted(SCALES), default="cpu")
    parser.add_argument("--only", default=None, help="fnmatch pattern(s) of run names, a,b")
    parser.add_argument("--report", action="store_true", help="only aggregate what exists")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.jobs < 1:
        parser.error("--seeds and --jobs must be at least 1.")
    os.makedirs(args.out, exist_ok=True)
    runs = all_runs(args.scale)

    from absl import flags, logging

    flags.FLAGS.mark_as_parsed()  # argparse parses this command line, not absl
    logging.use_absl_handler()  # timestamped lines on stderr, as train.py's
    logging.set_verbosity(logging.INFO)
    log = logging.info

    if not args.report:
        chosen = runs
        if args.only:
            patterns = args.only.split(",")
            chosen = [r for r in runs if any(fnmatch.fnmatch(r.name, p) for p in patterns)]
            if not chosen:
                parser.error(f"--only {args.only!r} matches no run; runs: "
                             f"{', '.join(r.name for r in runs)}.")
        jobs = plan(args.out, chosen, args.seeds, SCALES[args.scale]["steps"])
        # Runs a chosen run starts from join the plan (they are skipped if finished).
        names = {r.name for r in chosen}
        extra = [r for r in runs if r.name not in names
                 and any(r.name in c.needs for c in chosen)]
        if extra:
            jobs = plan(args.out, extra + chosen, args.seeds, SCALES[args.scale]["steps"])
        log(f"{len(jobs)} runs ({len(chosen + extra)} models x {args.seeds} seeds), "
            f"{budget_text(args.scale, args.seeds)}, {args.jobs} at once.")
        execute(args.out, jobs, args.scale, args.jobs, log)
        failed = [f"{j.run.name}/seed_{j.seed}" for j in jobs if j.status in ("failed", "skipped")]
        if failed:
            log(f"Not finished: {', '.join(failed)} (see their train.log).")
    report(args.out, runs, args.seeds, args.scale, log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
