"""The per-task losses against NumPy transcriptions of the MTL formulas."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtnets import losses
from mtnets.tasks import IGNORE_LABEL, TaskSpec, task_spec

B, H, W = 2, 5, 6


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _padding_mask(shape=(B, H, W)) -> np.ndarray:
    """The second example is padding: only the first counts."""
    mask = np.ones(shape, bool)
    mask[1] = False
    return mask


def _np_log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def _np_softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def _seg_case(rng, num_classes=4):
    logits = rng.normal(size=(B, H, W, num_classes)) * 3
    labels = rng.integers(0, num_classes, size=(B, H, W))
    labels[rng.random((B, H, W)) < 0.3] = IGNORE_LABEL
    return logits, labels


def test_cross_entropy_matches_numpy():
    logits, labels = _seg_case(_rng())
    mask = labels != IGNORE_LABEL
    logp = _np_log_softmax(logits)
    ys, xs = np.nonzero(mask.reshape(B * H, W))
    expected = -np.mean(logp.reshape(B * H, W, -1)[ys, xs, labels.reshape(B * H, W)[ys, xs]])
    got = losses.cross_entropy(jnp.asarray(logits, jnp.float32), jnp.asarray(labels), mask)
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_cross_entropy_ignores_padded_examples():
    logits, labels = _seg_case(_rng(1))
    pad = _padding_mask()
    mask = (labels != IGNORE_LABEL) & pad
    got = losses.cross_entropy(jnp.asarray(logits), jnp.asarray(labels), mask)
    only_first = losses.cross_entropy(jnp.asarray(logits[:1]), jnp.asarray(labels[:1]), mask[:1])
    np.testing.assert_allclose(got, only_first, rtol=1e-6)


def test_depth_l1_matches_numpy():
    rng = _rng(2)
    pred = rng.uniform(0.5, 5, size=(B, H, W, 1))
    target = rng.uniform(0.5, 5, size=(B, H, W))
    target[rng.random((B, H, W)) < 0.3] = 0.0
    mask = target > 0
    expected = np.abs(pred[..., 0] - target)[mask].mean()
    got = losses.depth_l1(jnp.asarray(pred, jnp.float32), jnp.asarray(target, jnp.float32), mask)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_normals_l1_matches_numpy():
    rng = _rng(3)
    pred = rng.normal(size=(B, H, W, 3))
    target = rng.normal(size=(B, H, W, 3))
    target /= np.linalg.norm(target, axis=-1, keepdims=True)
    target[rng.random((B, H, W)) < 0.3] = 0.0
    mask = np.any(target != 0, axis=-1)
    unit = pred / np.maximum(np.linalg.norm(pred, axis=-1, keepdims=True), 1e-12)
    expected = np.abs(unit - target)[mask].sum() / (3 * mask.sum())
    got = losses.normals_l1(jnp.asarray(pred, jnp.float32), jnp.asarray(target, jnp.float32), mask)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def _np_balanced_bce(logits, target, mask, pos_weight):
    x, y = logits[..., 0][mask], target[mask].astype(float)
    per_pixel = _np_softplus(x) - x * y
    w = np.mean(y == 0) if pos_weight is None else pos_weight
    return (w * per_pixel[y == 1].sum() + (1 - w) * per_pixel[y == 0].sum()) / mask.sum()


@pytest.mark.parametrize("pos_weight", [None, 0.95])
def test_balanced_bce_matches_numpy(pos_weight):
    rng = _rng(4)
    logits = rng.normal(size=(B, H, W, 1)) * 4
    logits[0, 0, 0, 0] = 80.0  # large logits stay finite
    logits[0, 0, 1, 0] = -80.0
    target = (rng.random((B, H, W)) < 0.2).astype(np.int32)
    mask = rng.random((B, H, W)) < 0.8
    expected = _np_balanced_bce(logits, target, mask, pos_weight)
    got = losses.balanced_bce(
        jnp.asarray(logits, jnp.float32), jnp.asarray(target), mask, pos_weight=pos_weight
    )
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def _all_cases():
    rng = _rng(5)
    logits, labels = _seg_case(rng)
    return {
        "semseg": (logits, labels),
        "depth": (rng.normal(size=(B, H, W, 1)), rng.uniform(0, 3, size=(B, H, W))),
        "normals": (np.zeros((B, H, W, 3)), rng.normal(size=(B, H, W, 3))),
        "edge": (rng.normal(size=(B, H, W, 1)), rng.integers(0, 2, size=(B, H, W))),
        "sal": (rng.normal(size=(B, H, W, 1)), rng.integers(0, 2, size=(B, H, W))),
    }


def _spec(name: str) -> TaskSpec:
    return task_spec(name, "synthetic_scenes")


@pytest.mark.parametrize("name", ["semseg", "depth", "normals", "edge", "sal"])
def test_empty_mask_gives_zero_and_finite_gradients(name):
    prediction, target = _all_cases()[name]
    mask = jnp.zeros((B, H, W), bool)

    def loss(p):
        return losses.task_loss(_spec(name), p, jnp.asarray(target), mask)

    value, grad = jax.value_and_grad(loss)(jnp.asarray(prediction, jnp.float32))
    assert value == 0.0
    assert np.all(np.isfinite(grad))


@pytest.mark.parametrize("name", ["semseg", "depth", "normals", "edge", "sal"])
def test_gradients_are_finite(name):
    """Zero normal predictions and ignored labels must not produce NaN gradients."""
    prediction, target = _all_cases()[name]
    spec = _spec(name)
    mask = spec.valid_mask(jnp.asarray(target)) & jnp.asarray(_padding_mask())
    grad = jax.grad(lambda p: losses.task_loss(spec, p, jnp.asarray(target), mask))(
        jnp.asarray(prediction, jnp.float32)
    )
    assert np.all(np.isfinite(grad))
    assert np.all(np.asarray(grad)[1] == 0)  # the padded example gets no gradient


def test_task_loss_dispatch():
    cases = _all_cases()
    mask = np.ones((B, H, W), bool)
    mask[0, 0] = False
    pairs = {
        "semseg": lambda p, t: losses.cross_entropy(p, t, mask & (t != IGNORE_LABEL)),
        "depth": lambda p, t: losses.depth_l1(p, t, mask),
        "normals": lambda p, t: losses.normals_l1(p, t, mask),
        "edge": lambda p, t: losses.balanced_bce(p, t, mask, pos_weight=0.9),
        "sal": lambda p, t: losses.balanced_bce(p, t, mask, pos_weight=None),
    }
    for name, direct in pairs.items():
        p, t = (jnp.asarray(a) for a in cases[name])
        m = mask & (t != IGNORE_LABEL) if name == "semseg" else mask
        got = losses.task_loss(_spec(name), p, t, m, edge_pos_weight=0.9)
        np.testing.assert_allclose(got, direct(p, t), rtol=1e-6, err_msg=name)
    parts = losses.task_loss(
        _spec("human_parts"),
        *(jnp.asarray(a) for a in cases["semseg"]),
        jnp.asarray(cases["semseg"][1] != IGNORE_LABEL),
    )
    assert np.isfinite(parts)
    with pytest.raises(ValueError, match="convention"):
        losses.task_loss(_spec("depth"), *cases["depth"], mask, convention="nope")


def test_bfloat16_predictions_give_float32_loss():
    logits, labels = _seg_case(_rng(6))
    mask = labels != IGNORE_LABEL
    got = losses.cross_entropy(jnp.asarray(logits, jnp.bfloat16), jnp.asarray(labels), mask)
    assert got.dtype == jnp.float32
    ref = losses.cross_entropy(
        jnp.asarray(logits, jnp.bfloat16).astype(jnp.float32), jnp.asarray(labels), mask
    )
    np.testing.assert_allclose(got, ref, rtol=1e-6)


def test_no_tensorflow_import():
    """Models, losses, weighting, metrics, pictures and the train step must not pull in
    TensorFlow or clu's metric writers: they run on machines that have only JAX."""
    code = (
        "import sys, mtnets.losses, mtnets.metrics, mtnets.visualize, mtnets.models\n"
        "import mtnets.weighting, mtnets.tasks, mtnets.sharding, mtnets.train.step\n"
        "import mtnets.train.state, mtnets.train.checkpointing, mtnets.train.evaluate\n"
        "bad = [m for m in sys.modules if m.split('.')[0] == 'tensorflow'"
        " or m.startswith('clu.metric_writers')]\n"
        "assert not bad, bad\n"
    )
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)


