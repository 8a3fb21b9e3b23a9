"""Joint augmentation of an image and its dense labels (TensorFlow ops, run inside tf.data).

An example is a dict of `[H, W, C]` tensors: `image` (uint8 RGB) and one entry per task label,
keyed by the task's name (`semseg`, `human_parts`, `edge`, `sal` integer maps with C = 1;
`depth` float32 with C = 1; `normals` float32 with C = 3). Every geometric transform is applied
identically to all of them. Each label's task (`mtnets.tasks`) states how it is resampled
(`Task.interpolation`: nearest neighbours, or smoothly with the image) and how its values
change under a transform (`Task.flipped`, `rotated`, `zoomed`, `project`): depth is divided by
the zoom factor, and the x component of the normals flips sign with the image.

Randomness is stateless: every draw comes from a `seed` tensor (shape [2]) that the pipeline
derives from the experiment seed and the example's position, so a run is reproducible and a
restarted run sees exactly the same augmented examples.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from mtnets import tasks as tasks_lib
from mtnets.data import normalization


def _is_label(key: str) -> bool:
    return key != "image"


def _nearest(key: str) -> bool:
    """Whether field `key` is resampled with nearest neighbours (a label whose task says so);
    the image and the other labels are blended."""
    return _is_label(key) and tasks_lib.get_task(key).interpolation == "nearest"


def _labels_corrected(fields: dict, correct) -> dict:
    """`fields` with `correct(task, value)` applied to every label."""
    return {
        key: correct(tasks_lib.get_task(key), value) if _is_label(key) else value
        for key, value in fields.items()
    }


def random_scale_crop(example: dict, seed, scale_min: float, scale_max: float) -> dict:
    """Crops a random window of 1/s of each side, s ~ U[scale_min, scale_max], and resizes it
    back to the input size: a zoom-in by s at a random position. Every label is resized with
    nearest neighbours and corrected for the zoom (`Task.zoomed`): depth is divided by s, as a
    zoom by s makes the scene look s times closer (docs/reference_notes.md#datasets)."""
    height, width = example["image"].shape[:2]
    s_seed, y_seed, x_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    scale = tf.random.stateless_uniform([], s_seed, scale_min, scale_max)
    crop_h = tf.maximum(tf.cast(tf.math.floor(height / scale), tf.int32), 1)
    crop_w = tf.maximum(tf.cast(tf.math.floor(width / scale), tf.int32), 1)
    top = _uniform_int(y_seed, height - crop_h + 1)
    left = _uniform_int(x_seed, width - crop_w + 1)

    out = {}
    for key, value in example.items():
        window = value[top : top + crop_h, left : left + crop_w]
        method = "nearest" if _is_label(key) else "bilinear"
        resized = tf.image.resize(window, (height, width), method=method)
        if key == "image":
            resized = tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), value.dtype)
        out[key] = tf.ensure_shape(resized, value.shape)
    return _labels_corrected(out, lambda task, value: task.zoomed(value, scale))


def random_flip(example: dict, seed) -> dict:
    """Mirrors everything left-right with probability 1/2 (`flip_left_right`)."""
    flip = tf.random.stateless_uniform([], seed) < 0.5
    return tf.cond(flip, lambda: flip_left_right(example), lambda: dict(example))


def flip_left_right(example: dict) -> dict:
    """Every field mirrored, each label corrected by its task (`Task.flipped`: normals' x
    changes sign)."""
    out = {key: tf.reverse(value, axis=[1]) for key, value in example.items()}
    return _labels_corrected(out, lambda task, value: task.flipped(value))


def normalize_image(image) -> tf.Tensor:
    """uint8 RGB -> float32, scaled to [0, 1], minus the ImageNet mean, over its std."""
    return normalization.normalize(tf.cast(image, tf.float32) / 255.0, "imagenet")


def _uniform_int(seed, upper):
    """An integer uniform in [0, upper)."""
    return tf.random.stateless_uniform([], seed, 0, upper, dtype=tf.int32)


