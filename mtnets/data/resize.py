"""Predictions resized back to each image's original size, for evaluation as the reference does.

PASCAL-Context images have varying sizes. The reference feeds them at 512x512 and resizes every
saved prediction back to the image's size with `cv2.resize` before scoring it against the raw
labels (`MTL:evaluation/evaluate_utils.py` `save_model_predictions`, INTER_NEAREST for semseg
and human_parts, INTER_LINEAR for the others, applied after `get_output`). Under `jit` a batch
needs one shape, so the pipeline (config.dataset.eval_canvas) pads each original-size label to
a fixed canvas and adds `orig_size` `[B, 2]` = (h, w); here each example's prediction is
resized to its own (h, w) at the canvas's top-left corner, with traced per-example sizes.

Exact rules (cv2's, for float32 inputs; `in`/`out` the input and output lengths on an axis):

* nearest: source index min(floor(dst * in / out), in - 1) (cv2.INTER_NEAREST, not the
  half-pixel INTER_NEAREST_EXACT);
* linear: source coordinate (dst + 0.5) * in / out - 0.5 clamped to [0, in - 1], blended
  between its two neighbours (cv2.INTER_LINEAR, edge pixels replicated, no antialiasing).

Per task (`resize_predictions`, with the rules each `Task` states: `output`,
`prediction_resize`, `from_output`), mirroring `get_output` then the resize: semseg and
human_parts logits nearest (nearest commutes with the per-pixel argmax the reference resizes);
depth linear; normals L2-normalised then linear (the reference's (n + 1) * 255 / 2 is affine,
so it commutes with the blend); sal and edge sigmoid, linear, then back to logits (clipped to
probabilities in [1e-6, 1 - 1e-6]) so that the metrics still take logits. Not reproduced: the
8-bit PNG quantisation of the saved normals, sal and edge maps.

This module imports only JAX, so the eval step can use it.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp

from mtnets import tasks as tasks_lib
from mtnets.tasks import Task


def canvas_mask(orig_size: jax.Array, canvas: tuple[int, int]) -> jax.Array:
    """bool `[B, Hc, Wc]`: True inside each example's original (h, w) at the top-left."""
    ys = jnp.arange(canvas[0])[None, :, None]
    xs = jnp.arange(canvas[1])[None, None, :]
    return (ys < orig_size[:, 0, None, None]) & (xs < orig_size[:, 1, None, None])


def resize_to_original(
    x: jax.Array, orig_size: jax.Array, canvas: tuple[int, int], method: str
) -> jax.Array:
    """`x` `[B, H, W, C]` -> `[B, Hc, Wc, C]`: example b resized to `orig_size[b]` = (h, w) with
    cv2's `method` ("nearest" or "linear"); values outside (h, w) are those of the clamped
    edge and must be masked with `canvas_mask`."""
    if method not in ("nearest", "linear"):
        raise ValueError(f"Unknown resize method {method!r}; use 'nearest' or 'linear'.")
    x = _resize_axis(x, orig_size[:, 0], canvas[0], axis=1, method=method)
    return _resize_axis(x, orig_size[:, 1], canvas[1], axis=2, method=method)


def resize_predictions(
    predictions: Mapping[str, jax.Array],
    orig_size: jax.Array,
    canvas: tuple[int, int],
    specs: Mapping[str, Task] | None = None,
) -> dict[str, jax.Array]:
    """`{task: [B, H, W, C]}` model outputs -> `{task: [B, Hc, Wc, C]}` at the original sizes,
    per task as the reference (see the module docstring); still logits / raw values.

    `specs` maps the tasks to their `Task` objects (default: the registered tasks of those
    names): each prediction becomes `task.output` (what the reference resizes), is resized
    with `task.prediction_resize`, and goes back through `task.from_output`."""
    out = {}
    for name, value in predictions.items():
        task = specs[name] if specs is not None else tasks_lib.get_task(name)
        value = task.output(value.astype(jnp.float32))
        value = resize_to_original(value, orig_size, canvas, task.prediction_resize)
        out[name] = task.from_output(value)
    return out


def _resize_axis(x: jax.Array, out_len: jax.Array, canvas_len: int, axis: int, method: str):
    """Resizes axis `axis` (1 or 2) of `x` to `out_len[b]` for each example b, on a canvas of
    `canvas_len`."""
    in_len = x.shape[axis]
    dst = jnp.arange(canvas_len, dtype=jnp.float32)[None, :]  # [1, L]
    ratio = in_len / jnp.maximum(out_len, 1).astype(jnp.float32)[:, None]  # [B, 1]
    if method == "nearest":
        index = jnp.minimum(jnp.floor(dst * ratio).astype(jnp.int32), in_len - 1)
        return _take(x, index, axis)
    src = jnp.clip((dst + 0.5) * ratio - 0.5, 0.0, in_len - 1)
    lo = jnp.floor(src).astype(jnp.int32)
    hi = jnp.minimum(lo + 1, in_len - 1)
    frac = src - lo
    shape = (frac.shape[0], canvas_len, 1, 1) if axis == 1 else (frac.shape[0], 1, canvas_len, 1)
    frac = frac.reshape(shape)
    return _take(x, lo, axis) * (1.0 - frac) + _take(x, hi, axis) * frac


def _take(x: jax.Array, index: jax.Array, axis: int) -> jax.Array:
    """Per-example gather of `index` `[B, L]` along `axis`."""
    shape = (index.shape[0], index.shape[1], 1, 1) if axis == 1 else (index.shape[0], 1, -1, 1)
    return jnp.take_along_axis(x, index.reshape(shape), axis=axis)
