"""Image normalisation and its inverse, in one place (`config.dataset.image_normalization`).

A normalisation is a name of per-channel statistics (`STATISTICS`): `normalize` maps RGB in
[0, 1] to `(x - mean) / std`, `denormalize` maps the model's input back. Everything that
turns a model input back into a picture uses `denormalize` with the config's name, so the
pictures show the images the model was fed, whatever the config (a `nyuv2` config feeds the
stored images as they are: "none").

Plain arithmetic with NumPy constants, so the same functions serve the tf.data pipeline (TF
tensors), `predict.py` (NumPy) and the pictures (NumPy), and importing this module loads no
TensorFlow.
"""

from __future__ import annotations

import numpy as np

IMAGENET_MEAN = np.array((0.485, 0.456, 0.406), np.float32)
IMAGENET_STD = np.array((0.229, 0.224, 0.225), np.float32)

# name -> (mean, std) of RGB in [0, 1], or None for the identity. "imagenet": the MTL
# reference; "none": [0, 1] or the dataset's own range as stored (lorenmt's NYUv2 arrays).
STATISTICS: dict[str, tuple[np.ndarray, np.ndarray] | None] = {
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
    "none": None,
}


def register_normalization(name: str, mean, std) -> None:
    """Adds the normalisation `name`: (x - mean) / std, per RGB channel of x in [0, 1]."""
    mean, std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
    if mean.shape != (3,) or std.shape != (3,) or not np.all(std > 0):
        raise ValueError(f"Normalisation {name!r} needs 3 means and 3 positive stds.")
    STATISTICS[name] = (mean, std)


def check(name: str) -> str:
    if name not in STATISTICS:
        raise ValueError(
            f"Unknown config.dataset.image_normalization {name!r}; use one of "
            f"{', '.join(repr(n) for n in STATISTICS)}."
        )
    return name


def normalize(image, name: str):
    """float RGB in [0, 1] `[..., 3]` -> the model's input convention."""
    statistics = STATISTICS[check(name)]
    if statistics is None:
        return image
    mean, std = statistics
    return (image - mean) / std


def denormalize(image, name: str):
    """The inverse of `normalize`: the model's input back to RGB in [0, 1] (not clipped)."""
    statistics = STATISTICS[check(name)]
    if statistics is None:
        return image
    mean, std = statistics
    return image * std + mean
