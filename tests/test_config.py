"""Config files, launch strings and command-line overrides."""

import ast
import glob
import importlib
import os
import re
import subprocess
import sys

import ml_collections
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


# ---------------------------------------------------------------------------------------------
# One default per field (configs/default.py), and every field settable from the command line.
def leaves(config, prefix=""):
    """(dotted key, field type, value) of every leaf field of `config`, sections walked."""
    for key in config.keys():
        value = config[key]
        if isinstance(value, ml_collections.ConfigDict):
            yield from leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", config.get_type(key), value


def another_value(key: str, kind: type, current):
    """A value of the field's type that differs from `current` (None included)."""
    if kind is bool:
        return not current
    if kind is int:
        return 7 if current is None else current + 1
    if kind is float:
        return 0.25 if current is None else current * 2 + 0.5
    if kind is str:
        return "other" if current is None else f"{current}_other"
    if kind is tuple:  # image sizes when None, task names otherwise
        return (64, 96) if current is None else ("depth", "semseg")
    if kind is object:
        return {"semseg": "/runs/semseg"}
    raise AssertionError(f"config.{key}: no test value for a field of type {kind.__name__}")


def default_leaves():
    return [(key, another_value(key, kind, value)) for key, kind, value in leaves(default_config())]


def test_every_field_of_the_default_config_can_be_set_with_a_flag():
    """`--config.<field>=<value>` (train.py's ml_collections flags) sets every leaf field of
    configs/default.py, None placeholders, tuples, `object` fields and the weighting registry's
    sub-sections included, to a value of its type."""
    fields = default_leaves()
    assert len(fields) > 60  # the walk reaches the sub-sections

    def text(value):
        return str(value).lower() if isinstance(value, bool) else str(value)

    config = parse("--config=configs/default.py", *(f"--config.{k}={text(v)}" for k, v in fields))
    wrong = [(k, v, config_utils._field(config, k)) for k, v in fields]
    assert [w for w in wrong if w[1] != w[2]] == []


def test_every_field_of_the_default_config_can_be_set_in_the_launch_string():
    """`--config=configs/default.py:<field>=<value>,...` sets every leaf field as well (tuples
    as `a+b`), and `None` sets any field back to None."""
    fields = default_leaves()

    def text(value):
        return "+".join(map(str, value)) if isinstance(value, tuple) else str(value)

    config = default_config(",".join(f"{k}={text(v)}" for k, v in fields))
    wrong = [(k, v, config_utils._field(config, k)) for k, v in fields]
    assert [w for w in wrong if w[1] != w[2]] == []
    config = default_config("num_train_steps=None,num_train_epochs=2,dataset.config=None")
    got = (config.num_train_steps, config.num_train_epochs, config.dataset.config)
    assert got == (None, 2, None)
    assert config.get_type("num_train_steps") is int  # still settable afterwards


def config_files():
    """(name, config) of every config file's default, a few launch-string variants, and the
    results table's config."""
    for path in sorted(glob.glob(os.path.join(ROOT, "configs", "**", "*.py"), recursive=True)):
        name = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".").removesuffix(".__init__")
        module = importlib.import_module(name)
        if hasattr(module, "get_config"):
            yield name, module.get_config()
    for name, arg in VARIANTS:
        yield f"{name}:{arg}", importlib.import_module(name).get_config(arg)
    results = os.path.join(ROOT, "benchmarks", "results.py")
    yield "benchmarks/results.py", config_utils.load_config(results)


VARIANTS = [
    ("configs.nyud.mti_net", "aux=edge+normals"),
    ("configs.pascal.semseg", "backbone=resnet18"),
    ("configs.nyuv2.segnet_single", "task=depth,aug=True"),
    ("configs.nyuv2.segnet_split", "type=wide,weighting=dwa"),
]


