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


# =============================================================================================
# The reference augmentations, against NumPy transcriptions of the cv2 / PyTorch operations.
def cv2_rotation_matrix(h, w, angle_deg, scale):
    """cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale), as the OpenCV docs define it."""
    a = scale * np.cos(np.deg2rad(angle_deg))
    b = scale * np.sin(np.deg2rad(angle_deg))
    cx, cy = w / 2, h / 2
    return np.array([[a, b, (1 - a) * cx - b * cy], [-b, a, b * cx + (1 - a) * cy]])


def np_warp_affine(src, matrix, method):
    """cv2.warpAffine(src, M, (w, h), flags, BORDER_CONSTANT 0) in float64: every destination
    pixel samples the source at M^-1 (x, y); nearest rounds half up. Also returns the pixels
    whose nearest source coordinate is within 1e-3 of a rounding tie."""
    h, w = src.shape[:2]
    inv = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2]
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    sx = inv[0, 0] * x + inv[0, 1] * y + inv[0, 2]
    sy = inv[1, 0] * x + inv[1, 1] * y + inv[1, 2]

    def at(iy, ix):
        inside = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
        value = src[np.clip(iy, 0, h - 1), np.clip(ix, 0, w - 1)].astype(np.float64)
        return np.where(inside[..., None], value, 0.0)

    if method == "nearest":
        ties = (np.abs(sx - np.floor(sx) - 0.5) < 1e-3) | (np.abs(sy - np.floor(sy) - 0.5) < 1e-3)
        return at(np.floor(sy + 0.5).astype(int), np.floor(sx + 0.5).astype(int)), ties
    x0, y0 = np.floor(sx).astype(int), np.floor(sy).astype(int)
    fx, fy = (sx - x0)[..., None], (sy - y0)[..., None]
    top = at(y0, x0) * (1 - fx) + at(y0, x0 + 1) * fx
    bottom = at(y0 + 1, x0) * (1 - fx) + at(y0 + 1, x0 + 1) * fx
    return top * (1 - fy) + bottom * fy, None


def reference_rotate_normals(n, angle_deg):
    """`MTL:data/custom_transforms.py` ScaleNRotate's in-plane rotation, via arctan2."""
    phi = np.arctan2(n[..., 0], n[..., 1])
    r = np.sqrt(n[..., 0] ** 2 + n[..., 1] ** 2)
    out = n.copy()
    out[..., 0] = np.sin(phi + np.deg2rad(angle_deg)) * r
    out[..., 1] = np.cos(phi + np.deg2rad(angle_deg)) * r
    return out


