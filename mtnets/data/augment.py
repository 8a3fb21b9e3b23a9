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
