"""Pictures of labels and predictions: shapes, colours and the PNG round trip."""

import numpy as np
import pytest
from PIL import Image

from mtnets import visualize as vis
from mtnets.tasks import IGNORE_LABEL

N, H, W = 2, 6, 5


def _batch(rng):
    targets = {
        "semseg": rng.integers(0, 7, size=(N, H, W)),
        "depth": rng.uniform(1, 5, size=(N, H, W)),
        "normals": rng.normal(size=(N, H, W, 3)),
        "edge": rng.integers(0, 2, size=(N, H, W)),
        "sal": rng.integers(0, 2, size=(N, H, W)),
    }
    targets["semseg"][0, 0, 0] = IGNORE_LABEL
    targets["depth"][0, 0, 0] = 0.0
    predictions = {
        "semseg": rng.normal(size=(N, H, W, 7)),
        "depth": rng.uniform(1, 5, size=(N, H, W, 1)),
        "normals": rng.normal(size=(N, H, W, 3)),
        "edge": rng.normal(size=(N, H, W, 1)),
        "sal": rng.normal(size=(N, H, W, 1)),
    }
    return targets, predictions


@pytest.mark.parametrize("float_images", [False, True])
def test_prediction_grid_shape_and_dtype(float_images):
    rng = np.random.default_rng(0)
    targets, predictions = _batch(rng)
    images = rng.integers(0, 256, size=(N, H, W, 3)).astype(np.uint8)
    if float_images:
        images = images / 255.0
    tasks = list(targets)
    grid = vis.prediction_grid(images, targets, predictions, tasks)
    gap, t = vis.GAP, len(tasks)
    assert grid.dtype == np.uint8
    assert grid.shape == (N * H + (N - 1) * gap, (1 + 2 * t) * W + 2 * t * gap, 3)
    # The first tile of the first row is the input image itself.
    np.testing.assert_array_equal(
        grid[:H, :W], (images[0] * 255).round() if float_images else images[0]
    )
    # The ground truth of the first task follows after one separator.
    np.testing.assert_array_equal(
        grid[:H, W + gap : 2 * W + gap], vis.colorize("semseg", targets["semseg"][0])
    )


def test_prediction_grid_rejects_size_mismatch():
    rng = np.random.default_rng(1)
    targets, predictions = _batch(rng)
    predictions["sal"] = predictions["sal"][:, :-1]
    with pytest.raises(ValueError, match="size"):
        vis.prediction_grid(np.zeros((N, H, W, 3), np.uint8), targets, predictions, ["sal"])


def test_palette_colours_distinct_and_ignore_black():
    assert len({tuple(c) for c in vis.PALETTE[:255]}) == 255
    assert np.all(vis.PALETTE[:255].astype(int).sum(axis=-1) > 0)  # no class is black
    labels = np.array([[0, 1, IGNORE_LABEL]])
    rgb = vis.colorize("semseg", labels, num_classes=21)
    assert rgb.shape == (1, 3, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[0, 2], [0, 0, 0])
    assert not np.array_equal(rgb[0, 0], rgb[0, 1])
    with pytest.raises(ValueError):
        vis.colorize("semseg", np.array([[3]]), num_classes=3)


def test_normals_colour():
    normals = np.zeros((1, 3, 3))
    normals[0, 0] = [0.0, 0.0, 2.0]  # unnormalised +z
    normals[0, 1] = [-1.0, 1.0, 0.0]  # normalises to (-0.707, 0.707, 0)
    rgb = vis.colorize("normals", normals)
    np.testing.assert_array_equal(rgb[0, 0], [128, 128, 255])  # round(255 (n + 1) / 2)
    c = 1 / np.sqrt(2)
    expected = np.floor((np.array([-c, c, 0.0]) + 1) / 2 * 255 + 0.5)
    np.testing.assert_array_equal(rgb[0, 1], expected)
    np.testing.assert_array_equal(rgb[0, 2], [0, 0, 0])  # zero vector: invalid


def test_depth_invalid_black_and_shared_range():
    depth = np.array([[0.0, 1.0, 3.0, np.nan]])
    rgb = vis.colorize("depth", depth)
    np.testing.assert_array_equal(rgb[0, 0], [0, 0, 0])
    np.testing.assert_array_equal(rgb[0, 3], [0, 0, 0])
    np.testing.assert_array_equal(rgb[0, 1], vis.DEPTH_LUT[0])  # the minimum
    np.testing.assert_array_equal(rgb[0, 2], vis.DEPTH_LUT[-1])  # the maximum
    assert np.all(vis.DEPTH_LUT.astype(int).sum(axis=-1) > 0)  # valid depth is never black
    # With a given range, the same value gets the same colour in any map.
    a = vis.colorize("depth", np.array([[2.0, 4.0]]), vmin=0.0, vmax=4.0)
    b = vis.colorize("depth", np.array([[2.0, 1.0]]), vmin=0.0, vmax=4.0)
    np.testing.assert_array_equal(a[0, 0], b[0, 0])
    np.testing.assert_array_equal(a[0, 0], vis.DEPTH_LUT[128])


def test_grid_depth_pair_shares_range():
    """A perfect depth prediction looks exactly like its ground truth in the grid."""
    rng = np.random.default_rng(2)
    target = rng.uniform(1, 5, size=(1, H, W))
    target[0, 0, 0] = 0.0
    prediction = np.where(target > 0, target, 9.0)[..., None]
    grid = vis.prediction_grid(
        np.zeros((1, H, W, 3)), {"depth": target}, {"depth": prediction}, ["depth"]
    )
    gt_tile = grid[:, W + vis.GAP : 2 * W + vis.GAP]
    pred_tile = grid[:, 2 * W + 2 * vis.GAP :]
    np.testing.assert_array_equal(gt_tile[1:], pred_tile[1:])


def test_to_label():
    logits = np.array([[[0.1, 2.0, -1.0], [3.0, 0.0, 0.0]]])
    np.testing.assert_array_equal(vis.to_label("semseg", logits), [[1, 0]])
    prob = vis.to_label("sal", np.array([[[0.0], [-800.0], [800.0]]]))
    np.testing.assert_allclose(prob, [[0.5, 0.0, 1.0]])
    np.testing.assert_allclose(vis.to_label("depth", np.array([[[2.5]]])), [[2.5]])
    unit = vis.to_label("normals", np.array([[[3.0, 0.0, 4.0]]]))
    np.testing.assert_allclose(unit, [[[0.6, 0.0, 0.8]]])
    grey = vis.colorize("edge", prob)
    np.testing.assert_array_equal(grey[0, :, 0], [128, 0, 255])


def test_save_png_round_trip(tmp_path):
    array = np.random.default_rng(3).integers(0, 256, size=(4, 5, 3)).astype(np.uint8)
    path = tmp_path / "sub" / "grid.png"
    vis.save_png(path, array)
    np.testing.assert_array_equal(np.asarray(Image.open(path)), array)
