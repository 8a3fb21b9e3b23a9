"""Predictions resized to each example's original size, against a NumPy transcription of
cv2.resize (INTER_NEAREST, INTER_LINEAR), per task as the reference evaluates."""

import subprocess
import sys

import jax
import numpy as np
import pytest

from mtnets.data import resize

CANVAS = (12, 13)
SIZES = np.array([[5, 7], [8, 9], [12, 3], [12, 13]], np.int32)  # (h, w) per example


def cv2_resize(src, out_h, out_w, method):
    """cv2.resize(src, (out_w, out_h), interpolation) for float images, transcribed."""
    in_h, in_w = src.shape[:2]

    def coords(out_len, in_len):
        scale = in_len / out_len
        if method == "nearest":
            i0 = np.minimum(np.floor(np.arange(out_len) * scale).astype(int), in_len - 1)
            return i0, i0, np.zeros(out_len)
        f = (np.arange(out_len) + 0.5) * scale - 0.5
        i0 = np.floor(f).astype(int)
        frac = f - i0
        frac[i0 < 0], i0[i0 < 0] = 0.0, 0
        last = i0 >= in_len - 1
        frac[last], i0[last] = 0.0, in_len - 1
        return i0, np.minimum(i0 + 1, in_len - 1), frac

    y0, y1, fy = coords(out_h, in_h)
    x0, x1, fx = coords(out_w, in_w)
    fy, fx = fy[:, None, None], fx[None, :, None]
    s = src.astype(np.float64)
    top = s[y0][:, x0] * (1 - fx) + s[y0][:, x1] * fx
    bottom = s[y1][:, x0] * (1 - fx) + s[y1][:, x1] * fx
    return top * (1 - fy) + bottom * fy


@pytest.mark.parametrize("method", ["nearest", "linear"])
def test_resize_to_original_matches_cv2(method):
    x = np.random.default_rng(0).normal(size=(4, 8, 10, 2)).astype(np.float32)
    out = np.asarray(
        jax.jit(resize.resize_to_original, static_argnums=(2, 3))(x, SIZES, CANVAS, method)
    )
    assert out.shape == (4, *CANVAS, 2)
    for b, (h, w) in enumerate(SIZES):
        np.testing.assert_allclose(out[b, :h, :w], cv2_resize(x[b], h, w, method), atol=1e-5)


def test_canvas_mask():
    mask = np.asarray(resize.canvas_mask(SIZES, CANVAS))
    for b, (h, w) in enumerate(SIZES):
        expected = np.zeros(CANVAS, bool)
        expected[:h, :w] = True
        np.testing.assert_array_equal(mask[b], expected)


def test_resize_predictions_follow_the_reference_per_task():
    rng = np.random.default_rng(1)
    preds = {
        "semseg": rng.normal(size=(4, 8, 10, 5)).astype(np.float32),
        "sal": rng.normal(size=(4, 8, 10, 1)).astype(np.float32),
        "normals": rng.normal(size=(4, 8, 10, 3)).astype(np.float32),
        "depth": rng.uniform(1, 5, size=(4, 8, 10, 1)).astype(np.float32),
    }
    out = {k: np.asarray(v) for k, v in resize.resize_predictions(preds, SIZES, CANVAS).items()}
    for b, (h, w) in enumerate(SIZES):
        # get_output then cv2.resize (MTL:evaluation/evaluate_utils.py save_model_predictions).
        labels = np.argmax(preds["semseg"][b], -1)[..., None]
        np.testing.assert_array_equal(
            np.argmax(out["semseg"][b, :h, :w], -1), cv2_resize(labels, h, w, "nearest")[..., 0]
        )
        sal = cv2_resize(1 / (1 + np.exp(-preds["sal"][b])), h, w, "linear")
        np.testing.assert_allclose(1 / (1 + np.exp(-out["sal"][b, :h, :w])), sal, atol=1e-5)
        n = preds["normals"][b]
        n = n / np.linalg.norm(n, axis=-1, keepdims=True)
        np.testing.assert_allclose(
            out["normals"][b, :h, :w], cv2_resize(n, h, w, "linear"), atol=1e-5
        )
        np.testing.assert_allclose(
            out["depth"][b, :h, :w], cv2_resize(preds["depth"][b], h, w, "linear"), rtol=1e-5
        )


def test_the_module_imports_no_tensorflow():
    code = "import sys, mtnets.data.resize; assert 'tensorflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
