"""The train-step benchmark runs (at tiny shapes on a CPU) and reports sane figures."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_train_step_benchmark_small_runs_without_tensorflow(tmp_path):
    out = tmp_path / "result.json"
    code = (
        "import sys, runpy, json\n"
        "sys.argv = ['train_step.py', '--small', '--config', 'configs/synthetic/tiny.py',"
        f" '--json', {str(out)!r}]\n"
        "runpy.run_path('benchmarks/train_step.py', run_name='__main__')\n"
        "assert not [m for m in sys.modules if m.split('.')[0] == 'tensorflow'], 'TF imported'\n"
    )
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, env=env, timeout=600)
    import json

    result = json.loads(out.read_text())
    assert result["batch"] == 2 and result["size"] == [64, 96]
    assert result["images_per_s"] > 0 and result["compile_s"] > 0
    assert result["tflop_per_step"] > 0
    # The benchmark restarted itself as train.py does (mtnets.host_memory), where it can.
    from mtnets import host_memory

    if host_memory.supported() and "GLIBC_TUNABLES" not in os.environ:
        assert result["glibc_tunables"] == "glibc.malloc.hugetlb=1"
    rate = result["tflop_per_step"] * result["images_per_s"] / result["batch"]
    assert abs(result["achieved_tflop_per_s"] - rate) <= 1e-9 + 1e-6 * rate


def test_edge_benchmark_benchmark_runs_at_tiny_sizes(tmp_path):
    out = tmp_path / "edge.json"
    command = [sys.executable, "benchmarks/edge_benchmark.py", "--sizes", "24x32"]
    command += ["--images", "3", "--set-images", "3", "--workers", "2", "--json", str(out)]
    subprocess.run(command, cwd=ROOT, check=True, timeout=300)
    import json

    result = json.loads(out.read_text())["24x32"]
    paired, whole = result["paired"], result["whole_set"]
    assert paired["identical"] and len(paired["old_s"]) == len(paired["new_s"]) == 3
    ratio = sum(paired["old_s"]) / sum(paired["new_s"])
    assert abs(paired["speedup_per_core"] - ratio) <= 1e-9 * ratio
    assert whole["workers"] == 2 and whole["images"] == 3
    assert abs(whole["images_per_s"] - 3 / whole["wall_s"]) <= 1e-9 * whole["images_per_s"]


def _load(path):
    """A benchmark or script module by file path (they are not packages)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pytorch_reference_alternates_and_pairs_windows_of_one_round():
    """The comparison harness imports without torch or JAX; it alternates which side goes
    first and takes the median of the per-round ratios (not the ratio of the medians)."""
    import statistics

    import pytest

    before = set(sys.modules)
    ref = _load(os.path.join(ROOT, "benchmarks", "pytorch_reference.py"))
    assert not {m.split(".")[0] for m in set(sys.modules) - before} & {"torch", "jax"}

    orders = [ref.window_order(i) for i in range(6)]
    assert all(sorted(o) == ["mtnets", "reference"] for o in orders)
    assert [o[0] for o in orders].count("mtnets") == 3
    assert all(orders[i] != orders[i + 1] for i in range(5))

    # Load rises in round 2: both sides slow down together, so the pairs keep the ratio.
    ours, theirs = [1.0, 0.5, 1.2, 1.1], [2.0, 0.8, 2.0, 1.0]
    rounds = [{"mtnets": a, "reference": b} for a, b in zip(ours, theirs, strict=True)]
    summary = ref.summarize(rounds)
    want = [a / b for a, b in zip(ours, theirs, strict=True)]
    assert summary["ratios"] == pytest.approx(want)
    assert summary["median_ratio"] == pytest.approx(statistics.median(want))
    assert summary["median_ratio"] != pytest.approx(
        statistics.median(ours) / statistics.median(theirs)
    )
    assert summary["mtnets_median"] == statistics.median(ours)
    # The same on the CPU-time rates, under their own names.
    cpu = [
        {"mtnets_per_cpu_s": a, "reference_per_cpu_s": b} for a, b in zip(ours, theirs, strict=True)
    ]
    by_cpu = ref.summarize(cpu, "_per_cpu_s")
    assert by_cpu["median_ratio_per_cpu_s"] == pytest.approx(statistics.median(want))
    assert by_cpu["reference_per_cpu_s_median"] == statistics.median(theirs)
    with pytest.raises(ValueError, match="no rounds"):
        ref.summarize([])
    with pytest.raises(ValueError, match="round 1 has reference=0"):
        ref.summarize([{"mtnets": 1, "reference": 1}, {"mtnets": 1, "reference": 0}])


def test_pytorch_reference_command_line():
    import pytest

    ref = _load(os.path.join(ROOT, "benchmarks", "pytorch_reference.py"))
    args = ref.parse_args(["reference", "--reference", "/x", "--size", "96x128"])
    assert args.size == (96, 128) and args.batch == 2 and args.threads == os.cpu_count()
    with pytest.raises(SystemExit):  # compare needs the torch Python
        ref.parse_args(["compare", "--reference", "/x"])
    with pytest.raises(SystemExit):
        ref.parse_args(["reference", "--reference", "/x", "--size", "96"])
    assert args.reference_malloc == "same"
    compare = ["compare", "--reference", "/x", "--torch-python", "/p"]
    assert ref.parse_args([*compare, "--reference-malloc", "default"]).reference_malloc == "default"


def test_pytorch_reference_runs_the_reference_when_available(tmp_path):
    """With torch and an MTL checkout (MTNETS_MTL_REFERENCE), one tiny timed window."""
    import json

    import pytest

    checkout = os.environ.get("MTNETS_MTL_REFERENCE")
    pytest.importorskip("torch")
    if not checkout:
        pytest.skip("MTNETS_MTL_REFERENCE (an MTL checkout) is not set")
    out = tmp_path / "ref.json"
    command = [sys.executable, "benchmarks/pytorch_reference.py", "reference"]
    command += ["--reference", checkout, "--size", "64x64", "--warmup", "0", "--windows", "1"]
    command += ["--steps", "1", "--json", str(out)]
    subprocess.run(command, cwd=ROOT, check=True, timeout=600)
    result = json.loads(out.read_text())
    assert result["parameters"] == 14_838_121  # docs/porting.md, MTI-Net +edge+normals
    assert result["images_per_s"] > 0