def test_every_config_has_exactly_the_fields_of_the_default_with_their_types():
    """Configs override fields of configs/default.py and never replace a section: every config
    has the same fields, each of the default's type (a field set to None keeps its type, so the
    command line can set it again). Only the fixed loss weights are keyed by each config's
    tasks."""
    per_task = "weighting.fixed.weights."
    expected = {k: t for k, t, _ in leaves(default_config()) if not k.startswith(per_task)}
    for name, config in config_files():
        got = {k: t for k, t, _ in leaves(config) if not k.startswith(per_task)}
        assert sorted(set(got) ^ set(expected)) == [], name
        assert {k: t for k, t in got.items() if t is not expected[k]} == {}, name


# Receivers whose `.get(...)` reads the experiment config: `config`, `self.config`,
# `dataset_config`, `cfg`, `config.model`, ... (a name of the chain ends in config or cfg).
_CONFIG_NAME = re.compile(r"(^|_)(config|cfg)$")


def config_default_reads(source: str) -> list[str]:
    """The `<config>.get(key, ...)` and `getattr(<config>, key, default)` calls in `source`:
    a default that competes with configs/default.py's."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "get":
            receiver = func.value
        elif isinstance(func, ast.Name) and func.id == "getattr" and len(node.args) == 3:
            receiver = node.args[0]
        else:
            continue
        names = []
        while isinstance(receiver, ast.Attribute):
            names.append(receiver.attr)
            receiver = receiver.value
        if isinstance(receiver, ast.Name):
            names.append(receiver.id)
        if any(_CONFIG_NAME.search(name) for name in names):
            found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def test_the_scan_finds_config_reads_with_a_default():
    source = (
        "a = config.get('aux_tasks', ())\n"
        "b = self.config.model.get('head_width', 0)\n"
        "c = dataset_config.get('data_dir')\n"
        "d = getattr(config.eval, 'edge_max_dist', None)\n"
        "e = MAX_DIST.get(name, 1)\n"
        "f = config.model.head_width\n"
    )
    assert [r.split(":")[0] for r in config_default_reads(source)] == ["1", "2", "3", "4"]


def test_the_library_reads_config_fields_without_defaults():
    """Every field has its one default in configs/default.py (or the weighting registry): the
    library reads `config.x`, never `config.get("x", default)`."""
    found = []
    for path in sorted(glob.glob(os.path.join(ROOT, "mtnets", "**", "*.py"), recursive=True)):
        with open(path, encoding="utf-8") as f:
            found += [f"{os.path.relpath(path, ROOT)}:{r}" for r in config_default_reads(f.read())]
    assert found == [], "Read these fields as config.x; their default is configs/default.py's."


def config_attribute_reads(source: str) -> list[tuple[int, tuple[str, ...]]]:
    """(line, names) of each `config.a.b` / `self.config.a.b` chain in `source`, longest only."""
    tree = ast.parse(source)
    inner = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    reads = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or id(node) in inner:
            continue
        names, root = [], node
        while isinstance(root, ast.Attribute):
            names.insert(0, root.attr)
            root = root.value
        if isinstance(root, ast.Name) and root.id == "self" and names[:1] == ["config"]:
            names = names[1:]
        elif not (isinstance(root, ast.Name) and root.id == "config"):
            continue
        reads.append((node.lineno, tuple(names)))
    return reads


def test_every_field_the_library_reads_is_in_the_default_config():
    """Each `config.a.b` the library reads is a field of configs/default.py (ConfigDict methods
    and the attributes of a leaf value aside). The dataset builders' `config` is TFDS's."""
    default, methods = default_config(), set(dir(ml_collections.ConfigDict))
    missing = []
    for path in sorted(glob.glob(os.path.join(ROOT, "mtnets", "**", "*.py"), recursive=True)):
        if os.sep + "builders" + os.sep in path:
            continue
        with open(path, encoding="utf-8") as f:
            reads = config_attribute_reads(f.read())
        for line, names in reads:
            node = default
            for i, name in enumerate(names):
                if not isinstance(node, ml_collections.ConfigDict) or name in methods:
                    break
                if name not in node:
                    where = f"{os.path.relpath(path, ROOT)}:{line}"
                    missing.append(f"{where}: config.{'.'.join(names[: i + 1])}")
                    break
                node = node[name]
    assert missing == [], "Fields read by the library without a default in configs/default.py."
