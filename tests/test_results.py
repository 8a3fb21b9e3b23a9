"""benchmarks/results.py without training: the plan (skip, resume, dependencies), the
aggregation (mean, std, Delta_m against hand-computed values), the table and the plots, on
fake run directories with made-up eval JSON files and train logs."""

import importlib.util
import json
import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location(
    "results_script", os.path.join(ROOT, "benchmarks", "results.py")
)
results = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(results)

Run = results.Run
STEPS = results.SCALES["smoke"]["steps"]
SINGLES = [Run(f"single_{t}", (f"tasks={t}",), "hrnet", tasks=(t,)) for t in results.TASKS]
BASELINE = Run("baseline", ("model.name=multi_task_baseline",), "hrnet")
# Made-up final metrics: single-task networks (two seeds) and the baseline (two seeds).
SINGLE_VALUES = {
    "semseg/mIoU": (0.50, 0.60),
    "depth/rmse": (1.00, 1.20),
    "normals/mean": (20.0, 22.0),
    "edge/odsF": (0.40, 0.44),
    "sal/mIoU": (0.70, 0.72),
    "sal/maxF": (0.80, 0.82),
    "human_parts/mIoU": (0.30, 0.34),
}
BASELINE_VALUES = {
    "semseg/mIoU": (0.54, 0.58),
    "depth/rmse": (1.21, 1.10),
    "normals/mean": (23.1, 21.0),
    "edge/odsF": (0.41, 0.40),
    "sal/mIoU": (0.69, 0.75),
    "sal/maxF": (0.79, 0.83),
    "human_parts/mIoU": (0.35, 0.30),
}
SIGNS = {"semseg": 1, "depth": -1, "normals": -1, "edge": 1, "sal": 1, "human_parts": 1}
DELTA_KEYS = {
    "semseg": "semseg/mIoU",
    "depth": "depth/rmse",
    "normals": "normals/mean",
    "edge": "edge/odsF",
    "sal": "sal/mIoU",
    "human_parts": "human_parts/mIoU",
}


def write_eval(directory, step, values):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, f"eval_{step}.json"), "w") as f:
        json.dump({"step": step, **values}, f)


def fake_table(out):
    """Eval JSONs at steps 2 and STEPS (the final one) and a train log for every run."""
    for seed in range(2):
        for run in SINGLES:
            task = run.tasks[0]
            values = {k: v[seed] for k, v in SINGLE_VALUES.items() if k.startswith(task + "/")}
            directory = results.workdir(out, run, seed)
            write_eval(directory, STEPS, values)
            write_eval(directory, 2, {k: v * 0.5 for k, v in values.items()})
        directory = results.workdir(out, BASELINE, seed)
        write_eval(directory, STEPS, {k: v[seed] for k, v in BASELINE_VALUES.items()})
        write_eval(directory, 2, {"semseg/mIoU": 0.1 * (seed + 1)})
        with open(os.path.join(directory, "train.log"), "w") as f:
            for step in (2, 4):
                tasks = ", ".join(f"{t} {1.0 / step + seed:.4f}" for t in results.TASKS)
                f.write(f"I1203 loop.py:1] step {step}: loss {6.0 / step:.4f} ({tasks})\n")


# ------------------------------------------------------------------------------------------
def test_aggregation_matches_hand_computed_mean_std_and_delta_m(tmp_path):
    out = str(tmp_path)
    fake_table(out)
    numbers = results.aggregate(out, [*SINGLES, BASELINE], seeds=2, steps=STEPS)
    refs = {k: np.mean(v) for k, v in SINGLE_VALUES.items()}
    expected = [
        100.0
        / 6
        * sum(
            SIGNS[t] * (BASELINE_VALUES[k][seed] - refs[k]) / refs[k] for t, k in DELTA_KEYS.items()
        )
        for seed in range(2)
    ]
    summary = numbers["summary"]["baseline"]
    assert summary["delta_m"]["n"] == 2
    np.testing.assert_allclose(summary["delta_m"]["mean"], np.mean(expected), rtol=1e-9)
    np.testing.assert_allclose(summary["delta_m"]["std"], np.std(expected, ddof=1), rtol=1e-9)
    for key, values in BASELINE_VALUES.items():
        np.testing.assert_allclose(summary[key]["mean"], np.mean(values), rtol=1e-12)
        np.testing.assert_allclose(summary[key]["std"], np.std(values, ddof=1), rtol=1e-9)
    # The single-task networks as one model: Delta_m of each seed against the seed mean.
    singles = numbers["summary"]["single_task_hrnet"]
    per_seed = [
        100.0
        / 6
        * sum(SIGNS[t] * (SINGLE_VALUES[k][s] - refs[k]) / refs[k] for t, k in DELTA_KEYS.items())
        for s in range(2)
    ]
    np.testing.assert_allclose(singles["delta_m"]["mean"], np.mean(per_seed), atol=1e-9)
    np.testing.assert_allclose(singles["delta_m"]["std"], np.std(per_seed, ddof=1), rtol=1e-9)
    assert numbers["references"]["hrnet"]["depth/rmse"] == pytest.approx(1.1)
    # Every eval step is kept for the curves; the train losses are read from the log.
    assert sorted(numbers["eval_history"]["baseline"][1]) == [2, STEPS]
    assert numbers["train_losses"]["baseline"][1][4]["loss/depth"] == pytest.approx(1.25)