# ===========================================================================================
# The reference augmentations (docs/reference_notes.md#datasets). Label-map fields are `[H, W, 1]`
# uint8,
# `depth` `[H, W, 1]` float32, `normals` `[H, W, 3]` float32, `image` `[H, W, 3]` uint8 or
# float32. Each returns the image as float32 holding what the reference feeds to `ToTensor`.
#
# Interpolation per field, after the reference's FLAGVALS (`MTL:utils/config.py`): nearest for
# the label maps and depth; cubic for image and normals. The cubic warp and resize below
# reproduce OpenCV's INTER_CUBIC for float32 arrays (what the reference warps: its loaders return
# float32 images), read from `opencv:modules/imgproc/src/imgwarp.cpp` and `resize.cpp`:
#   * kernel: Keys' cubic convolution with a = -0.75 (`interpolateCubic`), float32 weights;
#   * cv2.warpAffine: M inverted as cv2 does, the source position of every output pixel in
#     1/1024 px fixed point, rounded to 1/32 px (INTER_TAB_SIZE), 4x4 taps from floor - 1,
#     taps outside the image count as the border value 0 (BORDER_CONSTANT), no rounding;
#   * cv2.resize: half-pixel centres, src = float32((dst + 0.5) * in / out - 0.5), taps clamped
#     to the image (replicated border), a horizontal then a vertical pass.
# They agree with a NumPy transcription and with opencv-python 4.10 to float32 rounding (about
# 1e-7 relative; `tests/data/test_augment.py`). The nearest warps use TensorFlow's projective
# transform (cv2 rounds those coordinates in fixed point too; ties can differ). Everything else
# (matrices, centres, fills, rounding, depth and normals corrections) follows the reference.
# Which fields are nearest is each task's `interpolation`.

# NYUD ScaleNRotate(rots=[0], scales=[1.0, 1.2, 1.5]) (`MTL:utils/common_config.py`).
NYUD_SCALES = (1.0, 1.2, 1.5)
# PASCAL ScaleNRotate(rots=(-20, 20), scales=(.75, 1.25)), continuous uniform draws.
PASCAL_MAX_ROTATION = 20.0
PASCAL_SCALE_RANGE = (0.75, 1.25)
# lorenmt RandomScaleCrop(scale=[1.0, 1.2, 1.5]) (`MTAN:im2im_pred/create_dataset.py`).
LORENMT_SCALES = (1.0, 1.2, 1.5)


def rotation_matrix(height, width, angle_deg, scale) -> tf.Tensor:
    """cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale): the `[2, 3]` map source ->
    destination pixel coordinates (x right, y down; a positive angle turns the picture
    counter-clockwise on screen)."""
    theta = _float64(angle_deg) * (math.pi / 180.0)
    scale = _float64(scale)
    alpha, beta = scale * tf.cos(theta), scale * tf.sin(theta)
    cx, cy = tf.cast(width, tf.float64) / 2.0, tf.cast(height, tf.float64) / 2.0
    return tf.stack(
        [
            tf.stack([alpha, beta, (1 - alpha) * cx - beta * cy]),
            tf.stack([-beta, alpha, beta * cx + (1 - alpha) * cy]),
        ]
    )


def inverse_transform(matrix) -> tf.Tensor:
    """`[2, 3]` source -> destination affine map -> the `[8]` destination -> source vector of
    `ImageProjectiveTransformV3`, which is what cv2.warpAffine samples with (it inverts M)."""
    a = matrix[:, :2]
    t = matrix[:, 2:]
    a_inv = tf.linalg.inv(a)
    t_inv = -tf.matmul(a_inv, t)
    flat = tf.concat([tf.concat([a_inv, t_inv], axis=1), tf.zeros([1, 3], tf.float64)], 0)
    return tf.cast(tf.reshape(flat, [9])[:8], tf.float32)


def warp(value, transform, method: str) -> tf.Tensor:
    """Samples `value` `[H, W, C]` at `transform(x, y)` for every output pixel, outside -> 0
    (cv2.warpAffine with BORDER_CONSTANT 0). `method`: "nearest" (values kept, dtype kept) or
    "bilinear" (float32)."""
    images = value[None] if method == "nearest" else tf.cast(value, tf.float32)[None]
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transform[None],
        output_shape=tf.shape(value)[:2],
        fill_value=tf.constant(0.0, tf.float32),
        interpolation=method.upper(),
        fill_mode="CONSTANT",
    )[0]
    return tf.ensure_shape(out, value.shape)


