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
    expected = (1.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(out[0, 0], expected, rtol=1e-6)


# =============================================================================================
# The reference augmentations, against NumPy transcriptions of the cv2 / PyTorch operations.
def cv2_rotation_matrix(h, w, angle_deg, scale):
    """cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale), as the OpenCV docs define it."""
    a = scale * np.cos(np.deg2rad(angle_deg))
    b = scale * np.sin(np.deg2rad(angle_deg))
    cx, cy = w / 2, h / 2
    return np.array([[a, b, (1 - a) * cx - b * cy], [-b, a, b * cx + (1 - a) * cy]])


def np_warp_affine_nearest(src, matrix):
    """cv2.warpAffine(src, M, (w, h), INTER_NEAREST, BORDER_CONSTANT 0) in float64: every
    destination pixel takes the source pixel nearest to M^-1 (x, y), rounding half up. Also
    returns the pixels whose source coordinate is within 1e-3 of a rounding tie."""
    h, w = src.shape[:2]
    inv = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2]
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    sx = inv[0, 0] * x + inv[0, 1] * y + inv[0, 2]
    sy = inv[1, 0] * x + inv[1, 1] * y + inv[1, 2]
    iy, ix = np.floor(sy + 0.5).astype(int), np.floor(sx + 0.5).astype(int)
    inside = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
    value = src[np.clip(iy, 0, h - 1), np.clip(ix, 0, w - 1)].astype(np.float64)
    ties = (np.abs(sx - np.floor(sx) - 0.5) < 1e-3) | (np.abs(sy - np.floor(sy) - 0.5) < 1e-3)
    return np.where(inside[..., None], value, 0.0), ties


# ---------------------------------------------------------------------------------------------
# OpenCV's INTER_CUBIC for float32 arrays, transcribed from opencv/modules/imgproc/src/
# imgwarp.cpp (interpolateCubic, initInterTab2D, WarpAffineInvoker, remapBicubic) and resize.cpp
# (resize, HResizeCubic, VResizeCubic).
def cv2_cubic_weights(t):
    """interpolateCubic in float32: weights of the taps at floor - 1 .. floor + 2, a = -0.75."""
    f = np.float32
    t = np.asarray(t, f)
    a = f(-0.75)
    c0 = ((a * (t + f(1)) - f(5) * a) * (t + f(1)) + f(8) * a) * (t + f(1)) - f(4) * a
    c1 = ((a + f(2)) * t - (a + f(3))) * t * t + f(1)
    c2 = ((a + f(2)) * (f(1) - t) - (a + f(3))) * (f(1) - t) * (f(1) - t) + f(1)
    c3 = f(1) - c0 - c1 - c2
    return np.stack([c0, c1, c2, c3], -1)


def cv2_warp_affine_cubic(src, matrix):
    """cv2.warpAffine(src, M, (w, h), flags=INTER_CUBIC), BORDER_CONSTANT 0, float32 src."""
    src = src.astype(np.float32)
    h, w = src.shape[:2]
    m = np.asarray(matrix, np.float64).ravel()
    d = m[0] * m[4] - m[1] * m[3]
    d = 1.0 / d if d != 0 else 0.0
    a00, a01, a10, a11 = m[4] * d, m[1] * -d, m[3] * -d, m[0] * d
    b0, b1 = -a00 * m[2] - a01 * m[5], -a10 * m[2] - a11 * m[5]
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    # Fixed point: 1/1024 px per row and column, + half of 1/32, >> 5 -> 1/32 px.
    big_x = (np.rint((a01 * y + b0) * 1024) + 16 + np.rint(a00 * x * 1024)).astype(np.int64) >> 5
    big_y = (np.rint((a11 * y + b1) * 1024) + 16 + np.rint(a10 * x * 1024)).astype(np.int64) >> 5
    table = cv2_cubic_weights(np.arange(32, dtype=np.float32) * np.float32(1 / 32))
    wx, wy = table[big_x & 31], table[big_y & 31]
    sx, sy = (big_x >> 5) - 1, (big_y >> 5) - 1
    out = np.zeros(src.shape, np.float32)
    for i in range(4):
        for j in range(4):
            ty, tx = sy + i, sx + j
            inside = (ty >= 0) & (ty < h) & (tx >= 0) & (tx < w)
            tap = src[np.clip(ty, 0, h - 1), np.clip(tx, 0, w - 1)]
            weight = (wy[..., i] * wx[..., j])[..., None]
            out += np.where(inside[..., None], tap * weight, np.float32(0))
    return out