def test_mean_std_of_one_value_and_of_none():
    assert results.mean_std([2.0]) == {"mean": 2.0, "std": 0.0, "n": 1}
    assert results.mean_std([None, float("nan")])["n"] == 0
    stats = results.mean_std([1.0, 2.0, 4.0])
    assert stats["std"] == pytest.approx(np.std([1.0, 2.0, 4.0], ddof=1))


def test_delta_m_is_left_out_when_a_metric_is_missing(tmp_path):
    out = str(tmp_path)
    fake_table(out)
    path = os.path.join(results.workdir(out, BASELINE, 1), f"eval_{STEPS}.json")
    with open(path) as f:
        table = json.load(f)
    del table["edge/odsF"]  # a final evaluation without the edge benchmark
    with open(path, "w") as f:
        json.dump(table, f)
    summary = results.aggregate(out, [*SINGLES, BASELINE], 2, STEPS)["summary"]["baseline"]
    assert summary["delta_m"]["n"] == 1 and summary["semseg/mIoU"]["n"] == 2


def test_report_writes_json_table_and_titled_plots(tmp_path):
    out = str(tmp_path)
    fake_table(out)
    runs = [*SINGLES, BASELINE]
    numbers = results.report(out, runs, seeds=2, scale="smoke", log=lambda m: None)
    with open(os.path.join(out, "results.json")) as f:
        stored = json.load(f)
    assert stored["summary"]["baseline"]["delta_m"]["mean"] == pytest.approx(
        numbers["summary"]["baseline"]["delta_m"]["mean"]
    )
    assert stored["budget"]["steps"] == STEPS and stored["budget"]["seeds"] == 2
    table = open(os.path.join(out, "results.md")).read()
    row = next(line for line in table.splitlines() if line.startswith("| baseline |"))
    semseg = BASELINE_VALUES["semseg/mIoU"]
    # mIoU in percent, mean ± sample std.
    expected = f"{100 * np.mean(semseg):.2f} ± {100 * np.std(semseg, ddof=1):.2f}"
    assert expected in row and row.split(" | ")[1] == "2"
    assert "Δm" in table.splitlines()[0]
    assert "| cross_stitch |" not in table  # only the runs given
    for name, titles in numbers["plots"].items():
        with open(os.path.join(out, name), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n", name
        assert titles and all(titles), (name, titles)
    assert "Δm" in numbers["plots"]["delta_m.png"][0]
    assert "semseg mIoU" in " ".join(numbers["plots"]["eval_curves.png"])


def test_read_train_losses_keeps_the_last_line_of_a_step(tmp_path):
    log = tmp_path / "train.log"
    log.write_text(
        "I loop.py] step 10: loss 3.5000 (semseg 1.0000, human_parts 2.5000)\n"
        "noise\n"
        "I loop.py] step 10: loss 3.0000 (semseg 1.0000, human_parts 2.0000)\n"
    )
    losses = results.read_train_losses(str(tmp_path))
    assert losses == {10: {"loss": 3.0, "loss/semseg": 1.0, "loss/human_parts": 2.0}}


# ------------------------------------------------------------------------------------------
# Scheduling, with a fake train.py that writes the final eval JSON (or fails).
FAKE_TRAIN = """
import json, os, sys
workdir, name, fail = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
with open(os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(workdir))), "calls.txt"),
          "a") as f:
    f.write(name + "\\n")
if fail:
    sys.exit(1)
with open(os.path.join(workdir, "eval_{steps}.json"), "w") as f:
    json.dump({{"step": {steps}}}, f)
"""


def fake_command(failing=()):
    def command(out, run, seed, scale):
        name = f"{run.name}/{seed}"
        code = FAKE_TRAIN.format(steps=STEPS)
        workdir = os.path.abspath(results.workdir(out, run, seed))
        return [sys.executable, "-c", code, workdir, name, "1" if name in failing else "0"]

    return command


def calls(out):
    path = os.path.join(out, "calls.txt")
    return open(path).read().split() if os.path.exists(path) else []


UNIT = Run("unit", (), "hrnet", needs=("single_semseg",))


def test_finished_runs_are_skipped_and_interrupted_ones_resume(tmp_path, monkeypatch):
    out = str(tmp_path)
    monkeypatch.setattr(results, "command", fake_command())
    runs = [SINGLES[0], BASELINE, UNIT]
    write_eval(results.workdir(out, BASELINE, 0), STEPS, {})  # finished
    os.makedirs(os.path.join(results.workdir(out, BASELINE, 1), "checkpoints", "2"))
    jobs = results.plan(out, runs, seeds=2, steps=STEPS)
    assert [j.status for j in jobs if j.run is BASELINE] == ["done", "pending"]
    messages = []
    results.execute(out, jobs, "smoke", num_jobs=2, log=messages.append, poll=0.01)
    assert all(j.status == "done" for j in jobs)
    assert sorted(calls(out)) == sorted(
        ["single_semseg/0", "single_semseg/1", "baseline/1", "unit/0", "unit/1"]
    )
    # The unit network starts after the single-task run it starts from.
    order = calls(out)
    assert order.index("unit/0") > order.index("single_semseg/0")
    assert any("baseline seed 1 (resuming)" in m for m in messages)
    cost = results.read_cost(results.workdir(out, UNIT, 1))
    assert cost["wall_s"] > 0 and cost["cpu_s"] > 0
    assert any(m.startswith("[5/5]") and "ETA" in m for m in messages)
    # A second call finds everything finished and runs nothing.
    jobs = results.plan(out, runs, seeds=2, steps=STEPS)
    assert all(j.status == "done" for j in jobs)


def test_a_failed_run_skips_the_runs_that_start_from_it(tmp_path, monkeypatch):
    out = str(tmp_path)
    monkeypatch.setattr(results, "command", fake_command(failing={"single_semseg/0"}))
    jobs = results.plan(out, [SINGLES[0], UNIT], seeds=2, steps=STEPS)
    results.execute(out, jobs, "smoke", num_jobs=1, log=lambda m: None, poll=0.01)
    status = {(j.run.name, j.seed): j.status for j in jobs}
    assert status == {
        ("single_semseg", 0): "failed",
        ("unit", 0): "skipped",
        ("single_semseg", 1): "done",
        ("unit", 1): "done",
    }
    assert "unit/0" not in calls(out)


# ------------------------------------------------------------------------------------------
def test_the_table_has_every_model_of_the_issue():
    names = [r.name for r in results.all_runs("cpu", weightings=results.WEIGHTINGS)]
    for name in (
        *(f"single_{t}" for t in results.TASKS),
        "baseline",
        "pad_net",
        "mti_net",
        "mti_net_no_fpm",
        "mti_net_one_scale",
        *(f"baseline_{w}" for w in ("equal", "dwa", "uncertainty", "gradnorm", "pcgrad", "rlw")),
        "baseline_famo",
        "mtan",
        "cross_stitch",
        "nddr_cnn",
    ):
        assert name in names
    assert len(names) == len(set(names))
    # Cross-stitch and NDDR-CNN start from the ResNet single-task runs of the same seed.
    run = next(r for r in results.all_runs("cpu", weightings=()) if r.name == "cross_stitch")
    argv = results.command("out", run, 2, "cpu")
    config_arg = argv[2]
    for task in results.TASKS:
        path = os.path.abspath(os.path.join("out", "runs", f"resnet_single_{task}", "seed_2"))
        assert f"model.single_task_checkpoints.{task}={path}" in config_arg
    assert argv[3] == f"--workdir={os.path.abspath('out/runs/cross_stitch/seed_2')}"


def test_weightings_are_those_mtnets_knows():
    from mtnets import weighting

    found = results.available_weightings()
    assert set(found) == set(results.WEIGHTINGS) & set(weighting.STRATEGIES)
    assert "famo" in found or "famo" not in weighting.STRATEGIES


def test_config_applies_the_budget_then_the_overrides():
    config = results.get_config("scale=smoke,seed=3,model.name=mtan,model.head_width=16")
    budget = results.SCALES["smoke"]
    assert config.num_train_steps == budget["steps"] and config.batch_size == budget["batch"]
    assert config.eval_every_steps == budget["steps"] // 2
    assert config.dataset.eval_split == budget["eval_split"]
    assert config.seed == 3 and config.model.name == "mtan" and config.model.head_width == 16
    assert config.tasks == results.TASKS
    assert results.get_config().num_train_steps == results.SCALES["cpu"]["steps"]
    with pytest.raises(ValueError, match="unknown scale='huge'"):
        results.get_config("scale=huge")