# OpenCV's fixed-point constants (`opencv:modules/imgproc/src/imgwarp.cpp`, WarpAffineInvoker):
# the affine map is evaluated in 1/AB_SCALE px and rounded to 1/INTER_TAB_SIZE px.
CUBIC_A = -0.75
INTER_BITS = 5
INTER_TAB_SIZE = 1 << INTER_BITS
AB_BITS = 10
AB_SCALE = 1 << AB_BITS


def cubic_coefficients(t) -> tf.Tensor:
    """OpenCV's `interpolateCubic`: the float32 weights of the taps at floor(x) - 1 .. floor(x) + 2
    for the fraction t = x - floor(x) (Keys' kernel, a = -0.75; the last weight is 1 minus the
    others). `[...]` -> `[..., 4]`."""
    a = CUBIC_A
    t = tf.cast(t, tf.float32)
    u = t + 1.0
    c0 = ((a * u - 5 * a) * u + 8 * a) * u - 4 * a
    c1 = ((a + 2) * t - (a + 3)) * t * t + 1.0
    s = 1.0 - t
    c2 = ((a + 2) * s - (a + 3)) * s * s + 1.0
    c3 = 1.0 - c0 - c1 - c2
    return tf.stack([c0, c1, c2, c3], axis=-1)


def cv2_invert_affine(matrix) -> tf.Tensor:
    """The `[2, 3]` float64 destination -> source map that cv2.warpAffine samples with: M
    inverted by its own formula (1 / det, then the translation), so the rounding matches."""
    m = tf.reshape(tf.cast(matrix, tf.float64), [6])
    det = m[0] * m[4] - m[1] * m[3]
    d = tf.where(tf.equal(det, 0.0), tf.zeros_like(det), 1.0 / det)
    a00, a01, a10, a11 = m[4] * d, m[1] * -d, m[3] * -d, m[0] * d
    b0 = -a00 * m[2] - a01 * m[5]
    b1 = -a10 * m[2] - a11 * m[5]
    return tf.reshape(tf.stack([a00, a01, b0, a10, a11, b1]), [2, 3])


def warp_affine_cubic(value, matrix) -> tf.Tensor:
    """cv2.warpAffine(value, matrix, (w, h), flags=INTER_CUBIC) with BORDER_CONSTANT 0 for a
    float32 `[H, W, C]` array (any dtype in, float32 out, no rounding): every output pixel reads
    the 4x4 taps around matrix^-1 (x, y), its position rounded to 1/32 px as cv2 does; taps
    outside the image contribute 0. `matrix`: the `[2, 3]` source -> destination map.

    An axis-aligned map (no rotation, e.g. the NYUD zooms) is resampled separably: a gather of
    4 columns, then of 4 rows. A rotated map gathers the 4x4 taps of every pixel."""
    value = tf.cast(value, tf.float32)
    inv = cv2_invert_affine(matrix)
    aligned = tf.logical_and(tf.equal(inv[0, 1], 0.0), tf.equal(inv[1, 0], 0.0))
    out = tf.cond(
        aligned,
        lambda: _warp_cubic_separable(value, inv),
        lambda: _warp_cubic_general(value, inv),
    )
    return tf.ensure_shape(out, value.shape)


def _fixed_point_position(inv, coordinate: int, height, width):
    """cv2's source x (`coordinate` c = 0) or y (c = 1) in 1/32 px, int32 `[height, width]`
    for the output pixels (x, y) in [0, width) x [0, height): with a = `inv[c]`, per row
    round((a1 y + a2) 1024) + 16, per column round(a0 x 1024), summed, >> 5
    (`WarpAffineInvoker`; saturate_cast<int> rounds half to even, as tf.round does)."""
    ys = tf.range(height, dtype=tf.float64)
    xs = tf.range(width, dtype=tf.float64)
    a = inv[coordinate]
    per_row = tf.round((a[1] * ys + a[2]) * AB_SCALE) + AB_SCALE // INTER_TAB_SIZE // 2
    per_col = tf.round(a[0] * xs * AB_SCALE)
    total = tf.cast(per_row[:, None] + per_col[None, :], tf.int32)
    return tf.bitwise.right_shift(total, AB_BITS - INTER_BITS)