def cv2_resize_cubic(src, out_h, out_w):
    """cv2.resize(src, (out_w, out_h), interpolation=INTER_CUBIC), float32 src."""
    src = src.astype(np.float32)

    def taps(n_in, n_out):
        x = ((np.arange(n_out) + 0.5) * (1.0 / (n_out / n_in)) - 0.5).astype(np.float32)
        whole = np.floor(x)
        index = np.clip(whole.astype(int)[:, None] + np.arange(-1, 3), 0, n_in - 1)
        return index, cv2_cubic_weights(x - whole)

    (ix, wx), (iy, wy) = taps(src.shape[1], out_w), taps(src.shape[0], out_h)
    rows = sum(src[:, ix[:, k]] * wx[None, :, k, None] for k in range(4))
    return sum(rows[iy[:, k]] * wy[:, k, None, None] for k in range(4))


def keys_kernel(d):
    """Keys' cubic convolution kernel with a = -0.75 (float64), d = distance in pixels."""
    d, a = np.abs(d), -0.75
    near = ((a + 2) * d - (a + 3)) * d * d + 1
    far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    return np.where(d <= 1, near, np.where(d < 2, far, 0.0))


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
        expected, ties = np_warp_affine_nearest(example[key].numpy(), matrix)
        np.testing.assert_array_equal(out[key][~ties], expected[~ties])
        assert ties.mean() < 0.4
    depth, ties = np_warp_affine_nearest(example["depth"].numpy(), matrix)
    np.testing.assert_allclose(out["depth"][~ties], depth[~ties] / scale, rtol=1e-6)
    # Image and normals: cv2 INTER_CUBIC (float32 values, so no rounding).
    image = cv2_warp_affine_cubic(example["image"].numpy().astype(np.float32), matrix)
    np.testing.assert_allclose(out["image"], image, atol=2e-4)
    rotated = reference_rotate_normals(smooth_normals(), angle)
    np.testing.assert_allclose(out["normals"], cv2_warp_affine_cubic(rotated, matrix), atol=2e-6)
    if scale < 1 or angle != 0:  # zoom-out and rotation leave a border filled with 0
        assert np.any(np.all(out["normals"] == 0, axis=-1))


WARP_CASES = [(0.0, 1.0), (0.0, 1.2), (0.0, 1.5), (0.0, 0.8), (15.0, 0.8), (-20.0, 1.25)]


@pytest.mark.parametrize("angle,scale", WARP_CASES)
def test_warp_affine_cubic_matches_opencv_transcription(angle, scale):
    """Rotation and scale about the centre of a 7x9 image (axis-aligned maps take the separable
    path), against the transcription of cv2's fixed-point positions and 4x4 taps."""
    src = np.random.default_rng(3).uniform(0, 255, (7, 9, 3)).astype(np.float32)
    matrix = cv2_rotation_matrix(7, 9, angle, scale)
    out = augment.warp_affine_cubic(tf.constant(src), tf.constant(matrix)).numpy()
    expected = cv2_warp_affine_cubic(src, matrix)
    np.testing.assert_allclose(out, expected, atol=1e-4)  # float32 rounding of values < 255
    if (angle, scale) == (0.0, 1.0):
        np.testing.assert_array_equal(out, src)  # the identity: weights (0, 1, 0, 0)
    else:
        assert np.abs(out - src).max() > 10  # a real resampling, not a copy