# --- lorenmt conventions ---------------------------------------------------------------


def test_lorenmt_normals_is_one_minus_mean_cosine():
    rng = _rng(11)
    pred = rng.normal(size=(B, H, W, 3)).astype(np.float32)
    target = rng.normal(size=(B, H, W, 3))
    target /= np.linalg.norm(target, axis=-1, keepdims=True)
    target[:, 0] = 0.0  # invalid rows
    mask = np.any(target != 0, axis=-1)
    unit = pred / np.linalg.norm(pred, axis=-1, keepdims=True)
    # `MTAN:im2im_pred/utils.py:26-32`: 1 - sum(pred * gt * mask) / #valid pixels.
    expected = 1 - np.sum(unit * target * mask[..., None]) / mask.sum()
    got = losses.task_loss(
        _spec("normals"),
        jnp.asarray(pred),
        jnp.asarray(target, jnp.float32),
        jnp.asarray(mask),
        convention="lorenmt",
    )
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    empty = losses.normals_cosine(jnp.asarray(pred), jnp.asarray(target), jnp.zeros_like(mask))
    assert float(empty) == 0.0


def test_lorenmt_semseg_and_depth():
    logits, labels = _seg_case(_rng(12))
    mask = labels != IGNORE_LABEL
    x = logits.astype(np.float64)
    logp = (
        x
        - np.log(np.sum(np.exp(x - x.max(-1, keepdims=True)), -1, keepdims=True))
        - x.max(-1, keepdims=True)
    )
    picked = np.take_along_axis(logp, np.where(mask, labels, 0)[..., None], -1)[..., 0]
    # nll_loss(log_softmax, ignore_index): mean over non-ignored pixels.
    got = losses.task_loss(
        _spec("semseg"),
        jnp.asarray(logits),
        jnp.asarray(labels),
        jnp.asarray(mask),
        convention="lorenmt",
    )
    np.testing.assert_allclose(got, -picked[mask].mean(), rtol=1e-5)
    rng = _rng(13)
    target = rng.uniform(0.5, 5.0, (B, H, W)).astype(np.float32)
    target[:, :2] = 0.0
    pred = rng.uniform(0.5, 5.0, (B, H, W, 1)).astype(np.float32)
    valid = target != 0  # lorenmt: sum over channels of gt != 0
    got = losses.task_loss(
        _spec("depth"),
        jnp.asarray(pred),
        jnp.asarray(target),
        jnp.asarray(valid),
        convention="lorenmt",
    )
    expected = np.sum(np.abs(pred[..., 0] - target) * valid) / valid.sum()
    np.testing.assert_allclose(got, expected, rtol=1e-5)
