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
from mtnets.data.cv2_compat import (
    float64,
    resize_cubic,
    resize_nearest_floor,
    rotation_matrix,
    warp_affine_cubic,
)


def _is_label(key: str) -> bool:
    return key != "image"


def _nearest(key: str) -> bool:
    """Whether field `key` is resampled with nearest neighbours (a label whose task says so);
    the image and the other labels are blended."""
    return _is_label(key) and tasks_lib.get_task(key).interpolation == "nearest"


def labels_corrected(fields: dict, correct) -> dict:
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
    top = uniform_int(y_seed, height - crop_h + 1)
    left = uniform_int(x_seed, width - crop_w + 1)

    out = {}
    for key, value in example.items():
        window = value[top : top + crop_h, left : left + crop_w]
        method = "nearest" if _is_label(key) else "bilinear"
        resized = tf.image.resize(window, (height, width), method=method)
        if key == "image":
            resized = tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), value.dtype)
        out[key] = tf.ensure_shape(resized, value.shape)
    return labels_corrected(out, lambda task, value: task.zoomed(value, scale))


def random_flip(example: dict, seed, p: float = 0.5) -> dict:
    """Mirrors everything left-right with probability `p` (`flip_left_right`)."""
    flip = tf.random.stateless_uniform([], seed) < p
    return tf.cond(flip, lambda: flip_left_right(example), lambda: dict(example))


def flip_left_right(example: dict) -> dict:
    """Every field mirrored, each label corrected by its task (`Task.flipped`: normals' x
    changes sign)."""
    out = {key: tf.reverse(value, axis=[1]) for key, value in example.items()}
    return labels_corrected(out, lambda task, value: task.flipped(value))


def normalize_image(image) -> tf.Tensor:
    """uint8 RGB -> float32, scaled to [0, 1], minus the ImageNet mean, over its std."""
    return normalization.normalize(tf.cast(image, tf.float32) / 255.0, "imagenet")


def uniform_int(seed, upper):
    """An integer uniform in [0, upper)."""
    return tf.random.stateless_uniform([], seed, 0, upper, dtype=tf.int32)


# ===========================================================================================
# The resampling of the reference augmentations (docs/reference_notes.md#datasets); the recipes
# that compose them are registered ops (`mtnets.data.ops`) and live beside their dataset's
# builder (`mtnets.data.builders.*`). Label-map fields are `[H, W, 1]` uint8,
# `depth` `[H, W, 1]` float32, `normals` `[H, W, 3]` float32, `image` `[H, W, 3]` uint8 or
# float32. Each returns the image as float32 holding what the reference feeds to `ToTensor`.
#
# Interpolation per field, after the reference's FLAGVALS (`MTL:utils/config.py`): nearest for
# the label maps and depth; cubic for image and normals (each task's `interpolation`). The cubic
# warp and resize reproduce OpenCV's INTER_CUBIC for float32 arrays (what the reference warps:
# its loaders return float32 images), see `mtnets.data.cv2_compat`. The nearest warps use
# TensorFlow's projective transform (cv2 rounds those coordinates in fixed point too; ties can
# differ). Everything else (matrices, centres, fills, rounding, depth and normals corrections)
# follows the reference.

# The recipes' constants under their former names here: (builder module, name there).
_MOVED = {
    "NYUD_SCALES": ("nyud_mt", "SCALES"),
    "PASCAL_MAX_ROTATION": ("pascal_context_mt", "MAX_ROTATION"),
    "PASCAL_SCALE_RANGE": ("pascal_context_mt", "SCALE_RANGE"),
    "LORENMT_SCALES": ("nyuv2_mtan", "SCALES"),
}


def __getattr__(name: str):
    if name in _MOVED:
        module, attribute = _MOVED[name]
        return getattr(_builder(module), attribute)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _builder(module: str):
    """A builder module (imported here on use: the builders import this module)."""
    import importlib

    return importlib.import_module(f"mtnets.data.builders.{module}")


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
    angle_deg, scale = float64(angle_deg), float64(scale)
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
    cubic = labels_corrected(cubic, lambda task, value: task.rotated(value, angle_deg))
    out.update(_apply_stacked(cubic, lambda stacked: warp_affine_cubic(stacked, matrix)))
    out = labels_corrected(out, lambda task, value: task.zoomed(value, scale))
    return {key: out[key] for key in fields}