@pytest.mark.parametrize("dx", [0.25, 0.26, -1.5])
def test_warp_affine_cubic_spreads_an_impulse_with_the_keys_kernel(dx):
    """A single bright pixel shifted by dx: row 3 holds Keys' a = -0.75 kernel at the distances
    to the shifted position, which cv2 rounds to 1/32 px (0.26 -> 0.25); other rows stay 0."""
    src = np.zeros((7, 9, 1), np.float32)
    src[3, 4] = 1.0
    matrix = np.array([[1.0, 0.0, dx], [0.0, 1.0, 0.0]])
    out = augment.warp_affine_cubic(tf.constant(src), tf.constant(matrix)).numpy()[..., 0]
    shift = np.round(dx * 32) / 32
    np.testing.assert_allclose(out[3], keys_kernel(np.arange(9) - 4 - shift), atol=1e-7)
    np.testing.assert_array_equal(np.delete(out, 3, axis=0), 0.0)


def test_warp_affine_cubic_border_taps_count_as_zero():
    """A constant image zoomed out: inside, the weights sum to 1 (value kept); at the image's
    edge the taps outside add 0 (darker, cv2 BORDER_CONSTANT), beyond it everything is 0."""
    src = np.full((7, 9, 2), 100.0, np.float32)
    matrix = cv2_rotation_matrix(7, 9, 0.0, 0.5)
    out = augment.warp_affine_cubic(tf.constant(src), tf.constant(matrix)).numpy()
    np.testing.assert_allclose(out, cv2_warp_affine_cubic(src, matrix), atol=1e-4)
    np.testing.assert_allclose(out[3, 4], 100.0, atol=1e-4)
    assert np.all(out[0] == 0.0) and np.all(out[:, 0] == 0.0)


@pytest.mark.parametrize("size", [(16, 20), (4, 5), (7, 9), (11, 4)])
def test_resize_cubic_matches_opencv_transcription(size):
    """cv2.resize INTER_CUBIC of 7x9: up, down, identity and mixed, border taps clamped."""
    src = np.random.default_rng(4).uniform(0, 255, (7, 9, 3)).astype(np.float32)
    out = augment.resize_cubic(tf.constant(src), size).numpy()
    expected = cv2_resize_cubic(src, *size)
    np.testing.assert_allclose(out, expected, atol=1e-4)
    if size == (7, 9):
        np.testing.assert_array_equal(out, src)


