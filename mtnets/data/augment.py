"""Joint augmentation of an image and its dense labels (TensorFlow ops, run inside tf.data).

An example is a dict of `[H, W, C]` tensors: `image` (uint8 RGB) and one entry per task label
(`semseg`, `human_parts`, `edge`, `sal` integer maps with C = 1; `depth` float32 with C = 1;
`normals` float32 with C = 3). Every geometric transform is applied identically to all of them;
the labels are resampled with nearest neighbours (a label is never blended), and the values
that change meaning under a transform are corrected: depth is divided by the zoom factor and
the x component of the normals flips sign with the image.

Randomness is stateless: every draw comes from a `seed` tensor (shape [2]) that the pipeline
derives from the experiment seed and the example's position, so a run is reproducible and a
restarted run sees exactly the same augmented examples.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

# ImageNet statistics, the normalization of the reference implementations.
MEAN_RGB = (0.485, 0.456, 0.406)
STD_RGB = (0.229, 0.224, 0.225)


def random_scale_crop(example: dict, seed, scale_min: float, scale_max: float) -> dict:
    """Crops a random window of 1/s of each side, s ~ U[scale_min, scale_max], and resizes it
    back to the input size: a zoom-in by s at a random position. Depth is divided by s, as a
    zoom by s makes the scene look s times closer (REFERENCE.md §7.3)."""
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
        method = "bilinear" if key == "image" else "nearest"
        resized = tf.image.resize(window, (height, width), method=method)
        if key == "image":
            resized = tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), value.dtype)
        if key == "depth":
            resized = resized / scale
        out[key] = tf.ensure_shape(resized, value.shape)
    return out


def random_flip(example: dict, seed) -> dict:
    """Mirrors everything left-right with probability 1/2; normals' x changes sign."""
    flip = tf.random.stateless_uniform([], seed) < 0.5
    return tf.cond(flip, lambda: flip_left_right(example), lambda: dict(example))


def flip_left_right(example: dict) -> dict:
    out = {key: tf.reverse(value, axis=[1]) for key, value in example.items()}
    if "normals" in out:
        out["normals"] = out["normals"] * tf.constant([-1.0, 1.0, 1.0], tf.float32)
    return out


def normalize_image(image) -> tf.Tensor:
    """uint8 RGB -> float32, scaled to [0, 1], minus the ImageNet mean, over its std."""
    image = tf.cast(image, tf.float32) / 255.0
    return (image - tf.constant(MEAN_RGB)) / tf.constant(STD_RGB)


def _uniform_int(seed, upper):
    """An integer uniform in [0, upper)."""
    return tf.random.stateless_uniform([], seed, 0, upper, dtype=tf.int32)


# ===========================================================================================
# The reference augmentations (REFERENCE.md §7.3). Label-map fields are `[H, W, 1]` uint8,
# `depth` `[H, W, 1]` float32, `normals` `[H, W, 3]` float32, `image` `[H, W, 3]` uint8 or
# float32. Each returns the image as float32 holding what the reference feeds to `ToTensor`.
#
# Interpolation per field, after the reference's FLAGVALS (`MTL:utils/config.py`): nearest for
# the label maps and depth; cubic for image and normals. TensorFlow's projective transform has
# nearest and bilinear only, so the warps of image and normals are bilinear here (cv2 warps
# them bicubically, a = -0.75); the PASCAL FixedResize uses `tf.image.resize` bicubic (Keys
# a = -0.5, cv2 has a = -0.75). Everything else (matrices, centres, fills, rounding, depth and
# normals corrections) follows the reference exactly.
NEAREST_FIELDS = ("semseg", "human_parts", "edge", "sal", "depth")

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
        lambda: {
            k: v if k in NEAREST_FIELDS else tf.cast(v, tf.float32) for k, v in fields.items()
        },
        lambda: _warp_fields(fields, angle_deg, scale),
    )


def _warp_fields(fields: dict, angle_deg, scale) -> dict:
    shape = tf.shape(fields["image"])
    transform = inverse_transform(rotation_matrix(shape[0], shape[1], angle_deg, scale))
    out = {}
    for key, value in fields.items():
        if key == "normals":
            value = rotate_normals(value, angle_deg)
        value = warp(value, transform, "nearest" if key in NEAREST_FIELDS else "bilinear")
        if key == "depth":
            value = value / tf.cast(scale, tf.float32)
        out[key] = value
    return out


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
    """FixedResize to `size` (h, w): label maps and depth nearest (cv2), image and normals
    bicubic, then normals re-normalised (`MTL:data/custom_transforms.py` FixedResize)."""
    out = {}
    for key, value in fields.items():
        if key in NEAREST_FIELDS:
            value = resize_nearest_floor(value, size)
            value = tf.ensure_shape(value, (size[0], size[1], value.shape[-1]))
        else:
            value = tf.image.resize(tf.cast(value, tf.float32), size, method="bicubic")
        if key == "normals":
            value = renormalize(value)
        out[key] = value
    return out


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
    out = dict(fields)
    out["image"] = to_uint8_range(fields["image"])
    if "normals" in out:
        out["normals"] = renormalize(out["normals"])
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
    """FixedResize to `size`, the image as `astype(uint8)` reads it, AddIgnoreRegions."""
    out = fixed_resize(fields, size)
    out["image"] = to_uint8_range(out["image"])
    if "human_parts" in out:
        out["human_parts"] = parts_ignore_if_empty(out["human_parts"])
    return out


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
    and normals bilinear with align_corners=True (normals not re-normalised), label maps and
    depth with PyTorch's 'nearest' (floor(dst * in / out) in float32); depth / scale."""
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
        if key in NEAREST_FIELDS:
            window = value[top : top + crop_h, left : left + crop_w]
            value = resize_nearest_floor(window, (height, width), float32_scale=True)
            value = tf.ensure_shape(value, fields[key].shape)
        else:
            value = warp(value, transform, "bilinear")
        if key == "depth":
            value = value / tf.cast(scale, tf.float32)
        out[key] = value
    return out


def _float64(x) -> tf.Tensor:
    """A float64 scalar; Python numbers are converted exactly (not through float32)."""
    return tf.cast(x, tf.float64) if isinstance(x, tf.Tensor) else tf.constant(x, tf.float64)