def _split_position(position):
    """A position in 1/32 px -> (its integer part, the weights `[..., 4]` of its fraction, looked
    up in the table of the 32 fractions as cv2 does: `initInterTab1D`)."""
    whole = tf.bitwise.right_shift(position, INTER_BITS)
    fraction = tf.bitwise.bitwise_and(position, INTER_TAB_SIZE - 1)
    table = cubic_coefficients(tf.range(INTER_TAB_SIZE, dtype=tf.float32) / INTER_TAB_SIZE)
    return whole, tf.gather(table, fraction)


def _warp_cubic_separable(value, inv):
    height, width = tf.shape(value)[0], tf.shape(value)[1]
    # An axis-aligned map: x depends on the column only, y on the row only.
    x0, wx = _split_position(_fixed_point_position(inv, 0, 1, width)[0])
    y0, wy = _split_position(_fixed_point_position(inv, 1, height, 1)[:, 0])
    columns = _resample_rows(tf.transpose(value, [1, 0, 2]), x0 - 1, wx, clamp=False)
    return _resample_rows(tf.transpose(columns, [1, 0, 2]), y0 - 1, wy, clamp=False)


def _resample_rows(value, first, weights, clamp: bool):
    """out[i] = sum_k weights[i, k] value[first[i] + k], k = 0..3, along axis 0 of `value`
    `[N, ...]`, summed left to right as cv2 does. Taps outside [0, N) are clamped to the edge
    (`clamp`, cv2.resize) or count as 0 (cv2.warpAffine, BORDER_CONSTANT 0)."""
    size = tf.shape(value)[0]
    out = None
    for k in range(4):
        index = first + k
        weight = weights[:, k]
        if not clamp:
            inside = tf.logical_and(index >= 0, index < size)
            weight = tf.where(inside, weight, tf.zeros_like(weight))
        rows = tf.gather(value, tf.clip_by_value(index, 0, size - 1))
        term = rows * tf.reshape(weight, [-1] + [1] * (len(value.shape) - 1))
        out = term if out is None else out + term
    return out


def _warp_cubic_general(value, inv):
    """The 4x4 taps of every output pixel, weighted by float32(wy wx) as cv2's 2-D table. The
    image is padded with 4 zero pixels on each side and laid out as rows of 4 neighbouring
    pixels, so the taps of a pixel are 4 rows of that layout; a tap window entirely outside the
    image is clamped into the zero padding."""
    height, width, channels = tf.shape(value)[0], tf.shape(value)[1], value.shape[-1]
    x0, wx = _split_position(_fixed_point_position(inv, 0, height, width))
    y0, wy = _split_position(_fixed_point_position(inv, 1, height, width))
    padded = tf.pad(value, [[4, 4], [4, 4], [0, 0]])
    quads = tf.concat([padded[:, k : k + width + 5] for k in range(4)], axis=-1)
    quads = tf.reshape(quads, [-1, 4 * channels])  # [(H + 8) * (W + 5), 4 C]
    left = tf.clip_by_value(x0 + 3, 0, width + 4)  # padded column of the tap at x0 - 1
    top = tf.clip_by_value(y0 + 3, 0, height + 4)
    rows = (top * (width + 5) + left)[..., None] + tf.range(4) * (width + 5)
    taps = tf.reshape(tf.gather(quads, rows), [height, width, 16, channels])
    weights = tf.reshape(wy[..., :, None] * wx[..., None, :], [height, width, 16, 1])
    return tf.reduce_sum(taps * weights, axis=2)


