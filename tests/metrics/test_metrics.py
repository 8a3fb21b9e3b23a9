"""The evaluation metrics against NumPy transcriptions of the MTL evaluation code."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from mtnets import metrics as mt
from mtnets.metrics import (
    DepthMetrics,
    EdgeMetrics,
    NormalsMetrics,
    SaliencyMetrics,
    SegmentationMetrics,
)
from mtnets.tasks import IGNORE_LABEL, task_spec

B, H, W = 8, 12, 10


def _values(metric) -> dict[str, float]:
    # Under jit: one compilation per metric instead of one per eager op, which is faster here.
    return {k: float(v) for k, v in jax.jit(type(metric).compute)(metric).items()}


def _assert_same(a, b, rtol=1e-5, atol=1e-6, skip_batch=False):
    va, vb = _values(a), _values(b)
    assert va.keys() == vb.keys()
    for key in va:
        if skip_batch and key.endswith("_batch"):
            continue  # lorenmt's batch averages depend on the batching by definition
        np.testing.assert_allclose(va[key], vb[key], rtol=rtol, atol=atol, err_msg=key)


# --- Random cases: (prediction, target, mask) per task -------------------------------------


def _seg_case(seed=0, num_classes=5):
    rng = np.random.default_rng(seed)
    # Class 4 never appears in the ground truth, and is rarely predicted.
    labels = rng.integers(0, num_classes - 1, size=(B, H, W))
    labels[rng.random((B, H, W)) < 0.2] = IGNORE_LABEL
    logits = rng.normal(size=(B, H, W, num_classes))
    logits[..., :-1] += 2.0 * np.eye(num_classes - 1)[np.clip(labels, 0, num_classes - 2)]
    return logits.astype(np.float32), labels.astype(np.int32), labels != IGNORE_LABEL


def _depth_case(seed=1):
    rng = np.random.default_rng(seed)
    target = rng.uniform(0.5, 8.0, size=(B, H, W))
    target[rng.random((B, H, W)) < 0.2] = 0.0
    pred = target[..., None] + rng.normal(scale=0.5, size=(B, H, W, 1))
    pred[0, 0, :3, 0] = [-1.0, 0.0, 1e-12]  # non-positive predictions hit the log floor
    return pred.astype(np.float32), target.astype(np.float32), target > 0


def _normals_case(seed=2):
    rng = np.random.default_rng(seed)
    target = rng.normal(size=(B, H, W, 3))
    target /= np.linalg.norm(target, axis=-1, keepdims=True)
    target[rng.random((B, H, W)) < 0.2] = 0.0
    pred = target + rng.normal(scale=0.4, size=(B, H, W, 3))
    pred *= rng.uniform(0.5, 3.0, size=(B, H, W, 1))  # unnormalised
    pred[0, 0, 0] = -target[0, 0, 0]  # an opposite vector: 180 degrees
    return pred.astype(np.float32), target.astype(np.float32), np.any(target != 0, axis=-1)


def _binary_case(seed=3, empty_images=True):
    rng = np.random.default_rng(seed)
    target = (rng.random((B, H, W)) < 0.3).astype(np.int32)
    logits = rng.normal(size=(B, H, W, 1)) * 2 + 1.5 * (2 * target[..., None] - 1)
    mask = rng.random((B, H, W)) < 0.9
    if empty_images:
        target[1] = 0  # no salient pixel
        logits[2] = -20.0  # nothing predicted at any threshold
        target[3], logits[3] = 0, -20.0  # both empty: Jaccard 1
        mask[4] = False  # no valid pixel: not scored
    return logits.astype(np.float32), target, mask


CASES = {
    SegmentationMetrics: _seg_case,
    DepthMetrics: _depth_case,
    NormalsMetrics: _normals_case,
    SaliencyMetrics: _binary_case,
    EdgeMetrics: _binary_case,
}


def _make(cls, case):
    return jax.jit(cls.from_model_output)(*(jnp.asarray(a) for a in case))


# --- Segmentation ----------------------------------------------------------------------


def _np_segmentation(logits, labels, mask):
    """`MTL:evaluation/eval_semseg.py`: per-class TP/FP/FN over the set, mean over all classes."""
    num_classes = logits.shape[-1]
    pred = logits.argmax(-1)
    ious = []
    for c in range(num_classes):
        tp = np.sum((labels == c) & (pred == c) & mask)
        fp = np.sum((labels != c) & (pred == c) & mask)
        fn = np.sum((labels == c) & (pred != c) & mask)
        ious.append(tp / max(tp + fp + fn, 1e-8))
    accuracy = np.sum((pred == labels) & mask) / np.sum(mask)
    return np.mean(ious), accuracy, ious


def test_segmentation_hand_computed():
    # 1 x 1 x 4 image, 3 classes. gt [0, 0, 1, ignore], pred [0, 1, 1, 2]:
    # class 0: TP 1, FN 1 -> 1/2; class 1: TP 1, FP 1 -> 1/2; class 2 absent (its only
    # prediction is on an ignored pixel) -> 0. mIoU = 1/3, pixel accuracy = 2/3.
    labels = np.array([[[0, 0, 1, IGNORE_LABEL]]], np.int32)
    logits = np.eye(3, dtype=np.float32)[np.array([[[0, 1, 1, 2]]])]
    metric = SegmentationMetrics.from_model_output(
        jnp.asarray(logits), jnp.asarray(labels), jnp.asarray(labels != IGNORE_LABEL)
    )
    np.testing.assert_array_equal(metric.confusion, [[1, 1, 0], [0, 1, 0], [0, 0, 0]])
    values = _values(metric)
    np.testing.assert_allclose(values["mIoU"], 1 / 3, rtol=1e-6)
    np.testing.assert_allclose(values["pixel_accuracy"], 2 / 3, rtol=1e-6)
    np.testing.assert_allclose([values[f"iou/{c}"] for c in range(3)], [0.5, 0.5, 0.0])
    # lorenmt's torch.mean would be NaN (class 2 appears nowhere valid); we average the
    # classes that appear: (1/2 + 1/2) / 2.
    np.testing.assert_allclose(values["mIoU_lorenmt"], 0.5, rtol=1e-6)


def test_segmentation_lorenmt_equals_mtl_when_every_class_appears():
    labels = np.array([[[0, 1, 2, 2, IGNORE_LABEL]]], np.int32)
    logits = np.eye(3, dtype=np.float32)[np.array([[[0, 1, 1, 2, 0]]])]
    values = _values(_make(SegmentationMetrics, (logits, labels, labels != IGNORE_LABEL)))
    # class 0: 1/1; class 1: TP 1, FP 1 -> 1/2; class 2: TP 1, FN 1 -> 1/2.
    np.testing.assert_allclose(values["mIoU"], 2 / 3, rtol=1e-6)
    np.testing.assert_allclose(values["mIoU_lorenmt"], 2 / 3, rtol=1e-6)


def test_segmentation_matches_numpy():
    case = _seg_case()
    miou, accuracy, ious = _np_segmentation(*case)
    assert ious[-1] == 0.0 or np.sum(case[0].argmax(-1) == 4) > 0
    values = _values(_make(SegmentationMetrics, case))
    np.testing.assert_allclose(values["mIoU"], miou, rtol=1e-6)
    np.testing.assert_allclose(values["pixel_accuracy"], accuracy, rtol=1e-6)
    np.testing.assert_allclose([values[f"iou/{c}"] for c in range(5)], ious, rtol=1e-6)


# --- Depth -----------------------------------------------------------------------------


def _mtl_eval_depth(pred, target):
    """MTL's `evaluation/eval_depth.py`, transcribed: valid = label != 0; predictions <= 0 are
    set to 1e-9 once, before rmse and log_rmse; both are pooled over every valid pixel."""
    pred = pred[..., 0].astype(np.float64).copy()
    pred[pred <= 0] = 1e-9
    valid = target != 0
    p, g = pred[valid], target[valid].astype(np.float64)
    return {
        "rmse": np.sqrt(np.sum((g - p) ** 2) / valid.sum()),
        "log_rmse": np.sqrt(np.sum((np.log(g) - np.log(p)) ** 2) / valid.sum()),
    }


def _depth_case_many_negatives(seed=3):
    """A third of the predictions are negative or zero: the floor moves rmse by far more than
    any tolerance."""
    pred, target, mask = _depth_case(seed)
    rng = np.random.default_rng(seed)
    bad = rng.random(pred.shape[:3]) < 0.33
    pred[..., 0] = np.where(bad, rng.choice([-2.0, -0.1, 0.0], size=bad.shape), pred[..., 0])
    return pred, target, mask


@pytest.mark.parametrize("case", [_depth_case, _depth_case_many_negatives])
def test_depth_matches_numpy(case):
    pred, target, mask = case()
    values = _values(_make(DepthMetrics, (pred, target, mask)))
    reference = _mtl_eval_depth(pred, target)
    np.testing.assert_allclose(values["rmse"], reference["rmse"], rtol=1e-5)
    np.testing.assert_allclose(values["log_rmse"], reference["log_rmse"], rtol=1e-5)
    # The other pooled errors use the same floored prediction.
    p = np.where(pred[..., 0] <= 0, 1e-9, pred[..., 0])[mask].astype(np.float64)
    g = target[mask].astype(np.float64)
    np.testing.assert_allclose(values["abs_rel"], np.mean(np.abs(g - p) / g), rtol=1e-5)
    np.testing.assert_allclose(values["abs_err"], np.mean(np.abs(g - p)), rtol=1e-5)
    np.testing.assert_allclose(values["sq_rel"], np.mean((g - p) ** 2 / g), rtol=1e-5)
    ratio = np.maximum(g / p, p / g)
    for k in (1, 2, 3):
        np.testing.assert_allclose(
            values[f"delta_{k}"], 100 * np.mean(ratio < 1.25**k), rtol=1e-5, err_msg=str(k)
        )


def test_depth_rmse_floors_negative_predictions():
    """gt 2 m, prediction -1 m: MTL scores the prediction as 1e-9, so the error is 2 m, not 3."""
    target = np.full((1, 1, 2), 2.0, np.float32)
    target[0, 0, 1] = 0.0  # invalid pixel: ignored whatever is predicted there
    pred = np.array([[[[-1.0], [50.0]]]], np.float32)
    values = _values(_make(DepthMetrics, (pred, target, target > 0)))
    np.testing.assert_allclose(values["rmse"], 2.0 - 1e-9, rtol=1e-6)
    np.testing.assert_allclose(values["rmse"], _mtl_eval_depth(pred, target)["rmse"], rtol=1e-6)
    np.testing.assert_allclose(values["abs_err_batch"], 3.0, rtol=1e-6)  # lorenmt: raw


def test_depth_batch_averages_as_lorenmt():
    """lorenmt averages each batch's mean |d| and |d| / gt over batches (`utils.py:176-208`)."""
    pred, target, mask = _depth_case()
    batches = [slice(0, 3), slice(3, 8)]
    merged = DepthMetrics.empty()
    abs_errs, rel_errs = [], []
    for sl in batches:
        merged = merged.merge(_make(DepthMetrics, (pred[sl], target[sl], mask[sl])))
        p, g = pred[sl][..., 0][mask[sl]].astype(np.float64), target[sl][mask[sl]]
        abs_errs.append(np.mean(np.abs(p - g)))
        rel_errs.append(np.mean(np.abs(p - g) / g))
    # A batch of padding only (no valid pixel) is not counted.
    merged = merged.merge(_make(DepthMetrics, (pred[:2], target[:2], np.zeros_like(mask[:2]))))
    values = _values(merged)
    np.testing.assert_allclose(values["abs_err_batch"], np.mean(abs_errs), rtol=1e-5)
    np.testing.assert_allclose(values["rel_err_batch"], np.mean(rel_errs), rtol=1e-5)


