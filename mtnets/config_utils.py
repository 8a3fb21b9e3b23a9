"""Launch strings and early checks for experiment configs.

`get_config(arg)` in every config file takes an optional `key=value,key=value` string (the part
after `:` in `--config=configs/x.py:key=value`), applied here with the types of the defaults.
`validate(config)` checks the names a config refers to before anything is built or compiled.
"""

from __future__ import annotations

import ast

import ml_collections

from mtnets import tasks as tasks_lib
from mtnets.weighting import registry as weighting_registry


def apply_overrides(config: ml_collections.ConfigDict, arg: str | None):
    """Applies `a=1,model.backbone=resnet18,tasks=semseg+depth` to `config`, in place.

    Values are parsed as Python literals where they can be (numbers, booleans, None); a value
    with `+` for a tuple field is split into a tuple of strings. Unknown keys raise KeyError.
    """
    if not arg:
        return config
    for item in arg.split(","):
        key, sep, text = item.partition("=")
        if not sep:
            raise ValueError(f"Config argument {item!r} is not of the form key=value.")
        parent, _, leaf = key.strip().rpartition(".")
        node = config
        for part in filter(None, parent.split(".")):
            node = node[part]
        if leaf not in node:
            raise KeyError(f"Unknown config key {key!r} in config argument {arg!r}.")
        node[leaf] = _parse(text.strip(), node[leaf])
    return config


def _parse(text: str, current):
    if isinstance(current, tuple):
        return tuple(filter(None, text.split("+")))
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        value = text
    if isinstance(current, float) and isinstance(value, int):
        value = float(value)
    return value


def validate(config) -> None:
    """Fails early, with the offending field named, on configs that cannot run."""
    for name in (*config.tasks, *config.get("aux_tasks", ())):
        tasks_lib.task_spec(name, config.dataset.name)
    if not config.tasks:
        raise ValueError("config.tasks is empty.")
    for field in (
        "batch_size",
        "num_train_steps",
        "log_every_steps",
        "eval_every_steps",
        "checkpoint_every_steps",
    ):
        if config[field] <= 0:
            raise ValueError(f"config.{field} must be positive, got {config[field]}.")
    weighting_registry.check_config(config)  # names, sub-sections and fields
    if config.dtype not in ("float32", "bfloat16"):
        raise ValueError(f"config.dtype must be 'float32' or 'bfloat16', got {config.dtype!r}.")
    if config.model.get("single_task_checkpoints"):
        from mtnets.porting.single_task import checkpoint_paths

        checkpoint_paths(config)  # model and task names; Experiment.initial_state reads the files


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
