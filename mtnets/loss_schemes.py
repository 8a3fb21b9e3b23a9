"""Per-task losses of models with intermediate predictions (MTI-Net deep supervision, PAD-Net
initial predictions), as the MTL reference sums them (`MTL:losses/loss_schemes.py`).

`task_losses` returns, for every task, the *unweighted* sum of its loss terms: the final
prediction if the model has one for it (a main task), plus every intermediate prediction of it,
each first resized bilinearly (half-pixel, PyTorch `align_corners=False`) to the label
resolution. With fixed weights, `sum_t w_t * task_losses(...)[t]` is then exactly the
reference's total (docs/reference_notes.md#mti-net-as-implemented, #pad-net-as-implemented):
- `MTINetLoss`: `sum_s sum_{t in aux} w_t L_t(up(pred_{s,t})) + sum_{t in main} w_t L_t(pred_t)`
  (every scale with the same weight w_t; aux-only tasks have only the scale terms);
- `PADNetLoss`: `sum_{t in aux} w_t L_t(up(initial_t)) + sum_{t in main} w_t L_t(pred_t)`;
- models without `"intermediate"` (baselines): `sum_t w_t L_t(pred_t)` (`MultiTaskLoss`).
A dynamic weighting then sees one loss per task, summed over its terms.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from mtnets.models.layers import resize
from mtnets.tasks import Task

LossFn = Callable[[Task, jax.Array, jax.Array, jax.Array], jax.Array]


def prediction_terms(outputs: Mapping[str, Any], task: str) -> list[jax.Array]:
    """The predictions of `task` that carry a loss: the final one (if any) and every
    intermediate one, in a fixed order (final, then intermediate names sorted)."""
    terms = [outputs[task]] if task in outputs and task != "intermediate" else []
    intermediate = outputs.get("intermediate", {})
    terms += [
        intermediate[name][task] for name in sorted(intermediate) if task in intermediate[name]
    ]
    return terms


def task_losses(
    specs: Mapping[str, Task],
    outputs: Mapping[str, Any],
    batch: Mapping[str, jax.Array],
    loss_fn: LossFn,
) -> dict[str, jax.Array]:
    """`{task: unweighted float32 loss summed over its terms}` for every task of `specs`.

    Args:
      specs: the tasks to compute (main ∪ auxiliary), e.g. `task_specs(tasks + aux, dataset)`.
      outputs: the model's output: `{task: [B, H, W, C]}` at label resolution for the main
        tasks, and `"intermediate": {name: {task: [B, h, w, C]}}` at any resolution.
      batch: labels `batch[task]` (`[B, H, W]` or `[B, H, W, 3]`) and `batch["mask"]` (bool
        `[B]`, False for padding examples).
      loss_fn: `(spec, prediction, target, mask) -> scalar`, e.g. `mtnets.losses.task_loss`
        with `edge_pos_weight` bound.

    Raises if a task has no prediction at all.
    """
    out = {}
    for name, spec in specs.items():
        target = batch[name]
        mask = spec.valid_mask(target) & batch["mask"][:, None, None]
        terms = prediction_terms(outputs, name)
        if not terms:
            raise ValueError(f"The model output has no prediction for task {name!r}.")
        size = target.shape[1:3]
        losses = [loss_fn(spec, resize(p.astype(jnp.float32), size), target, mask) for p in terms]
        out[name] = sum(losses[1:], losses[0])
    return out