# --- Normals ---------------------------------------------------------------------------


def _np_angles(pred, target, mask):
    p = pred[mask].astype(np.float64)
    t = target[mask].astype(np.float64)
    p /= np.linalg.norm(p, axis=-1, keepdims=True)
    t /= np.linalg.norm(t, axis=-1, keepdims=True)
    return np.degrees(np.arccos(np.clip(np.sum(p * t, axis=-1), -1, 1)))


def test_normals_matches_numpy():
    case = _normals_case()
    angles = _np_angles(*case)
    values = _values(_make(NormalsMetrics, case))
    np.testing.assert_allclose(values["mean"], angles.mean(), rtol=1e-5)
    np.testing.assert_allclose(values["rmse"], np.sqrt(np.mean(angles**2)), rtol=1e-5)
    assert abs(values["median"] - np.median(angles)) <= mt.NORMALS_BIN_WIDTH
    for t in (11.25, 22.5, 30.0):
        np.testing.assert_allclose(
            values[f"within_{t:g}"], 100 * np.mean(angles < t), rtol=1e-5, err_msg=str(t)
        )


def test_normals_batch_averages_as_lorenmt():
    """lorenmt: mean, np.median and fractions per batch, averaged over batches."""
    case = _normals_case()
    merged = NormalsMetrics.empty()
    stats = []
    for sl in (slice(0, 3), slice(3, 8)):
        part = [a[sl] for a in case]
        merged = merged.merge(_make(NormalsMetrics, part))
        angles = _np_angles(*part)
        stats.append(
            [angles.mean(), np.median(angles)]
            + [100 * np.mean(angles < t) for t in (11.25, 22.5, 30.0)]
        )
    expected = np.mean(stats, axis=0)
    values = _values(merged)
    keys = ["mean_batch", "median_batch"] + [f"within_{t:g}_batch" for t in (11.25, 22.5, 30.0)]
    np.testing.assert_allclose([values[k] for k in keys], expected, rtol=1e-4)