def test_resize_cubic_doubles_with_keys_weights_and_replicated_border():
    """Doubling a 1-D ramp-plus-impulse: output x samples (x + 0.5) / 2 - 0.5, i.e. fraction
    0.75 or 0.25, so each value is the Keys kernel at those distances, edge taps clamped."""
    row = np.array([0.0, 0.0, 8.0, 0.0, 0.0, 4.0], np.float32)
    out = augment.resize_cubic(tf.constant(row[None, :, None]), (1, 12)).numpy()[0, :, 0]
    expected = []
    for x in range(12):
        pos = (x + 0.5) / 2 - 0.5
        taps = np.floor(pos) + np.arange(-1, 3)
        values = row[np.clip(taps.astype(int), 0, 5)]
        expected.append(np.sum(values * keys_kernel(taps - pos)))
    np.testing.assert_allclose(out, expected, atol=1e-5)


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
                expected, ties = np_warp_affine_nearest(
                    src["semseg"], cv2_rotation_matrix(H, W, 0, scale)
                )
                if np.array_equal(got[~ties], expected[~ties]):
                    matched = (flip, scale)
                    depth, _ = np_warp_affine_nearest(
                        src["depth"], cv2_rotation_matrix(H, W, 0, scale)
                    )
                    np.testing.assert_allclose(
                        out["depth"].numpy()[~ties], depth[~ties] / scale, rtol=1e-6
                    )
                    # Normals: x negated by the flip, cubic warp (none at zoom 1), renormalised.
                    normals = src["normals"] * np.array([-1.0 if flip else 1.0, 1.0, 1.0])
                    if scale != 1.0:
                        normals = cv2_warp_affine_cubic(
                            normals, cv2_rotation_matrix(H, W, 0, scale)
                        )
                    norm = np.linalg.norm(normals, axis=-1, keepdims=True)
                    expected_normals = normals / (norm + np.finfo(np.float32).eps)
                    np.testing.assert_allclose(out["normals"].numpy(), expected_normals, atol=1e-5)
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
    diffs = []
    for seed in range(4):
        out = augment.pascal_train(dict(example), tf.constant([seed, 9]), (40, 40))
        out = {k: v.numpy() for k, v in out.items()}
        assert out["semseg"].shape == (40, 40, 1) and out["image"].shape == (40, 40, 3)
        assert np.all(out["human_parts"] == 255)
        norms = np.linalg.norm(out["normals"], axis=-1)
        assert np.all((norms < 1e-6) | (np.abs(norms - 1) < 1e-4) | (norms < 1))
        ids = out["semseg"][..., 0].astype(int)
        inside = interior40(ids)
        diffs.append(np.abs(out["image"][..., 1][inside] - (ids * 3)[inside]))
    # Image channel 1 = 3 * id inside the label blocks: the image stays aligned with the labels.
    # The cubic warp and resize ring near block edges (weights down to -0.1 on steps of 3 or
    # 24), so a few pixels move by up to 3; most do not move at all.
    diffs = np.concatenate(diffs)
    assert diffs.size >= 40 and np.max(diffs) <= 4.0 and np.median(diffs) <= 1.0


def interior40(ids):
    h, w = ids.shape
    padded = np.pad(ids, 2, mode="edge")
    same = np.ones_like(ids, bool)
    for dy in range(-2, 3):
        for dx in range(-2, 3):
            same &= padded[2 + dy : 2 + dy + h, 2 + dx : 2 + dx + w] == ids
    same[:2], same[-2:], same[:, :2], same[:, -2:] = False, False, False, False
    # (Near the border the cubic warp of the image blends with the 0 fill where the nearest
    # warp of the labels still rounds inside, as in cv2.)
    return same & (ids > 0)


@pytest.mark.parametrize("angle,scale", [(12.0, 0.9), (0.0, 1.1)])
def test_pascal_warp_then_fixed_resize_matches_cv2_chain(angle, scale):
    """ScaleNRotate then FixedResize (PASCAL, 48x64 -> 40x40) against the transcriptions: image
    and normals cv2.warpAffine then cv2.resize INTER_CUBIC, the image floored as astype(uint8)
    does, the normals renormalised."""
    example = pattern_example()
    image = np.random.default_rng(5).uniform(0, 255, (H, W, 3)).astype(np.float32)
    example["image"] = tf.constant(image)
    example["normals"] = tf.constant(smooth_normals())
    fields = augment.scale_and_rotate(example, tf.constant(angle, tf.float64), scale)
    out = {k: v.numpy() for k, v in augment.pascal_finish(fields, (40, 40)).items()}
    matrix = cv2_rotation_matrix(H, W, angle, scale)
    expected = cv2_resize_cubic(cv2_warp_affine_cubic(image, matrix), 40, 40)
    expected = np.clip(expected, 0, 255)
    clear = np.abs(expected - np.round(expected)) > 1e-3  # floor cannot flip on rounding
    assert clear.mean() > 0.7  # the rest: mostly the border's exact 0
    np.testing.assert_array_equal(out["image"][clear], np.floor(expected)[clear])
    assert np.all(np.abs(out["image"] - expected) <= 1.0)
    normals = cv2_warp_affine_cubic(reference_rotate_normals(smooth_normals(), angle), matrix)
    normals = cv2_resize_cubic(normals, 40, 40)
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True) + np.finfo(np.float32).eps
    np.testing.assert_allclose(out["normals"], normals, atol=1e-5)


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