def resize_cubic(value, size) -> tf.Tensor:
    """cv2.resize(value, (w, h), interpolation=INTER_CUBIC) for a float32 `[H, W, C]` array (any
    dtype in, float32 out): half-pixel centres, source x = float32((x + 0.5) in / out - 0.5),
    taps clamped to the image, a horizontal then a vertical pass (`opencv:resize.cpp`,
    resizeGeneric_ with HResizeCubic/VResizeCubic). `size`: (h, w)."""
    value = tf.cast(value, tf.float32)
    out_h, out_w = size
    first_x, wx = _resize_taps(tf.shape(value)[1], out_w)
    first_y, wy = _resize_taps(tf.shape(value)[0], out_h)
    columns = _resample_rows(tf.transpose(value, [1, 0, 2]), first_x, wx, clamp=True)
    out = _resample_rows(tf.transpose(columns, [1, 0, 2]), first_y, wy, clamp=True)
    return tf.ensure_shape(out, (out_h, out_w, value.shape[-1]))


def _resize_taps(in_size, out_size):
    """cv2.resize's first tap (floor(x) - 1) and cubic weights along one axis: scale =
    1 / (out / in) in double, x = float32((dst + 0.5) scale - 0.5)."""
    scale = 1.0 / (tf.cast(out_size, tf.float64) / tf.cast(in_size, tf.float64))
    x = tf.cast((tf.range(out_size, dtype=tf.float64) + 0.5) * scale - 0.5, tf.float32)
    whole = tf.floor(x)
    return tf.cast(whole, tf.int32) - 1, cubic_coefficients(x - whole)


def rotate_normals(normals, angle_deg) -> tf.Tensor:
    """The in-plane part of the normals turned with the picture (`MTL:data/custom_transforms.py`
    ScaleNRotate: with (n_x, n_y) = r (sin phi, cos phi), phi += angle), n_z unchanged."""
    theta = tf.cast(angle_deg, tf.float32) * (math.pi / 180.0)
    c, s = tf.cos(theta), tf.sin(theta)
    nx, ny, nz = tf.unstack(normals, axis=-1)
    return tf.stack([nx * c + ny * s, ny * c - nx * s, nz], axis=-1)


def renormalize(normals) -> tf.Tensor:
    """N / (|N| + eps_float32), as FixedResize does; all-zero normals stay zero (invalid)."""
    norm = tf.norm(normals, axis=-1, keepdims=True)
    return normals / (norm + np.finfo(np.float32).eps)


def scale_and_rotate(fields: dict, angle_deg, scale) -> dict:
    """ScaleNRotate with a drawn angle and scale: every field warped about (w / 2, h / 2) at
    constant size with its own interpolation, normals turned in-plane first, depth / scale.
    The identity (angle 0, scale 1) skips the warps, which then change nothing."""
    angle_deg, scale = _float64(angle_deg), _float64(scale)
    identity = tf.logical_and(tf.equal(angle_deg, 0.0), tf.equal(scale, 1.0))
    return tf.cond(
        identity,
        lambda: {k: v if _nearest(k) else tf.cast(v, tf.float32) for k, v in fields.items()},
        lambda: _warp_fields(fields, angle_deg, scale),
    )


def _warp_fields(fields: dict, angle_deg, scale) -> dict:
    """Nearest labels (label maps, depth) warped with nearest neighbours, the image and smooth
    labels (normals) bicubically (one warp of their channels stacked, so the taps and weights
    are computed once); each label turned before (`Task.rotated`) and corrected for the zoom
    after (`Task.zoomed`)."""
    shape = tf.shape(fields["image"])
    matrix = rotation_matrix(shape[0], shape[1], angle_deg, scale)
    transform = inverse_transform(matrix)
    out = {}
    for key, value in fields.items():
        if _nearest(key):
            out[key] = warp(value, transform, "nearest")
    cubic = {k: tf.cast(v, tf.float32) for k, v in fields.items() if not _nearest(k)}
    cubic = _labels_corrected(cubic, lambda task, value: task.rotated(value, angle_deg))
    out.update(_apply_stacked(cubic, lambda stacked: warp_affine_cubic(stacked, matrix)))
    out = _labels_corrected(out, lambda task, value: task.zoomed(value, scale))
    return {key: out[key] for key in fields}