def test_normals_median_exact_on_known_angles():
    """Angles 10, 20, 30, 40 degrees (and one invalid pixel): median 25, pooled and per batch."""
    angles = np.radians([10.0, 20.0, 30.0, 40.0, 77.0])
    pred = np.stack([np.sin(angles), np.zeros(5), np.cos(angles)], -1)[None, None].astype(
        np.float32
    )
    target = np.tile(np.array([0.0, 0.0, 1.0], np.float32), (1, 1, 5, 1))
    mask = np.array([[[True, True, True, True, False]]])
    values = _values(_make(NormalsMetrics, (pred, target, mask)))
    assert abs(values["median"] - 25.0) <= mt.NORMALS_BIN_WIDTH
    np.testing.assert_allclose(values["median_batch"], 25.0, rtol=1e-5)
    np.testing.assert_allclose(values["mean"], 25.0, rtol=1e-5)
    np.testing.assert_allclose(values["within_22.5"], 50.0, rtol=1e-6)


@pytest.mark.parametrize("seed", range(5))
def test_histogram_median_within_a_bin(seed):
    rng = np.random.default_rng(seed)
    values = rng.gamma(2.0, 8.0, size=int(rng.integers(1, 400)))
    width = 0.01
    histogram = np.bincount(np.floor(values / width).astype(int), minlength=18000)
    median = float(mt.histogram_median(jnp.asarray(histogram, jnp.int32), width))
    assert abs(median - np.median(values)) <= width


