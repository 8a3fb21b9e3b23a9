"""Image normalisation and its inverse, in one place (`config.dataset.image_normalization`).

Plain arithmetic with NumPy constants, so the same functions serve the tf.data pipeline (TF
tensors), `predict.py` (NumPy) and the pictures (NumPy), and importing this module loads no
TensorFlow.
"""

from __future__ import annotations

import numpy as np

IMAGENET_MEAN = np.array((0.485, 0.456, 0.406), np.float32)
IMAGENET_STD = np.array((0.229, 0.224, 0.225), np.float32)
# "imagenet": (x - mean) / std of RGB in [0, 1] (the MTL reference); "none": [0, 1] or the
# dataset's own range as stored (lorenmt's NYUv2 arrays).
NORMALIZATIONS = ("imagenet", "none")


def check(name: str) -> str:
    if name not in NORMALIZATIONS:
        raise ValueError(
            f"Unknown config.dataset.image_normalization {name!r}; use one of "
            f"{', '.join(repr(n) for n in NORMALIZATIONS)}."
        )
    return name


def normalize(image, name: str):
    """float RGB in [0, 1] `[..., 3]` -> the model's input convention."""
    if check(name) == "imagenet":
        return (image - IMAGENET_MEAN) / IMAGENET_STD
    return image


def denormalize(image, name: str):
    """The inverse of `normalize`: the model's input back to RGB in [0, 1] (not clipped)."""
    if check(name) == "imagenet":
        return image * IMAGENET_STD + IMAGENET_MEAN
    return image