def _apply_stacked(fields: dict, fn) -> dict:
    """`fn` applied once to the float32 fields stacked along channels, split back by key."""
    if not fields:
        return {}
    keys = list(fields)
    stacked = fn(tf.concat([fields[k] for k in keys], axis=-1))
    parts = tf.split(stacked, [fields[k].shape[-1] for k in keys], axis=-1)
    return dict(zip(keys, parts, strict=True))


def resize_nearest_floor(value, size, float32_scale: bool = False) -> tf.Tensor:
    """Nearest resize with source index min(floor(dst * in / out), in - 1): cv2.INTER_NEAREST
    (double arithmetic) or, with `float32_scale`, PyTorch's legacy 'nearest' (float32)."""
    dtype = tf.float32 if float32_scale else tf.float64
    for axis, out_size in ((0, size[0]), (1, size[1])):
        in_size = tf.shape(value)[axis]
        ratio = tf.cast(in_size, dtype) / tf.cast(out_size, dtype)
        src = tf.cast(tf.floor(tf.cast(tf.range(out_size), dtype) * ratio), tf.int32)
        value = tf.gather(value, tf.minimum(src, in_size - 1), axis=axis)
    return value


def fixed_resize(fields: dict, size) -> dict:
    """FixedResize to `size` (h, w): nearest labels (label maps, depth) cv2 INTER_NEAREST, the
    image and smooth labels (normals) cv2 INTER_CUBIC (`resize_cubic`), then every label
    projected back (`Task.project`: normals re-normalised) (`MTL:data/custom_transforms.py`
    FixedResize, `MTL:utils/helpers.py` fixed_resize)."""
    out = {}
    for key, value in fields.items():
        if _nearest(key):
            value = resize_nearest_floor(value, size)
            out[key] = tf.ensure_shape(value, (size[0], size[1], value.shape[-1]))
    cubic = {k: tf.cast(v, tf.float32) for k, v in fields.items() if not _nearest(k)}
    out.update(_apply_stacked(cubic, lambda stacked: resize_cubic(stacked, size)))
    out = _labels_corrected(out, lambda task, value: task.project(value))
    return {key: out[key] for key in fields}


def to_uint8_range(image) -> tf.Tensor:
    """The reference's `image.astype(np.uint8)` in ToTensor, without its wrap-around for
    values outside [0, 255] (clipped here): float32 integers in [0, 255]."""
    return tf.floor(tf.clip_by_value(tf.cast(image, tf.float32), 0.0, 255.0))


def parts_ignore_if_empty(parts) -> tf.Tensor:
    """AddIgnoreRegions: a human-parts map with no part pixel becomes all ignore (255)."""
    empty = tf.reduce_all(tf.equal(parts, 0))
    return tf.where(empty, tf.fill(tf.shape(parts), tf.constant(255, parts.dtype)), parts)


def nyud_train(fields: dict, seed) -> dict:
    """MTL NYUD training transform: flip (p = 1/2, normals' x negated), centre zoom by a scale
    drawn from {1, 1.2, 1.5} (depth / scale), FixedResize to the same size (normals
    re-normalised)."""
    flip_seed, scale_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    fields = random_flip(fields, flip_seed)
    index = _uniform_int(scale_seed, len(NYUD_SCALES))
    scale = tf.gather(tf.constant(NYUD_SCALES, tf.float64), index)
    fields = scale_and_rotate(fields, tf.constant(0.0, tf.float64), scale)
    return nyud_finish(fields)


def nyud_finish(fields: dict) -> dict:
    """What the NYUD train and test transforms end with: FixedResize to the stored 480x640 (a
    copy in cv2) with the normals re-normalised, and the image as `astype(uint8)` reads it."""
    out = _labels_corrected(fields, lambda task, value: task.project(value))
    out["image"] = to_uint8_range(fields["image"])
    return out