def test_angular_error_small_and_large_angles():
    t = np.array([[0.0, 0.0, 1.0]] * 3)
    a = np.radians([0.005, 90.0, 179.99])
    p = np.stack([np.sin(a), np.zeros(3), np.cos(a)], axis=-1) * 2.5
    got = mt.angular_error_degrees(jnp.asarray(p, jnp.float32), jnp.asarray(t, jnp.float32))
    np.testing.assert_allclose(got, [0.005, 90.0, 179.99], rtol=1e-4)


# --- Saliency --------------------------------------------------------------------------


def _np_saliency(logits, target, mask):
    """Per-image loop after `MTL:evaluation/eval_sal.py` (void pixels = ~mask)."""
    prob = 1 / (1 + np.exp(-logits[..., 0].astype(np.float64)))
    thresholds = np.linspace(0.2, 0.9, 15)
    jac, prec, rec = [], [], []
    for n in range(len(target)):
        valid = mask[n]
        if not valid.any():
            continue
        gt = target[n].astype(bool)
        row_j, row_p, row_r = [], [], []
        for t in thresholds:
            pr = prob[n] > np.float32(t)
            if not np.any(gt & valid) and not np.any(pr & valid):
                row_j.append(1.0)
            else:
                row_j.append(np.sum(gt & pr & valid) / np.sum((gt | pr) & valid))
            tp = np.sum(pr & gt & valid)
            fp = np.sum(pr & ~gt & valid)
            fn = np.sum(~pr & gt & valid)
            row_p.append(tp / (tp + fp + 1e-12))
            row_r.append(tp / (tp + fn + 1e-12))
        jac.append(row_j)
        prec.append(row_p)
        rec.append(row_r)
    p, r = np.mean(prec, 0), np.mean(rec, 0)
    f = 2 * p * r / (p + r + 1e-12)
    return f.max(), np.mean(jac, 0).max()


def test_saliency_matches_numpy():
    case = _binary_case()
    max_f, miou = _np_saliency(*case)
    metric = _make(SaliencyMetrics, case)
    assert int(metric.num_images) == B - 1  # the image without valid pixels is not scored
    values = _values(metric)
    np.testing.assert_allclose(values["maxF"], max_f, rtol=1e-5)
    np.testing.assert_allclose(values["mIoU"], miou, rtol=1e-5)


