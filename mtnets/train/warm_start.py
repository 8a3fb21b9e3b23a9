"""Warm starts of a fresh train state: ImageNet backbones and, for cross-stitch and NDDR-CNN,
task networks from trained single-task networks (`warm_start`). Reading files and workdirs
happens here; the conversions are `mtnets.porting`'s.

The MTL reference builds both models out of trained single-task models: for every task it loads
`<root>/<db>/<backbone>/single_task/<task>/best_model.pth.tar` into a `SingleTaskModel` and
takes its backbone and decoder as that task's network; only the units are new
(`MTL:utils/common_config.py:86-119`). Here `config.model.single_task_checkpoints` maps every
task of `config.tasks` to one of:

- the workdir of one of our single-task runs (`model.name="single_task_baseline"` with the
  same ResNet, `model.dilated=True` and `model.head="deeplab"`, e.g.
  `configs/pascal/semseg.py:backbone=resnet18`): its latest checkpoint, or the step named by a
  path `<workdir>/checkpoints/<step>`. Its `backbone` and `heads_<task>` are read (a
  multi-task baseline's workdir works too: only those two parts are used);
- an MTL single-task checkpoint file: `best_model.pth.tar` (or any `.pth`/`.pt`/`.bin`/`.tar`,
  read with torch) or a `.npz` of its state dict (`backbone.*`, `decoder.*`, a DataParallel
  `module.` prefix is stripped), converted by `mtnets.porting.mtl.variables_from_mtl`.

They replace `backbone_<task>` and `head_<task>` of the freshly initialised model
(`mtnets.porting.mtan.variables_from_single_task_variables`); the cross-stitch units and NDDR
layers keep their initialisation (alpha on the own task, beta across). Every configured task
must be given, or none (from scratch). `read_single_task_variables` checks the names, reads
every file and compares every shape with the model before anything is compiled; the errors
name the task, the path and the offending variable. Model dilation has no parameters, so a
single-task run with `model.dilated=False` cannot be told apart: train it with the config
above.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging
from flax.traverse_util import flatten_dict

from mtnets import pytrees
from mtnets.models import registry
from mtnets.porting.common import nest

FIELD = "config.model.single_task_checkpoints"
# What `mtnets.porting.imagenet.read_checkpoint` reads: torch files and NumPy archives.
FILE_SUFFIXES = (".pth", ".pt", ".bin", ".tar", ".npz")
_SHOWN_PROBLEMS = 6


def checkpoint_paths(config) -> dict[str, str]:
    """`{task: path}` of `config.model.single_task_checkpoints` in `config.tasks` order (`{}`
    when it is unset or all None), after the checks that need no file: the model is
    cross-stitch or NDDR-CNN, no ImageNet `model.pretrained` as well, no task outside
    `config.tasks`, and every task given or none."""
    entries = config.model.single_task_checkpoints
    given = {task: str(path) for task, path in entries.items() if path}
    if not given:
        return {}
    name = config.model.name
    if not registry.model_info(name).single_task_init:
        takers = [n for n, info in registry.declared().items() if info.single_task_init]
        raise ValueError(
            f"{FIELD} initialises the task networks of {' / '.join(takers)}, but "
            f"config.model.name is {name!r}; unset it (or use config.model.pretrained)."
        )
    # "imagenet" is the paper configs' default: the single-task checkpoints take precedence.
    if str(config.model.pretrained).lower() not in ("none", "imagenet"):
        raise ValueError(
            f"Set either config.model.pretrained or {FIELD}, not both: the single-task "
            "checkpoints replace the whole of every task's backbone."
        )
    unknown = [task for task in given if task not in config.tasks]
    if unknown:
        raise ValueError(
            f"{FIELD} names task(s) {unknown} that are not in config.tasks {list(config.tasks)}."
        )
    missing = [task for task in config.tasks if task not in given]
    if missing:
        raise ValueError(
            f"{FIELD} gives {sorted(given)} but not {missing}: give a single-task checkpoint "
            "for every task of config.tasks, or none (training from scratch)."
        )
    return {task: given[task] for task in config.tasks}


def single_task_config(config, task: str) -> ml_collections.ConfigDict:
    """The single-task model whose variables initialise `task` of the cross-stitch / NDDR-CNN
    `config`: the same ResNet, dilated, with a DeepLab head (MTL's `SingleTaskModel`)."""
    # A copy of the whole config, so that every field keeps its value or default.
    single = config.copy_and_resolve_references()
    single.model.name = "single_task_baseline"
    single.model.dilated = True
    single.model.head = "deeplab"
    single.tasks = (task,)
    single.aux_tasks = ()
    single.dtype = "float32"
    return single


def read_single_task_variables(
    config, abstract_variables: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """`{task: {"params": {"backbone", "heads_<task>"}, "batch_stats": ...}}` (NumPy, in the
    dtypes of the model) for `config.model.single_task_checkpoints`, `{}` when unset.

    `abstract_variables` is `{"params", "batch_stats"}` of the cross-stitch / NDDR-CNN model
    as `jax.eval_shape` gives them: every read array is checked against them here, so a wrong
    file fails before the model is initialised or a step compiled.
    """
    out = {}
    for task, path in checkpoint_paths(config).items():
        variables, source = _read(config, task, path)
        out[task] = _fitted(config, task, path, variables, abstract_variables)
        logging.info("Task %s: backbone_%s and head_%s from %s.", task, task, task, source)
    return out


def initialise(
    variables: Mapping[str, Any], singles: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """`variables` of the cross-stitch / NDDR-CNN model with every task's `backbone_<task>`
    and `head_<task>` replaced by `singles` (from `read_single_task_variables`); the units
    keep their values."""
    from mtnets.porting.mtan import variables_from_single_task_variables

    return variables_from_single_task_variables(variables, singles)


# ---------------------------------------------------------------------------------------------
def _where(task: str, path: str) -> str:
    return f"{FIELD}.{task}={path!r}"


def _read(config, task: str, path: str) -> tuple[dict[str, Any], str]:
    """The variables of one single-task source, in our single-task model's names, and a
    description of where they came from for the log."""
    parent, name = os.path.split(os.path.normpath(path))
    if os.path.isdir(path) or (name.isdigit() and os.path.basename(parent) == "checkpoints"):
        return _read_workdir(task, path)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{_where(task, path)}: no such file or directory. Give the workdir of a single-task "
            f"run or an MTL single-task checkpoint file ({', '.join(FILE_SUFFIXES)})."
        )
    if not path.endswith(FILE_SUFFIXES):
        raise ValueError(
            f"{_where(task, path)} is a file but not a checkpoint: expected a workdir or a file "
            f"ending in {', '.join(FILE_SUFFIXES)}."
        )
    from mtnets.porting.imagenet import read_checkpoint
    from mtnets.porting.mtl import variables_from_mtl

    try:
        state_dict = read_checkpoint(path)
        variables = variables_from_mtl(single_task_config(config, task), state_dict)
    except (ValueError, KeyError) as error:
        raise ValueError(
            f"{_where(task, path)} is not the MTL single-task model of {task!r} on a dilated "
            f"{config.model.backbone} with a DeepLab head: {error}"
        ) from error
    return variables, f"the MTL single-task checkpoint {path}"


def _read_workdir(task: str, path: str) -> tuple[dict[str, Any], str]:
    """`<workdir>` (latest checkpoint) or `<workdir>/checkpoints/<step>`."""
    from mtnets.train import checkpointing  # imported here: it loads orbax

    path = os.path.normpath(path)
    parent, name = os.path.split(path)
    step = None
    if name.isdigit() and os.path.basename(parent) == "checkpoints":
        workdir, step = os.path.dirname(parent), int(name)
    else:
        workdir = path
    try:
        checkpointer = checkpointing.Checkpointer(workdir, read_only=True)
        steps = checkpointer.all_steps()
        checkpointer.close()
        if not steps:
            mtl_file = os.path.join(workdir, "best_model.pth.tar")  # an MTL output directory
            hint = f" (MTL's file is {mtl_file})" if os.path.isfile(mtl_file) else ""
            raise FileNotFoundError(
                f"no checkpoint in {os.path.join(workdir, 'checkpoints')}{hint}"
            )
        step = steps[-1] if step is None else step
        variables = checkpointing.restore_variables(workdir, step)
    except FileNotFoundError as error:
        raise FileNotFoundError(
            f"{_where(task, path)}: {error}. Train the single-task run first (its workdir holds "
            "checkpoints/<step>), or give an MTL single-task checkpoint file."
        ) from error
    except Exception as error:  # noqa: BLE001  (orbax raises many kinds on unreadable files)
        raise ValueError(
            f"{_where(task, path)}: cannot read the checkpoint of step {step}: "
            f"{type(error).__name__}: {error}"
        ) from error
    return variables, f"step {step} of the run in {workdir}"


def _fitted(config, task: str, path: str, variables, abstract) -> dict[str, Any]:
    """The `backbone` and `heads_<task>` subtrees of `variables`, cast to the model's dtypes,
    after checking their paths and shapes against `backbone_<task>` / `head_<task>` of the
    multi-task model; a mismatch lists the first offending variables."""
    problems, out = [], {}
    for collection in ("params", "batch_stats"):
        tree = abstract.get(collection)
        if not tree:
            continue
        source = variables.get(collection) or {}
        out[collection] = {}
        for ours, theirs in ((f"backbone_{task}", "backbone"), (f"head_{task}", f"heads_{task}")):
            if theirs not in source:
                have = ", ".join(sorted(source)) or "nothing"
                problems.append(f"no {collection}/{theirs} (it has {have})")
                continue
            want = flatten_dict(dict(tree[ours]), sep="/")
            got = flatten_dict(dict(source[theirs]), sep="/")
            prefix = f"{collection}/{theirs}"
            diff = pytrees.differences(dict(source[theirs]), dict(tree[ours]))
            # Shape mismatches first: they say best which backbone or head the run had.
            problems += [
                f"{prefix}/{k}: shape {g}, the model has {s}" for k, g, s in diff.reshaped
            ]
            problems += [f"{prefix}/{k} missing (the model has {s})" for k, s in diff.missing]
            problems += [f"{prefix}/{k} {s} is not in the model" for k, s in diff.unexpected]
            out[collection][theirs] = nest(
                {key: np.asarray(got[key], leaf.dtype) for key, leaf in want.items() if key in got}
            )
    if problems:
        shown = "\n  ".join(problems[:_SHOWN_PROBLEMS])
        more = len(problems) - _SHOWN_PROBLEMS
        raise ValueError(
            f"{_where(task, path)} does not fit task {task!r} of {config.model.name} on "
            f"{config.model.backbone} ({len(problems)} problem(s)):\n  {shown}"
            + (f"\n  ... and {more} more" if more > 0 else "")
            + f"\nTrain the single-task run with the same backbone ({config.model.backbone}, "
            "model.dilated=True, model.head=deeplab), e.g. configs/<dataset>/<task>.py:"
            f"backbone={config.model.backbone}."
        )
    return out


def warm_start(config, state, state_shardings, singles: Mapping[str, Any]):
    """`state` (fresh from `init`) with the warm starts `config` asks for: the task networks of
    cross-stitch / NDDR-CNN from `singles` (`read_single_task_variables`, called before `init`
    compiles so that a bad file fails early), or else the backbone from the ImageNet file of
    `config.model.pretrained`."""
    from mtnets import weights
    from mtnets.porting.imagenet import load_pretrained

    if singles:
        variables = initialise(state.variables(), singles)
    elif weights.pretrained_path(config):
        variables = load_pretrained(config, state.variables())
        logging.info("Backbone initialised from %s.", weights.pretrained_path(config))
    else:
        return state
    return state.replace(
        params=jax.device_put(variables["params"], state_shardings.params),
        batch_stats=jax.device_put(variables["batch_stats"], state_shardings.batch_stats),
    )
