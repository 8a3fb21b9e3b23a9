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


# ------------------------------------------------------------------------------------------
# The matplotlib figure: titles, legends, colour bars, error maps.
def _column_titles(figure) -> list[str]:
    return [ax.get_title() for ax in figure.axes if ax.get_title()]


def test_figure_titles_every_column_and_names_the_classes():
    from mtnets.data.builders.class_names import class_names

    rng = np.random.default_rng(4)
    targets, predictions = _batch(rng)
    tasks = ["semseg", "depth", "normals", "edge", "sal"]
    figure = vis.prediction_figure(
        np.zeros((N, H, W, 3)), targets, predictions, tasks,
        class_names=class_names("synthetic_scenes"),
    )  # fmt: skip
    expected = ["input"] + [
        f"{t}\n{kind}"
        for t in tasks
        for kind in ("ground truth", "prediction", vis.ERROR_TITLES[t])
    ]
    assert _column_titles(figure) == expected
    legends = [ax.get_legend() for ax in figure.axes if ax.get_legend() is not None]
    assert len(legends) == 1 and legends[0].get_title().get_text() == "semseg classes"
    shown = {int(i) for i in np.unique(targets["semseg"])} | {
        int(i) for i in np.unique(np.argmax(predictions["semseg"], axis=-1))
    }
    names = ("floor", "wall", "ceiling", "picture", "box", "sphere", "cylinder")
    expected_labels = [names[i] if i != IGNORE_LABEL else "ignore" for i in sorted(shown)]
    assert [t.get_text() for t in legends[0].get_texts()] == expected_labels
    # Colour bars (their own axes) are labelled with the depth unit.
    assert any(ax.get_ylabel() == "depth (m)" for ax in figure.axes)
    picture = vis.figure_to_array(figure)
    assert picture.dtype == np.uint8 and picture.ndim == 3 and picture.shape[-1] == 3


def test_figure_without_targets_shows_predictions_only():
    rng = np.random.default_rng(5)
    _, predictions = _batch(rng)
    figure = vis.prediction_figure(
        np.zeros((1, H, W, 3), np.uint8), None, {t: v[:1] for t, v in predictions.items()},
        ["depth", "semseg"], class_names={"semseg": ("a", "b")},
    )  # fmt: skip
    assert _column_titles(figure) == ["input", "depth\nprediction", "semseg\nprediction"]
    (legend,) = [ax.get_legend() for ax in figure.axes if ax.get_legend() is not None]
    labels = [t.get_text() for t in legend.get_texts()]
    ids = sorted(np.unique(np.argmax(predictions["semseg"][0], axis=-1)))
    assert labels == [("a", "b")[i] if i < 2 else f"class {i}" for i in ids]


def test_error_maps():
    depth_t = np.array([[2.0, 0.0], [1.0, 3.0]])
    depth_p = np.array([[2.5, 7.0], [0.5, 3.0]])
    np.testing.assert_allclose(
        vis.error_map("depth", depth_t, depth_p), [[0.5, np.nan], [0.5, 0.0]]
    )
    normals_t = np.array([[[0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]])
    c = np.sqrt(0.5)
    normals_p = np.array([[[c, 0.0, c], [1.0, 0.0, 0.0]]])
    np.testing.assert_allclose(vis.error_map("normals", normals_t, normals_p), [[45.0, np.nan]])
    seg_t = np.array([[1, 2, IGNORE_LABEL]])
    np.testing.assert_array_equal(
        vis.error_map("semseg", seg_t, np.array([[1, 0, 4]])), [[0.0, 1.0, np.nan]]
    )
    np.testing.assert_allclose(
        vis.error_map("edge", np.array([[1, 0]]), np.array([[0.75, 0.1]])), [[0.25, 0.1]]
    )


def test_denormalize_follows_the_config():
    """nyuv2 configs feed the stored images unnormalised: pictures must show them as they are,
    not multiplied by the ImageNet std and shifted by its mean."""
    from configs.nyuv2.segnet_mtan import get_config as nyuv2_config
    from mtnets.train.evaluate import denormalize

    images = np.array([[[[0.2, 0.5, 0.9]]]])
    nyuv2 = nyuv2_config().dataset.image_normalization
    np.testing.assert_allclose(denormalize(images, nyuv2), images)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(denormalize(images, "imagenet"), np.clip(images * std + mean, 0, 1))
    with pytest.raises(ValueError, match="image_normalization 'zscore'"):
        denormalize(images, "zscore")


def test_class_names_cover_every_class():
    from mtnets.data.builders.class_names import CLASS_NAMES
    from mtnets.tasks import DATASET_CLASSES

    assert CLASS_NAMES.keys() == DATASET_CLASSES.keys()
    for dataset, tasks in DATASET_CLASSES.items():
        for task, count in tasks.items():
            assert len(CLASS_NAMES[dataset][task]) == count, (dataset, task)


def test_a_registered_normalization_has_its_inverse():
    from mtnets.data import normalization

    normalization.register_normalization("halves", (0.5, 0.5, 0.5), (0.25, 0.5, 1.0))
    try:
        x = np.array([[0.0, 0.5, 1.0], [1.0, 0.25, 0.0]], np.float32)
        y = normalization.normalize(x, "halves")
        np.testing.assert_allclose(y, [[-2.0, 0.0, 0.5], [2.0, -0.5, -0.5]])
        np.testing.assert_allclose(normalization.denormalize(y, "halves"), x)
    finally:
        del normalization.STATISTICS["halves"]
    with pytest.raises(ValueError, match="'bad' needs 3 means and 3 positive stds"):
        normalization.register_normalization("bad", (0.5, 0.5, 0.5), (0.2, 0.0, 0.2))
