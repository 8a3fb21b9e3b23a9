"""Launch strings and early checks for experiment configs.

`get_config(arg)` in every config file takes an optional `key=value,key=value` string (the part
after `:` in `--config=configs/x.py:key=value`), applied here with the types of the defaults.
`validate(config)` checks the names a config refers to before anything is built or compiled.
`resolve_durations(config, examples_per_epoch)` turns durations given in epochs into steps from
the number of training examples the run really sees.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections

from mtnets import tasks as tasks_lib
from mtnets.models import registry as model_registry
from mtnets.weighting import registry as weighting_registry


def apply_overrides(config: ml_collections.ConfigDict, arg: str | None):
    """Applies `a=1,model.backbone=resnet18,tasks=semseg+depth` to `config`, in place.

    Each value is read as its field's type (`ConfigDict.get_type`, which placeholders keep
    while None): text for a str field, a Python literal for numbers, booleans (`true` too) and
    `object` fields, and `a+b+c` for a tuple (each item a literal where it is one:
    `dataset.image_size=64+96`). `None` sets any field to None. Unknown keys raise KeyError.
    """
    if not arg:
        return config
    for item in arg.split(","):
        key, sep, text = item.partition("=")
        if not sep:
            raise ValueError(f"Config argument {item!r} is not of the form key=value.")
        node, leaf = _parent(config, key.strip(), f"config argument {arg!r}")
        node[leaf] = _parse(text.strip(), node.get_type(leaf))
    return config


def set_fields(config: ml_collections.ConfigDict, fields: Mapping[str, Any]):
    """Sets `{"model.name": "mtan", "tasks": ("semseg",)}` on `config`, in place: the Python
    twin of `apply_overrides` (tests, scripts). Unknown keys raise KeyError."""
    for key, value in fields.items():
        node, leaf = _parent(config, key, "set_fields")
        node[leaf] = value
    return config


def _parent(config, key: str, where: str):
    """(section, leaf) of the dotted `key`; a KeyError that names the key if it is unknown."""
    parent, _, leaf = key.rpartition(".")
    node = config
    for part in filter(None, parent.split(".")):
        if not isinstance(node, ml_collections.ConfigDict) or part not in node:
            raise KeyError(f"Unknown config key {key!r} in {where}.")
        node = node[part]
    if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
        raise KeyError(f"Unknown config key {key!r} in {where}.")
    return node, leaf


def _parse(text: str, kind: type):
    if text == "None":
        return None
    if kind is tuple:
        return tuple(_literal(part) for part in text.split("+") if part)
    if kind is str:
        return _literal(text) if text[:1] in "'\"" else text
    if kind is bool and text in ("true", "false"):
        return text == "true"
    value = _literal(text)
    if kind is float and type(value) is int:  # `learning_rate=1` is 1.0
        return float(value)
    return value


def _literal(text: str):
    """`text` as a Python literal (number, boolean, quoted string, ...), else the text."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def validate(config) -> None:
    """Fails early, with the offending field named, on configs that cannot run."""
    for name in (*config.tasks, *config.aux_tasks):
        tasks_lib.task_spec(name, config.dataset.name)
    if not config.tasks:
        raise ValueError("config.tasks is empty.")
    model_registry.model_info(config.model.name)  # a known model
    for field in ("batch_size", "log_every_steps"):
        if config[field] <= 0:
            raise ValueError(f"config.{field} must be positive, got {config[field]}.")
    for steps, epochs in DURATIONS:
        if steps == "schedule.step_size" and config.schedule.name != "step":
            continue
        _check_duration(config, steps, epochs)
    weighting_registry.check_config(config)  # names, sub-sections and fields
    if config.dtype not in ("float32", "bfloat16"):
        raise ValueError(f"config.dtype must be 'float32' or 'bfloat16', got {config.dtype!r}.")
    if any(config.model.single_task_checkpoints.values()):
        from mtnets.train.warm_start import checkpoint_paths

        checkpoint_paths(config)  # model and task names; Experiment.initial_state reads the files


# Durations that a config states in steps or in epochs: exactly one of each pair is set.
DURATIONS = (
    ("num_train_steps", "num_train_epochs"),
    ("eval_every_steps", "eval_every_epochs"),
    ("checkpoint_every_steps", "checkpoint_every_epochs"),
    ("schedule.step_size", "schedule.step_size_epochs"),
)


def _field(config, dotted: str):
    for part in dotted.split("."):
        config = config[part]
    return config


def _check_duration(config, steps: str, epochs: str) -> None:
    values = {name: _field(config, name) for name in (steps, epochs)}
    given = {name: value for name, value in values.items() if value is not None}
    if len(given) != 1:
        shown = ", ".join(f"config.{k}={v}" for k, v in values.items())
        raise ValueError(
            f"Set exactly one of config.{steps} and config.{epochs} (the other None); got {shown}."
        )
    ((name, value),) = given.items()
    if value <= 0:
        raise ValueError(f"config.{name} must be positive, got {value}.")


def steps_per_epoch(examples: int, batch_size: int) -> int:
    """Optimizer steps per epoch: the full global batches in `examples` (at least 1).

    The training stream runs epochs end to end and batches across their boundary, so over
    many epochs a step is `batch_size / examples` of an epoch on average; the floor makes the
    step count of an epoch-based config the one of a loader that drops the incomplete batch.
    """
    return max(1, examples // batch_size)


def resolve_durations(config, examples_per_epoch: int) -> ml_collections.ConfigDict:
    """A copy of `config` whose durations are all steps: each `*_epochs` field that is set
    becomes its step twin, `round(epochs * steps_per_epoch)` (at least 1), and None.

    `examples_per_epoch` is what the training stream reads per epoch (the split's size, or the
    images that pass the human-parts filter), so the config and the dataset cannot disagree.
    """
    resolved = config.copy_and_resolve_references()
    per_epoch = steps_per_epoch(examples_per_epoch, config.batch_size)
    for steps, epochs in DURATIONS:
        count = _field(config, epochs)
        if count is None:
            continue
        _set(resolved, steps, max(1, math.floor(count * per_epoch + 0.5)))
        _set(resolved, epochs, None)
    return resolved


def _set(config, dotted: str, value) -> None:
    parent, _, leaf = dotted.rpartition(".")
    (_field(config, parent) if parent else config)[leaf] = value


def load_config(path: str, arg: str | None = None):
    """`get_config(arg)` of the config file at `path`, without absl flags (for scripts)."""
    import importlib.util
    import os
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if root not in sys.path:  # config files import `configs.default`
        sys.path.insert(0, root)
    spec = importlib.util.spec_from_file_location("_mtnets_config", path)
    if spec is None or not os.path.exists(path):
        raise FileNotFoundError(f"No config file {path}.")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


def checkpoints_field(tasks: Sequence[str] = tasks_lib.TASKS) -> ml_collections.ConfigDict:
    """The config field: `{task: None}` for `tasks`, so that a launch string or flag can set
    one (`--config.model.single_task_checkpoints.semseg=/runs/semseg`). None: from scratch."""
    return ml_collections.ConfigDict(
        {task: ml_collections.config_dict.placeholder(str) for task in tasks}
    )