def _apply_stacked(fields: dict, fn) -> dict:
    """`fn` applied once to the float32 fields stacked along channels, split back by key."""
    if not fields:
        return {}
    keys = list(fields)
    stacked = fn(tf.concat([fields[k] for k in keys], axis=-1))
    parts = tf.split(stacked, [fields[k].shape[-1] for k in keys], axis=-1)
    return dict(zip(keys, parts, strict=True))


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
    out = labels_corrected(out, lambda task, value: task.project(value))
    return {key: out[key] for key in fields}


def to_uint8_range(image) -> tf.Tensor:
    """The reference's `image.astype(np.uint8)` in ToTensor, without its wrap-around for
    values outside [0, 255] (clipped here): float32 integers in [0, 255]."""
    return tf.floor(tf.clip_by_value(tf.cast(image, tf.float32), 0.0, 255.0))


def parts_ignore_if_empty(parts, ignore: int = 255) -> tf.Tensor:
    """AddIgnoreRegions: a human-parts map with no part pixel becomes all `ignore`."""
    empty = tf.reduce_all(tf.equal(parts, 0))
    return tf.where(empty, tf.fill(tf.shape(parts), tf.constant(ignore, parts.dtype)), parts)


# The reference recipes as functions (their ops and strings are beside each builder).
def nyud_train(fields: dict, seed) -> dict:
    """MTL NYUD training transform: flip (p = 1/2, normals' x negated), centre zoom by a scale
    drawn from {1, 1.2, 1.5} (depth / scale), FixedResize to the same size (normals
    re-normalised)."""
    return _apply(_builder("nyud_mt").TRAIN_RECIPE, fields, seed)


def nyud_finish(fields: dict) -> dict:
    """What the NYUD train and test transforms end with: FixedResize to the stored 480x640 (a
    copy in cv2) with the normals re-normalised, and the image as `astype(uint8)` reads it."""
    return _apply(_builder("nyud_mt").EVAL_RECIPE, fields)


def pascal_train(fields: dict, seed, size) -> dict:
    """MTL PASCAL training transform: flip, rotation U(-20, 20) degrees and scale U(0.75, 1.25)
    about the centre (fill 0: background for the label maps, invalid for normals), FixedResize
    to `size`, empty human-parts maps -> ignore.

    `human_parts` must come in with 0 where the stored map says 255 for "no person" (the
    reference's loader gives zeros there and marks them ignore only at the end)."""
    return _apply(_builder("pascal_context_mt").train_recipe(size), fields, seed)


def pascal_finish(fields: dict, size) -> dict:
    """FixedResize to `size`, the image as `astype(uint8)` reads it, AddIgnoreRegions (maps of
    tasks that are `unlabelled_when_empty`: human parts)."""
    return _apply(_builder("pascal_context_mt").finish_recipe(size), fields)


def lorenmt_train(fields: dict, seed) -> dict:
    """lorenmt's optional augmentation (`MTAN:im2im_pred/create_dataset.py` RandomScaleCrop, then
    a flip with p = 1/2): s from {1, 1.2, 1.5}, a window of int(H / s) x int(W / s) at a
    uniform random offset (both ends included), resized back by `scale_crop_align_corners`."""
    return _apply(_builder("nyuv2_mtan").TRAIN_RECIPE, fields, seed)


def _apply(recipe: str, fields: dict, seed=None) -> dict:
    from mtnets.data import ops

    return ops.apply(recipe, fields, seed)


def scale_crop_align_corners(fields: dict, scale, top, left) -> dict:
    """The window of int(H / scale) x int(W / scale) at (top, left) resized back to H x W: image
    and smooth labels (normals) bilinear with align_corners=True (normals not re-normalised),
    nearest labels (label maps, depth) with PyTorch's 'nearest' (floor(dst * in / out) in
    float32); labels corrected for the zoom (`Task.zoomed`: depth / scale)."""
    height, width = fields["image"].shape[:2]
    scale = float64(scale)
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
    return labels_corrected(out, lambda task, value: task.zoomed(value, scale))
