"""`--import`: the entry points import the user's modules, which register what they define."""

import os
import subprocess
import sys

import pytest

from mtnets import plugins
from mtnets.tasks import TASKS, get_task

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PLUGIN = """
from mtnets.tasks import DepthTask, register_task

register_task(DepthTask("plugin_depth", field="depth"), replace=True)
"""


def test_an_imported_module_registers_its_task(tmp_path, monkeypatch):
    (tmp_path / "mtnets_test_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        plugins.import_modules(["mtnets_test_plugin"])
        task = get_task("plugin_depth")
        assert task.field == "depth" and task.kind == get_task("depth").kind
    finally:
        TASKS.pop("plugin_depth", None)
        sys.modules.pop("mtnets_test_plugin", None)


def test_a_module_that_does_not_import_is_named():
    with pytest.raises(ImportError, match=r"--import=mtnets_no_such_module"):
        plugins.import_modules(["mtnets_no_such_module"])


def test_train_py_takes_the_flag_and_fails_before_building_anything(tmp_path):
    workdir = tmp_path / "run"
    done = subprocess.run(
        [
            sys.executable,
            "train.py",
            "--config=configs/default.py",
            f"--workdir={workdir}",
            "--import=mtnets_no_such_module",
            "--jax_cache_dir=none",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0
    assert "--import=mtnets_no_such_module" in done.stderr
    assert not workdir.exists()
