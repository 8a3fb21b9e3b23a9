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
