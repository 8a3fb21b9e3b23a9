"""MTI-Net and PAD-Net loss schemes against a NumPy transcription of MTL's MTINetLoss and
PADNetLoss (`MTL:losses/loss_schemes.py:39-106`, docs/reference_notes.md#mti-net-as-implemented,
#pad-net-as-implemented)."""

import functools

import jax.numpy as jnp
import numpy as np
import pytest

from mtnets import losses
from mtnets.loss_schemes import task_losses
from mtnets.tasks import task_specs

H, W = 32, 64
CHANNELS = {"semseg": 40, "depth": 1, "normals": 3, "edge": 1}
WEIGHTS = {"semseg": 1.0, "depth": 1.0, "normals": 10.0, "edge": 50.0}  # MTL NYUD +E+N


def np_bilinear(x, size):
    """F.interpolate(mode='bilinear', align_corners=False) on NHWC, in NumPy."""
    (out_h, out_w), (in_h, in_w) = size, x.shape[1:3]

    def coords(out_n, in_n):
        src = np.maximum((np.arange(out_n) + 0.5) * (in_n / out_n) - 0.5, 0.0)
        lo = np.minimum(np.floor(src).astype(int), in_n - 1)
        return lo, np.minimum(lo + 1, in_n - 1), src - lo

    y0, y1, wy = coords(out_h, in_h)
    x0, x1, wx = coords(out_w, in_w)
    top = x[:, y0][:, :, x0] * (1 - wx)[:, None] + x[:, y0][:, :, x1] * wx[:, None]
    bottom = x[:, y1][:, :, x0] * (1 - wx)[:, None] + x[:, y1][:, :, x1] * wx[:, None]
    return top * (1 - wy)[:, None, None] + bottom * wy[:, None, None]


def np_loss(task, pred, target, keep):
    """MTL's per-task losses (`MTL:losses/loss_functions.py`) on the kept examples."""
    pred, target = pred[keep].astype(np.float64), target[keep]
    if task == "semseg":
        logp = pred - pred.max(-1, keepdims=True)
        logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
        valid = target != 255
        picked = np.take_along_axis(logp, np.where(valid, target, 0)[..., None], -1)[..., 0]
        return -picked[valid].mean()
    if task == "depth":
        valid = target > 0
        return np.abs(pred[..., 0] - target)[valid].mean()
    if task == "normals":
        valid = np.any(target != 0, -1)
        unit = pred / np.maximum(np.linalg.norm(pred, axis=-1, keepdims=True), 1e-12)
        return np.abs(unit - target)[valid].sum() / (3 * valid.sum())
    x, y = pred[..., 0], target.astype(np.float64)  # edge: balanced BCE, w = 0.95
    loss = np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x)))
    return (0.95 * loss[y == 1].sum() + 0.05 * loss[y == 0].sum()) / y.size


def random_batch(rng):
    batch = {
        "semseg": np.where(rng.random((3, H, W)) < 0.2, 255, rng.integers(0, 40, (3, H, W))),
        "depth": np.where(rng.random((3, H, W)) < 0.2, 0.0, rng.uniform(0.5, 5, (3, H, W))),
        "edge": (rng.random((3, H, W)) < 0.1).astype(np.int32),
        "mask": np.array([True, True, False]),  # the last example is padding
    }
    normals = rng.normal(size=(3, H, W, 3))
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    batch["normals"] = np.where(rng.random((3, H, W, 1)) < 0.2, 0.0, normals)
    return {k: v.astype(np.float32) if v.dtype == np.float64 else v for k, v in batch.items()}


def predictions(rng, tasks, size):
    return {t: rng.normal(size=(3, *size, CHANNELS[t])).astype(np.float32) for t in tasks}


def ours(outputs, batch, aux):
    specs = task_specs(aux, "nyud_mt")
    loss_fn = functools.partial(losses.task_loss, edge_pos_weight=0.95)
    jax_outputs = {
        k: (
            {n: {t: jnp.asarray(p) for t, p in d.items()} for n, d in v.items()}
            if k == "intermediate"
            else jnp.asarray(v)
        )
        for k, v in outputs.items()
    }
    per_task = task_losses(
        specs, jax_outputs, {k: jnp.asarray(v) for k, v in batch.items()}, loss_fn
    )
    assert set(per_task) == set(aux)
    return sum(WEIGHTS[t] * float(per_task[t]) for t in aux)


@pytest.mark.parametrize("aux", [("semseg", "depth"), ("semseg", "normals", "edge", "depth")])
def test_mti_net_loss_matches_reference(aux):
    rng = np.random.default_rng(0)
    tasks = ("semseg", "depth")
    batch, keep = random_batch(rng), np.array([True, True, False])
    final = predictions(rng, tasks, (H, W))
    scales = {
        f"scale_{s}": predictions(rng, aux, (H // 4 // 2**s, W // 4 // 2**s)) for s in range(4)
    }
    # MTINetLoss.forward: every scale, every auxiliary task, then the final outputs.
    expected = sum(
        WEIGHTS[t] * np_loss(t, np_bilinear(scales[f"scale_{s}"][t], (H, W)), batch[t], keep)
        for s in range(4)
        for t in aux
    ) + sum(WEIGHTS[t] * np_loss(t, final[t], batch[t], keep) for t in tasks)
    got = ours({**final, "intermediate": scales}, batch, aux)
    np.testing.assert_allclose(got, expected, rtol=2e-5)


def test_pad_net_loss_matches_reference():
    rng = np.random.default_rng(1)
    tasks, aux = ("semseg", "depth"), ("semseg", "normals", "edge", "depth")
    batch, keep = random_batch(rng), np.array([True, True, False])
    final = predictions(rng, tasks, (H, W))
    initial = predictions(rng, aux, (H // 4, W // 4))
    # PADNetLoss.forward: the initial predictions of every auxiliary task, then the finals.
    expected = sum(
        WEIGHTS[t] * np_loss(t, np_bilinear(initial[t], (H, W)), batch[t], keep) for t in aux
    ) + sum(WEIGHTS[t] * np_loss(t, final[t], batch[t], keep) for t in tasks)
    got = ours({**final, "intermediate": {"initial": initial}}, batch, aux)
    np.testing.assert_allclose(got, expected, rtol=2e-5)


def test_baseline_outputs_give_the_multi_task_loss_and_missing_tasks_are_errors():
    rng = np.random.default_rng(2)
    batch, keep = random_batch(rng), np.array([True, True, False])
    final = predictions(rng, ("semseg", "depth"), (H, W))
    expected = sum(WEIGHTS[t] * np_loss(t, final[t], batch[t], keep) for t in final)
    np.testing.assert_allclose(ours(final, batch, ("semseg", "depth")), expected, rtol=2e-5)
    with pytest.raises(ValueError, match="edge"):
        ours(final, batch, ("semseg", "depth", "edge"))