def smooth_normals():
    y, x = np.mgrid[0:H, 0:W]
    n = np.stack([np.sin(x / 9.0), np.cos(y / 7.0), -np.ones_like(x, float) * 1.5], -1)
    return (n / np.linalg.norm(n, axis=-1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("angle,scale", [(0.0, 1.2), (0.0, 1.5), (15.0, 0.8), (-20.0, 1.25)])
def test_scale_and_rotate_matches_cv2_warp_affine(angle, scale):
    example = pattern_example()
    example["normals"] = tf.constant(smooth_normals())
    out = augment.scale_and_rotate(example, tf.constant(angle, tf.float64), scale)
    out = {k: v.numpy() for k, v in out.items()}
    matrix = cv2_rotation_matrix(H, W, angle, scale)
    for key in ("semseg", "edge"):
        expected, ties = np_warp_affine(example[key].numpy(), matrix, "nearest")
        np.testing.assert_array_equal(out[key][~ties], expected[~ties])
        assert ties.mean() < 0.4
    depth, ties = np_warp_affine(example["depth"].numpy(), matrix, "nearest")
    np.testing.assert_allclose(out["depth"][~ties], depth[~ties] / scale, rtol=1e-6)
    image, _ = np_warp_affine(example["image"].numpy(), matrix, "bilinear")
    np.testing.assert_allclose(out["image"], image, atol=2e-3)
    rotated = reference_rotate_normals(smooth_normals().astype(np.float64), angle)
    normals, _ = np_warp_affine(rotated, matrix, "bilinear")
    np.testing.assert_allclose(out["normals"], normals, atol=1e-4)
    if scale < 1 or angle != 0:  # zoom-out and rotation leave a border filled with 0
        assert np.any(np.all(out["normals"] == 0, axis=-1))


def test_rotation_turns_normals_with_the_picture():
    """A normal pointing right in the picture, turned with it by +90 degrees (counter-clockwise
    on screen), points up (-y in image coordinates); the reference's arctan2 form agrees."""
    n = np.zeros((1, 1, 3), np.float32)
    n[..., 0], n[..., 2] = 0.6, -0.8
    out = augment.rotate_normals(tf.constant(n), tf.constant(90.0)).numpy()
    np.testing.assert_allclose(out[0, 0], [0.0, -0.6, -0.8], atol=1e-6)
    np.testing.assert_allclose(out, reference_rotate_normals(n, 90.0), atol=1e-6)


def test_nyud_train_is_a_flip_then_one_of_three_centre_zooms():
    example = pattern_example()
    seen = set()
    for seed in range(24):
        out = augment.nyud_train(dict(example), tf.constant([seed, 5]))
        got = out["semseg"].numpy()
        matched = None
        for flip in (False, True):
            src = {k: v.numpy()[:, ::-1] if flip else v.numpy() for k, v in example.items()}
            for scale in augment.NYUD_SCALES:
                expected, ties = np_warp_affine(
                    src["semseg"], cv2_rotation_matrix(H, W, 0, scale), "nearest"
                )
                if np.array_equal(got[~ties], expected[~ties]):
                    matched = (flip, scale)
                    depth, _ = np_warp_affine(
                        src["depth"], cv2_rotation_matrix(H, W, 0, scale), "nearest"
                    )
                    np.testing.assert_allclose(
                        out["depth"].numpy()[~ties], depth[~ties] / scale, rtol=1e-6
                    )
                    sign = -1.0 if flip else 1.0
                    nx = out["normals"].numpy()[..., 0]
                    assert np.all(sign * nx[~ties] >= -1e-6)  # pattern normals have x >= 0
        assert matched is not None, f"seed {seed}"
        seen.add(matched)
        image = out["image"].numpy()
        assert image.dtype == np.float32 and np.all(image == np.floor(image))
    assert len(seen) >= 4  # flips and zooms both vary with the seed


def test_pascal_train_keeps_labels_aligned_and_resizes():
    example = pattern_example()
    parts = np.zeros((H, W, 1), np.uint8)
    example["human_parts"] = tf.constant(parts)  # no person: all 0 -> ignore at the end
    example["normals"] = tf.constant(smooth_normals())
    for seed in range(4):
        out = augment.pascal_train(dict(example), tf.constant([seed, 9]), (40, 40))
        out = {k: v.numpy() for k, v in out.items()}
        assert out["semseg"].shape == (40, 40, 1) and out["image"].shape == (40, 40, 3)
        assert np.all(out["human_parts"] == 255)
        norms = np.linalg.norm(out["normals"], axis=-1)
        assert np.all((norms < 1e-6) | (np.abs(norms - 1) < 1e-4) | (norms < 1))
        ids = out["semseg"][..., 0].astype(int)
        inside = interior40(ids)
        # Image channel 1 = 3 * id (bicubic resize can only move it slightly in flat areas).
        np.testing.assert_allclose(out["image"][..., 1][inside], (ids * 3)[inside], atol=1.0)


def interior40(ids):
    h, w = ids.shape
    padded = np.pad(ids, 2, mode="edge")
    same = np.ones_like(ids, bool)
    for dy in range(-2, 3):
        for dx in range(-2, 3):
            same &= padded[2 + dy : 2 + dy + h, 2 + dx : 2 + dx + w] == ids
    same[:2], same[-2:], same[:, :2], same[:, -2:] = False, False, False, False
    # (Near the border the bilinear warp of the image blends with the 0 fill where the nearest
    # warp of the labels still rounds inside, as in cv2.)
    return same & (ids > 0)


def torch_nearest(src, out_h, out_w):
    """PyTorch F.interpolate(mode='nearest'): index floor(dst * float32(in / out))."""
    h, w = src.shape[:2]
    ys = np.minimum(np.floor(np.arange(out_h, dtype=np.float32) * np.float32(h / out_h)), h - 1)
    xs = np.minimum(np.floor(np.arange(out_w, dtype=np.float32) * np.float32(w / out_w)), w - 1)
    return src[ys.astype(int)][:, xs.astype(int)]


def torch_bilinear_align_corners(src, out_h, out_w):
    h, w = src.shape[:2]
    sy = np.arange(out_h) * (h - 1) / (out_h - 1)
    sx = np.arange(out_w) * (w - 1) / (out_w - 1)
    y0, x0 = np.floor(sy).astype(int), np.floor(sx).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    fy, fx = (sy - y0)[:, None, None], (sx - x0)[None, :, None]
    s = src.astype(np.float64)
    top = s[y0][:, x0] * (1 - fx) + s[y0][:, x1] * fx
    bottom = s[y1][:, x0] * (1 - fx) + s[y1][:, x1] * fx
    return top * (1 - fy) + bottom * fy


@pytest.mark.parametrize("scale,top,left", [(1.0, 0, 0), (1.2, 3, 7), (1.5, 16, 21)])
def test_lorenmt_scale_crop_matches_pytorch_interpolate(scale, top, left):
    example = pattern_example()
    example["normals"] = tf.constant(smooth_normals())
    out = augment.scale_crop_align_corners(example, scale, top, left)
    out = {k: v.numpy() for k, v in out.items()}
    ch, cw = int(H / scale), int(W / scale)
    window = {k: v.numpy()[top : top + ch, left : left + cw] for k, v in example.items()}
    np.testing.assert_array_equal(out["semseg"], torch_nearest(window["semseg"], H, W))
    np.testing.assert_allclose(
        out["depth"], torch_nearest(window["depth"], H, W) / np.float32(scale), rtol=1e-6
    )
    np.testing.assert_allclose(
        out["image"], torch_bilinear_align_corners(window["image"], H, W), atol=2e-3
    )
    np.testing.assert_allclose(
        out["normals"], torch_bilinear_align_corners(window["normals"], H, W), atol=1e-5
    )


def test_lorenmt_train_draws_scales_offsets_and_flips():
    example = pattern_example()
    flips = 0
    for seed in range(16):
        out = augment.lorenmt_train(dict(example), tf.constant([seed, 2]))
        ratio = (1.0 + out["semseg"].numpy()[..., 0]) / out["depth"].numpy()[..., 0]
        assert np.ptp(ratio) < 1e-4 and np.round(ratio.mean(), 4) in (1.0, 1.2, 1.5)
        nx = out["normals"].numpy()[..., 0]
        flips += bool(np.all(nx <= 1e-6))  # pattern normals have x >= 0
    assert 3 <= flips <= 13


def test_resize_nearest_floor_is_cv2_inter_nearest():
    src = np.arange(7 * 5, dtype=np.uint8).reshape(7, 5, 1)
    out = augment.resize_nearest_floor(tf.constant(src), (16, 3)).numpy()
    ys = np.minimum(np.floor(np.arange(16) * (7 / 16)), 6).astype(int)
    xs = np.minimum(np.floor(np.arange(3) * (5 / 3)), 4).astype(int)
    np.testing.assert_array_equal(out, src[ys][:, xs])


def test_fixed_resize_renormalizes_normals_and_keeps_invalid_zero():
    n = np.zeros((6, 6, 3), np.float32)
    n[:3] = [0.0, 0.0, -2.0]
    out = augment.fixed_resize({"normals": tf.constant(n)}, (6, 6))["normals"].numpy()
    np.testing.assert_allclose(out[0, 0], [0, 0, -1], atol=1e-6)
    np.testing.assert_array_equal(out[5], 0.0)
