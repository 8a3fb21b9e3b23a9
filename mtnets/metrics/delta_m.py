"""Multi-task performance Delta_m against single-task references
(docs/reference_notes.md#evaluation-and-delta_m).

`Delta_m = 100 / T * sum_t s_t (M_mt,t - M_st,t) / M_st,t` with s_t = +1 when higher is better
(`MTL:evaluation/evaluate_utils.py:38-63`, Eq. 10 of Vandenhende et al., TPAMI 2021). One metric
per task, stated by the task (`Task.delta_m`), as in the MTL repo: semseg, sal and human_parts
mIoU (+1), depth rmse (-1), normals mean angle (-1), edge odsF (+1). The MTL repo returns a
fraction and prints it x100; we report the percent.

Single-task references are our own eval JSON files (`eval_<step>.json`, keys
`"<task>/<metric>"`), one per task or one holding several tasks.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from mtnets import tasks as tasks_lib


def delta_m_metric(task: str) -> tuple[str, int]:
    """`("<task>/<metric>", sign)` of a task's Delta_m term (`Task.delta_m`), sign +1 when
    higher is better; a clear error for a task without one."""
    spec = tasks_lib.get_task(task)
    if spec.delta_m is None:
        raise ValueError(f"No Delta_m metric for task {task!r}.")
    metric, sign = spec.delta_m
    return f"{task}/{metric}", sign


def load_references(references: str | Mapping[str, str] | Sequence[str]) -> dict[str, float]:
    """`{"<task>/<metric>": value}` from eval JSON files.

    Args:
      references: one path, a list of paths, or `{task: path}`; with a mapping only the keys of
        that task are read from its file (so single-task runs of several tasks may share names).
    """
    if isinstance(references, str):
        references = [references]
    values: dict[str, float] = {}
    if isinstance(references, Mapping):
        for task, path in references.items():
            table = _read(path)
            values.update({k: v for k, v in table.items() if k.startswith(f"{task}/")})
    else:
        for path in references:
            values.update(_read(path))
    return values


def _read(path: str) -> dict[str, float]:
    try:
        with open(path) as f:
            table = json.load(f)
    except FileNotFoundError as error:
        raise FileNotFoundError(
            f"Single-task reference {path!r} (config.eval.delta_m_references) does not exist."
        ) from error
    return {k: float(v) for k, v in table.items() if isinstance(v, int | float) and k != "step"}


def delta_m(
    results: Mapping[str, float], references: Mapping[str, float], tasks: Sequence[str]
) -> float:
    """Delta_m in percent of the multi-task `results` against `references` over `tasks`.

    Both map `"<task>/<metric>"` to values. A missing key is an error that names it.
    """
    if not tasks:
        raise ValueError("Delta_m needs at least one task.")
    total = 0.0
    for task in tasks:
        key, sign = delta_m_metric(task)
        if key not in results:
            hint = tasks_lib.get_task(task).delta_m_hint
            raise KeyError(f"Delta_m: the multi-task results have no {key!r}{hint}.")
        if key not in references:
            raise KeyError(f"Delta_m: the single-task references have no {key!r}.")
        reference = references[key]
        if reference == 0:
            raise ValueError(f"Delta_m: the single-task reference {key} is 0.")
        total += sign * (results[key] - reference) / reference
    return 100.0 * total / len(tasks)
