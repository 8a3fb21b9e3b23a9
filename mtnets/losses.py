"""Per-task dense prediction losses with validity masks.

Every loss takes `(prediction, target, mask)` with `mask` a bool `[B, H, W]` of the pixels that
count: the caller builds it from `Task.valid_mask(target)` AND a per-example padding mask.
Predictions are cast to float32 first, so bf16 models get float32 losses, and each loss returns
a float32 scalar. A mask with no valid pixel gives 0 (never NaN), so padded or label-less batches
are harmless, and the gradients stay finite there too.

Two conventions (`config.loss.convention`); each task names its loss under each one
(`mtnets.tasks.Task.losses`), `task_loss` applies it:

- "mtl": the MTL reference (SimonVandenhende/Multi-Task-Learning-PyTorch,
  `MTL:losses/loss_functions.py`): cross-entropy with ignore 255, masked L1 depth, L1 on the
  L2-normalised normals, balanced BCE for edges (`pos_weight` 0.95) and HED-balanced BCE for
  saliency.
- "lorenmt": lorenmt/mtan (`MTAN:im2im_pred/utils.py:14-32`): NLL on log_softmax, masked L1
  depth, `1 - mean cosine` normals. lorenmt has no edge or saliency task; those keep the MTL
  losses under this convention.

Ignore values: lorenmt marks ignored semantic pixels with -1 and the MTL repo with 255; our
batches always hold 255 (`mtnets.tasks.IGNORE_LABEL`), so both conventions see the same mask.
lorenmt's depth and normals mask (`sum over channels of gt != 0`) is our "depth 0" / "normal all
zero" invalid marker; a normal whose components merely sum to 0 counts as valid here (lorenmt
would drop it, a measure-zero event for unit normals).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mtnets.tasks import Task

# The edge loss's positive-pixel weight in every MTL config (`edge_w: 0.95`).
EDGE_POS_WEIGHT = 0.95


def _masked_mean(values: jnp.ndarray, mask: jnp.ndarray, per_pixel: int = 1) -> jnp.ndarray:
    """Sum of `values` where `mask`, over `per_pixel * #valid pixels`; 0 for an empty mask.

    `jnp.where` (not a product) keeps NaN/inf at invalid pixels out of the sum.
    """
    total = jnp.sum(jnp.where(mask, values, 0.0))
    count = jnp.sum(mask, dtype=jnp.float32) * per_pixel
    return total / jnp.maximum(count, 1.0)


def cross_entropy(logits: jnp.ndarray, labels: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
    """Mean softmax cross-entropy over valid pixels.

    Args:
      logits: `[B, H, W, C]` class scores.
      labels: int `[B, H, W]` class ids; invalid pixels may hold 255 (ignore).
      mask: bool `[B, H, W]`.

    `MTL:losses/loss_functions.py:16-33` (log_softmax + NLLLoss with ignore_index=255, averaged
    over the non-ignored pixels).
    """
    logits = logits.astype(jnp.float32)
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    # Send invalid pixels (label 255) to class 0 so the gather stays in range; they are masked.
    safe = jnp.where(mask, labels, 0).astype(jnp.int32)
    safe = jnp.clip(safe, 0, logits.shape[-1] - 1)
    picked = jnp.take_along_axis(log_probs, safe[..., None], axis=-1)[..., 0]
    return _masked_mean(-picked, mask)


def depth_l1(pred: jnp.ndarray, target: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
    """Mean absolute depth error over valid pixels.

    Args:
      pred: `[B, H, W, 1]` depth.
      target: `[B, H, W]` depth, 0 where unknown.
      mask: bool `[B, H, W]`.

    `MTL:losses/loss_functions.py:126-140` (`DepthLoss('l1')`, mean over non-ignored elements).
    """
    pred = pred.astype(jnp.float32)[..., 0]
    return _masked_mean(jnp.abs(pred - target.astype(jnp.float32)), mask)


def l2_normalize(vectors: jnp.ndarray, eps: float = 1e-12) -> jnp.ndarray:
    """`v / max(|v|, eps)` over the last axis, with a finite gradient at `v = 0`.

    Clamping the squared norm (at eps^2) rather than the norm avoids the infinite derivative of
    sqrt at 0, which would turn into NaN gradients for an all-zero prediction.
    """
    squared = jnp.sum(jnp.square(vectors), axis=-1, keepdims=True)
    return vectors * jax.lax.rsqrt(jnp.maximum(squared, eps * eps))


def normals_l1(pred: jnp.ndarray, target: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
    """L1 between the L2-normalised prediction and the target normal, per valid element.

    Args:
      pred: `[B, H, W, 3]` unnormalised normals.
      target: `[B, H, W, 3]` unit normals, all zero where unknown.
      mask: bool `[B, H, W]`.

    `MTL:losses/loss_functions.py:154-197` with `normalize=True, norm=1, size_average=True`
    (`MTL:utils/common_config.py:285-287`): the sum of |n_pred - n_gt| over the three components
    of every valid pixel, divided by the number of valid elements (3 per pixel). Not a cosine.
    """
    unit = l2_normalize(pred.astype(jnp.float32))
    per_pixel = jnp.sum(jnp.abs(unit - target.astype(jnp.float32)), axis=-1)
    return _masked_mean(per_pixel, mask, per_pixel=3)


def logistic_loss(logits: jnp.ndarray, target: jnp.ndarray) -> jnp.ndarray:
    """Elementwise binary cross-entropy with logits, stable for large |logits|.

    `max(x, 0) - x * y + log(1 + exp(-|x|))`, the same quantity as the rearranged expression in
    `BalancedCrossEntropyLoss` (`MTL:losses/loss_functions.py:36-84`).
    """
    return jnp.maximum(logits, 0.0) - logits * target + jnp.log1p(jnp.exp(-jnp.abs(logits)))


def balanced_bce(
    logits: jnp.ndarray,
    target: jnp.ndarray,
    mask: jnp.ndarray,
    pos_weight: float | None = None,
) -> jnp.ndarray:
    """Class-balanced binary cross-entropy (HED style), averaged over valid pixels.

    Args:
      logits: `[B, H, W, 1]`.
      target: `[B, H, W]` in {0, 1}.
      mask: bool `[B, H, W]`.
      pos_weight: the weight w of positive pixels (negatives get 1 - w). None: w is the fraction
        of negative pixels among the valid pixels of the whole batch (saliency); the edge task
        uses a fixed 0.95.

    `MTL:losses/loss_functions.py:36-84` (`BalancedCrossEntropyLoss`):
    `(w * sum_pos(loss) + (1 - w) * sum_neg(loss)) / #valid`.
    """
    x = logits.astype(jnp.float32)[..., 0]
    y = target.astype(jnp.float32)
    loss = logistic_loss(x, y)
    positive = mask & (y > 0.5)
    negative = mask & (y <= 0.5)
    count = jnp.sum(mask, dtype=jnp.float32)
    if pos_weight is None:
        w = jnp.sum(negative, dtype=jnp.float32) / jnp.maximum(count, 1.0)
    else:
        w = jnp.float32(pos_weight)
    total = w * jnp.sum(jnp.where(positive, loss, 0.0)) + (1.0 - w) * jnp.sum(
        jnp.where(negative, loss, 0.0)
    )
    return total / jnp.maximum(count, 1.0)


def nll_log_softmax(logits: jnp.ndarray, labels: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
    """lorenmt's semantic loss: `nll_loss(log_softmax(pred), label, ignore_index=-1)`, the mean
    negative log-likelihood over valid pixels (`MTAN:im2im_pred/utils.py:14-17`).

    The same quantity as `cross_entropy`; lorenmt's ignore value -1 is our 255 (see above).
    """
    return cross_entropy(logits, labels, mask)


def depth_l1_lorenmt(pred: jnp.ndarray, target: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
    """lorenmt's depth loss: `sum |pred - gt| * mask / #valid pixels` (`MTAN:...utils.py:20-24`).

    Args:
      pred: `[B, H, W, 1]`; target: `[B, H, W]` (0 = unknown); mask: bool `[B, H, W]`.

    Numerically the MTL L1 as well (one channel, so elements = pixels); kept separate so that the
    convention table names the reference it follows.
    """
    return depth_l1(pred, target, mask)


def normals_cosine(pred: jnp.ndarray, target: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
    """lorenmt's normals loss `1 - sum(pred . gt * mask) / #valid pixels` (`MTAN:...utils.py:
    26-32`), i.e. 1 - the mean cosine between the unit prediction and the unit target.

    Args:
      pred: `[B, H, W, 3]` unnormalised (lorenmt's models normalise inside the network, ours
        return raw vectors, so the loss L2-normalises them first).
      target: `[B, H, W, 3]` unit normals, all zero where unknown.
      mask: bool `[B, H, W]`.

    An empty mask gives 0 (lorenmt divides 0 by 0 and gets NaN).
    """
    unit = l2_normalize(pred.astype(jnp.float32))
    cosine = jnp.sum(unit * target.astype(jnp.float32), axis=-1)
    any_valid = jnp.any(mask)
    return jnp.where(any_valid, 1.0 - _masked_mean(cosine, mask), 0.0)


# The loss conventions (`config.loss.convention`); each task states its loss under each one
# (`Task.losses`).
CONVENTIONS = ("mtl", "lorenmt")


def task_loss(
    spec: Task,
    prediction: jnp.ndarray,
    target: jnp.ndarray,
    mask: jnp.ndarray,
    *,
    edge_pos_weight: float = EDGE_POS_WEIGHT,
    convention: str = "mtl",
) -> jnp.ndarray:
    """The loss of task `spec` under `convention`, a float32 scalar.

    Args:
      spec: the task; its `loss_fn` picks the loss (semseg/human_parts: cross-entropy, depth:
        L1, normals: normalised L1, edge: balanced BCE with `edge_pos_weight`, sal: balanced
        BCE with the batch-adaptive weight).
      prediction: the head output `[B, H, W, spec.channels]`.
      target: the labels as described in `mtnets.tasks`.
      mask: bool `[B, H, W]`, valid AND non-padded pixels.
    """
    if convention not in CONVENTIONS:
        raise ValueError(
            f"Unknown config.loss.convention {convention!r}; known: {', '.join(CONVENTIONS)}."
        )
    loss = spec.loss_fn(convention, edge_pos_weight=edge_pos_weight)
    return loss(prediction, target, mask)
