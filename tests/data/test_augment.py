"""Joint augmentation keeps the image and every label aligned, and corrects depth and normals."""

import numpy as np
import pytest
import tensorflow as tf

from mtnets.data import augment

H, W = 48, 64


def pattern_example():
    """Blocks of 8x8 pixels with distinct ids, written into the image and every label."""
    ids = (np.arange(H)[:, None] // 8) * 8 + np.arange(W)[None, :] // 8  # 0..47
    image = np.stack([ids * 5, ids * 3, np.full_like(ids, 7)], -1).astype(np.uint8)
    normals = np.stack([ids / 100.0, -ids / 200.0, np.ones_like(ids, float)], -1)
    return {
        "image": tf.constant(image),
        "semseg": tf.constant(ids[..., None].astype(np.uint8)),
        "edge": tf.constant((ids[..., None] % 2).astype(np.uint8)),
        "depth": tf.constant((1.0 + ids[..., None]).astype(np.float32)),
        "normals": tf.constant(normals.astype(np.float32)),
    }


def interior(ids):
    """Pixels whose 3x3 neighbourhood has one id: bilinear and nearest agree there."""
    padded = np.pad(ids, 1, mode="edge")
    same = np.ones_like(ids, bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            same &= padded[1 + dy : 1 + dy + H, 1 + dx : 1 + dx + W] == ids
    return same


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_scale_crop_keeps_labels_aligned(seed):
    out = augment.random_scale_crop(pattern_example(), tf.constant([seed, 7]), 1.0, 1.5)
    out = {k: v.numpy() for k, v in out.items()}
    ids = out["semseg"][..., 0].astype(int)
    inside = interior(ids)
    assert inside.mean() > 0.3
    np.testing.assert_array_equal(out["image"][..., 0][inside], (ids * 5)[inside])
    np.testing.assert_array_equal(out["image"][..., 1][inside], (ids * 3)[inside])
    np.testing.assert_array_equal(out["edge"][..., 0], ids % 2)
    # Depth follows the same ids, divided by one zoom factor in [1, 1.5].
    ratio = (1.0 + ids) / out["depth"][..., 0]
    assert np.ptp(ratio) < 1e-5 and 1.0 - 1e-6 <= ratio.mean() <= 1.5 + 1e-6
    # Normals are resampled with the labels, never blended.
    np.testing.assert_allclose(out["normals"][..., 0], ids / 100.0, rtol=1e-6)


def test_scale_crop_zooms_in():
    """A scale of 1.5 everywhere shows 1/1.5 of each side: fewer distinct blocks."""
    out = augment.random_scale_crop(pattern_example(), tf.constant([0, 0]), 1.5, 1.5)
    ids = out["semseg"].numpy()
    assert len(np.unique(ids)) < 48
    np.testing.assert_allclose(
        out["depth"].numpy(), (1.0 + ids.astype(np.float32)) / 1.5, rtol=1e-6
    )


def test_flip_mirrors_everything_and_negates_normals_x():
    example = pattern_example()
    out = {k: v.numpy() for k, v in augment.flip_left_right(example).items()}
    for key in ("image", "semseg", "edge", "depth"):
        np.testing.assert_array_equal(out[key], example[key].numpy()[:, ::-1])
    normals = example["normals"].numpy()[:, ::-1]
    np.testing.assert_array_equal(out["normals"][..., 0], -normals[..., 0])
    np.testing.assert_array_equal(out["normals"][..., 1:], normals[..., 1:])


def test_random_flip_is_deterministic_per_seed_and_flips_about_half():
    example = pattern_example()
    flipped = []
    for seed in range(40):
        a = augment.random_flip(example, tf.constant([seed, 1]))["semseg"].numpy()
        b = augment.random_flip(example, tf.constant([seed, 1]))["semseg"].numpy()
        np.testing.assert_array_equal(a, b)
        flipped.append(not np.array_equal(a, example["semseg"].numpy()))
    assert 8 <= sum(flipped) <= 32


def test_normalize_image_uses_imagenet_statistics():
    image = tf.constant(np.full((2, 2, 3), 255, np.uint8))
    out = augment.normalize_image(image).numpy()
    expected = (1.0 - np.array(augment.MEAN_RGB)) / np.array(augment.STD_RGB)
    np.testing.assert_allclose(out[0, 0], expected, rtol=1e-6)