def test_saliency_image_conventions():
    logits = np.full((2, 2, 2, 1), -20.0, np.float32)
    target = np.zeros((2, 2, 2), np.int32)
    target[1, 0, 0] = 1
    jac, prec, rec = mt.binary.saliency_image_scores(
        jnp.asarray(logits), jnp.asarray(target), jnp.ones((2, 2, 2), bool)
    )
    np.testing.assert_array_equal(jac[0], 1.0)  # both empty
    np.testing.assert_array_equal(jac[1], 0.0)  # missed the only salient pixel
    np.testing.assert_array_equal(prec, 0.0)  # empty prediction: precision 0
    np.testing.assert_array_equal(rec, 0.0)  # empty GT (image 0) / all missed (image 1)


# --- Edge ------------------------------------------------------------------------------


def test_edge_matches_numpy():
    logits, target, mask = case = _binary_case(empty_images=False)
    x, y = logits[..., 0][mask].astype(np.float64), target[mask].astype(np.float64)
    per_pixel = np.logaddexp(0, x) - x * y
    loss = (0.95 * per_pixel[y == 1].sum() + 0.05 * per_pixel[y == 0].sum()) / mask.sum()
    pred = x > 0
    tp, fp = np.sum(pred & (y == 1)), np.sum(pred & (y == 0))
    fn = np.sum(~pred & (y == 1))
    values = _values(_make(EdgeMetrics, case))
    np.testing.assert_allclose(values["loss"], loss, rtol=1e-5)
    np.testing.assert_allclose(values["f1_at_0.5"], 2 * tp / (2 * tp + fp + fn), rtol=1e-6)


# --- Merging, padding, empties, sharding -------------------------------------------------


@pytest.mark.parametrize("cls", list(CASES))
def test_merging_halves_equals_whole(cls):
    case = CASES[cls]()
    whole = _make(cls, case)
    first = _make(cls, [a[: B // 2] for a in case])
    second = _make(cls, [a[B // 2 :] for a in case])
    _assert_same(first.merge(second), whole, skip_batch=True)


@pytest.mark.parametrize("cls", list(CASES))
def test_padded_examples_change_nothing(cls):
    case = CASES[cls]()
    rng = np.random.default_rng(9)
    # Padding: 3 more examples of garbage with an all-False mask.
    padded = [np.concatenate([a, rng.permutation(a)[:3]], axis=0) for a in case[:2]] + [
        np.concatenate([case[2], np.zeros((3, H, W), bool)], axis=0)
    ]
    _assert_same(_make(cls, padded), _make(cls, case), rtol=1e-6)


@pytest.mark.parametrize("cls", list(CASES))
def test_empty_merges_as_identity(cls):
    metric = _make(cls, CASES[cls]())
    _assert_same(cls.empty().merge(metric), metric, rtol=0, atol=0)
    _assert_same(metric.merge(cls.empty()), metric, rtol=0, atol=0)
    assert all(np.isfinite(list(_values(cls.empty()).values())))


def test_segmentation_empty_with_static_shape():
    empty = SegmentationMetrics.empty(num_classes=5)
    assert empty.confusion.shape == (5, 5)
    assert _values(empty)["mIoU"] == 0.0


def test_sharded_jit_equals_unsharded():
    devices = np.array(jax.devices())
    assert len(devices) == 8
    mesh = Mesh(devices, ("data",))
    sharding = NamedSharding(mesh, PartitionSpec("data"))

    for cls, make_case in CASES.items():
        case = make_case()
        sharded = [jax.device_put(jnp.asarray(a), sharding) for a in case]
        got = jax.jit(cls.from_model_output)(*sharded)
        _assert_same(got, _make(cls, case), rtol=1e-5)


def test_metric_for_and_compute_all():
    dataset = "synthetic_scenes"
    expected = {
        "semseg": SegmentationMetrics,
        "human_parts": SegmentationMetrics,
        "depth": DepthMetrics,
        "normals": NormalsMetrics,
        "sal": SaliencyMetrics,
        "edge": EdgeMetrics,
    }
    for name, cls in expected.items():
        assert mt.metric_for(task_spec(name, dataset)) is cls
    flat = mt.compute_all(
        {
            "semseg": _make(SegmentationMetrics, _seg_case()),
            "depth": _make(DepthMetrics, _depth_case()),
        }
    )
    assert {"semseg/mIoU", "semseg/iou/0", "depth/rmse"} <= flat.keys()
    assert all(type(v) is float for v in flat.values())
