"""Config files, launch strings and command-line overrides."""

import os
import subprocess
import sys

import pytest
from absl import flags
from ml_collections import config_flags

from configs.default import get_config as default_config
from mtnets import config_utils

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse(*args):
    """Parses a command line as train.py does (config_flags reads overrides from sys.argv)."""
    argv = ["train.py", *args]
    values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, flag_values=values, lock_config=True)
    saved, sys.argv = sys.argv, argv
    try:
        values(argv)
    finally:
        sys.argv = saved
    return values.config


def test_command_line_overrides_fields_with_their_types():
    config = parse(
        "--config=configs/default.py",
        "--config.batch_size=4",
        "--config.model.backbone=resnet18",
        "--config.optimizer.learning_rate=0.5",
    )
    assert config.batch_size == 4
    assert config.model.backbone == "resnet18"
    assert config.optimizer.learning_rate == 0.5


def test_unknown_key_on_the_command_line_is_an_error():
    # ml_collections names the key and suggests the closest one.
    with pytest.raises(AttributeError, match='batch_sizee(.|\n)*Did you mean "batch_size"'):
        parse("--config=configs/default.py", "--config.batch_sizee=4")


def test_launch_string_overrides():
    config = default_config(
        "batch_size=4,tasks=semseg+depth,model.backbone=resnet18," "optimizer.learning_rate=1"
    )
    assert config.batch_size == 4
    assert config.tasks == ("semseg", "depth")
    assert config.model.backbone == "resnet18"
    assert config.optimizer.learning_rate == 1.0 and isinstance(
        config.optimizer.learning_rate, float
    )


def test_launch_string_unknown_key_is_an_error():
    with pytest.raises(KeyError, match="batchsize"):
        default_config("batchsize=4")


def test_validate_names_the_bad_field():
    config = default_config()
    config.tasks = ("semseg", "surface")
    with pytest.raises(ValueError, match="surface"):
        config_utils.validate(config)
    config = default_config()
    config.dataset.name = "nyud_mt"
    config.tasks = ("semseg", "sal")
    with pytest.raises(ValueError, match="nyud_mt.*sal"):
        config_utils.validate(config)
    config = default_config()
    config.num_train_steps = 0
    with pytest.raises(ValueError, match="num_train_steps"):
        config_utils.validate(config)


def test_train_py_rejects_an_unknown_key_before_training(tmp_path):
    command = [
        sys.executable,
        "train.py",
        "--config=configs/synthetic/tiny.py",
        "--config.batch_sizee=4",
        f"--workdir={tmp_path}",
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "batch_sizee" in result.stderr
    assert not os.listdir(tmp_path)


def test_configs_load_no_jax():
    """The config layer imports only ml_collections (and config helpers that need nothing
    heavier): building every config file's default config loads no JAX, Flax, optax,
    TensorFlow or orbax, so reading or checking a config takes a fraction of a second."""
    code = (
        "import glob, importlib, sys\n"
        "for path in sorted(glob.glob('configs/**/*.py', recursive=True)):\n"
        "    name = path[:-3].replace('/', '.').removesuffix('.__init__')\n"
        "    module = importlib.import_module(name)\n"
        "    if hasattr(module, 'get_config'):\n"
        "        module.get_config()\n"
        "heavy = ('jax', 'flax', 'optax', 'tensorflow', 'orbax')\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in heavy)\n"
        "assert not loaded, loaded[:5]\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root, timeout=120)