def pascal_train(fields: dict, seed, size) -> dict:
    """MTL PASCAL training transform: flip, rotation U(-20, 20) degrees and scale U(0.75, 1.25)
    about the centre (fill 0: background for the label maps, invalid for normals), FixedResize
    to `size`, empty human-parts maps -> ignore.

    `human_parts` must come in with 0 where the stored map says 255 for "no person" (the
    reference's loader gives zeros there and marks them ignore only at the end)."""
    flip_seed, rot_seed, scale_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    fields = random_flip(fields, flip_seed)
    angle = tf.random.stateless_uniform(
        [], rot_seed, -PASCAL_MAX_ROTATION, PASCAL_MAX_ROTATION, tf.float64
    )
    scale = tf.random.stateless_uniform([], scale_seed, *PASCAL_SCALE_RANGE, dtype=tf.float64)
    fields = scale_and_rotate(fields, angle, scale)
    return pascal_finish(fields, size)


def pascal_finish(fields: dict, size) -> dict:
    """FixedResize to `size`, the image as `astype(uint8)` reads it, AddIgnoreRegions (maps of
    tasks that are `unlabelled_when_empty`: human parts)."""
    out = fixed_resize(fields, size)
    out["image"] = to_uint8_range(out["image"])
    return _labels_corrected(
        out,
        lambda task, value: parts_ignore_if_empty(value) if task.unlabelled_when_empty else value,
    )


def lorenmt_train(fields: dict, seed) -> dict:
    """lorenmt's optional augmentation (`MTAN:im2im_pred/create_dataset.py` RandomScaleCrop, then
    a flip with p = 1/2): s from {1, 1.2, 1.5}, a window of int(H / s) x int(W / s) at a
    uniform random offset (both ends included), resized back by `scale_crop_align_corners`."""
    scale_seed, y_seed, x_seed, flip_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, 4)
    )
    height, width = fields["image"].shape[:2]
    scale = tf.gather(
        tf.constant(LORENMT_SCALES, tf.float64), _uniform_int(scale_seed, len(LORENMT_SCALES))
    )
    crop_h = tf.cast(tf.floor(height / scale), tf.int32)
    crop_w = tf.cast(tf.floor(width / scale), tf.int32)
    top = _uniform_int(y_seed, height - crop_h + 1)
    left = _uniform_int(x_seed, width - crop_w + 1)
    fields = scale_crop_align_corners(fields, scale, top, left)
    return random_flip(fields, flip_seed)


def scale_crop_align_corners(fields: dict, scale, top, left) -> dict:
    """The window of int(H / scale) x int(W / scale) at (top, left) resized back to H x W: image
    and smooth labels (normals) bilinear with align_corners=True (normals not re-normalised),
    nearest labels (label maps, depth) with PyTorch's 'nearest' (floor(dst * in / out) in
    float32); labels corrected for the zoom (`Task.zoomed`: depth / scale)."""
    height, width = fields["image"].shape[:2]
    scale = _float64(scale)
    crop_h = tf.cast(tf.floor(height / scale), tf.int32)
    crop_w = tf.cast(tf.floor(width / scale), tf.int32)
    # align_corners=True: output pixel x samples the window at x * (w - 1) / (W - 1).
    sx = tf.cast(crop_w - 1, tf.float32) / (width - 1)
    sy = tf.cast(crop_h - 1, tf.float32) / (height - 1)
    zero = tf.constant(0.0)
    transform = tf.stack(
        [sx, zero, tf.cast(left, tf.float32), zero, sy, tf.cast(top, tf.float32), zero, zero]
    )
    out = {}
    for key, value in fields.items():
        if _nearest(key):
            window = value[top : top + crop_h, left : left + crop_w]
            value = resize_nearest_floor(window, (height, width), float32_scale=True)
            value = tf.ensure_shape(value, fields[key].shape)
        else:
            value = warp(value, transform, "bilinear")
        out[key] = value
    return _labels_corrected(out, lambda task, value: task.zoomed(value, scale))


def _float64(x) -> tf.Tensor:
    """A float64 scalar; Python numbers are converted exactly (not through float32)."""
    return tf.cast(x, tf.float64) if isinstance(x, tf.Tensor) else tf.constant(x, tf.float64)
