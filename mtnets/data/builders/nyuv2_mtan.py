"""`nyuv2_mtan`: lorenmt's preprocessed 13-class NYUv2 (288x384), the MTAN/DWA benchmark.

The data (docs/reference_notes.md#datasets, `MTAN:im2im_pred/create_dataset.py`) is a folder
`{train,val}/{image,label,depth,normal}/<idx>.npy`, idx 0..N-1, shared on Dropbox as `nyuv2`.
It is read from the TFDS manual directory as the folder `nyuv2/` or the archive `nyuv2.zip`
(either with `train/` and `val/` at its top level or inside `nyuv2/`); nothing is downloaded.

Features of each example (all 288x384):

* `id`: text, `"<split>/<idx>"` with the archive's split name, e.g. `"val/12"`;
* `image`: float32 `[H, W, 3]` exactly as stored (lorenmt feeds it unnormalised; use
  `config.dataset.image_normalization = "none"` for the reference's input) (zlib);
* `semseg`: uint8 `[H, W, 1]` PNG, 13 classes 0..12, 255 where the archive has -1 (ignore);
* `depth`: float32 `[H, W]` metres, 0 invalid (zlib);
* `normals`: float32 `[H, W, 3]` unit vectors, all-zero invalid (zlib).

Splits: `train` (795 in the real data) and `validation` (the archive's `val`, 654).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from typing import ClassVar

import numpy as np
import tensorflow_datasets as tfds

from mtnets import progress
from mtnets.data import ops
from mtnets.data.builders import _manual

NUM_CLASSES = 13
IGNORE_LABEL = 255
ARCHIVE = _manual.ManualArchive(
    archive="nyuv2.zip",
    folder="nyuv2",
    url="https://www.dropbox.com/sh/86nssgwm6hm3vkb/AACrnUQ4GxpdrBbLjb6n-mWNa?dl=0",
    marker="val/image",
)
SPLIT_DIRS = {"train": "train", "validation": "val"}
FIELDS = ("image", "label", "depth", "normal")


@dataclasses.dataclass(eq=False)
class Nyuv2MtanConfig(tfds.core.BuilderConfig):
    height: int = 288
    width: int = 384


def map_label(raw: np.ndarray) -> np.ndarray:
    """lorenmt labels (-1 ignore, 0..12) -> uint8 with 255 for ignore."""
    return np.where(raw < 0, IGNORE_LABEL, raw).astype(np.uint8)


class Nyuv2Mtan(_manual.ManualArchiveMixin, tfds.core.GeneratorBasedBuilder):
    """lorenmt's NYUv2: semseg (13 classes), depth, normals at 288x384."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES: ClassVar[dict[str, str]] = {"1.0.0": "From lorenmt's preprocessed npy files."}
    BUILDER_CONFIGS: ClassVar[list[tfds.core.BuilderConfig]] = [
        Nyuv2MtanConfig(name="default", description="288x384, as preprocessed by lorenmt.")
    ]
    DEFAULT_CONFIG_NAME = "default"
    ARCHIVE = ARCHIVE
    MANUAL_DOWNLOAD_INSTRUCTIONS = ARCHIVE.instructions(None)

    def _info(self) -> tfds.core.DatasetInfo:
        h, w = self.builder_config.height, self.builder_config.width
        zlib = tfds.features.Encoding.ZLIB
        features = tfds.features.FeaturesDict(
            {
                "id": tfds.features.Text(),
                "image": tfds.features.Tensor(shape=(h, w, 3), dtype=np.float32, encoding=zlib),
                "semseg": tfds.features.Image(shape=(h, w, 1), dtype=np.uint8),
                "depth": tfds.features.Tensor(shape=(h, w), dtype=np.float32, encoding=zlib),
                "normals": tfds.features.Tensor(shape=(h, w, 3), dtype=np.float32, encoding=zlib),
            }
        )
        return tfds.core.DatasetInfo(builder=self, description=__doc__, features=features)

    def _split_generators(self, dl_manager):
        source = self.open_source(dl_manager)
        splits = {}
        for split, name in SPLIT_DIRS.items():
            image_dir = source.path(name, "image")
            if not os.path.isdir(image_dir):
                source.require([f"{name}/image/0.npy"])
            count = len([f for f in os.listdir(image_dir) if f.endswith(".npy")])
            source.require([f"{name}/{field}/{i}.npy" for i in range(count) for field in FIELDS])
            splits[split] = self._generate_examples(source, name, count)
        return splits

    def _generate_examples(self, source, name: str, count: int) -> Iterator[tuple[str, dict]]:
        h, w = self.builder_config.height, self.builder_config.width
        for idx in progress.logged(range(count), f"Building nyuv2_mtan {name}", count):
            paths = {field: source.path(name, field, f"{idx}.npy") for field in FIELDS}
            arrays = {field: _manual.read_npy(path) for field, path in paths.items()}
            expected = {"image": (h, w, 3), "label": (h, w), "depth": (h, w, 1)}
            expected["normal"] = (h, w, 3)
            for field, shape in expected.items():
                value = arrays[field]
                if value.shape != shape:
                    raise ValueError(f"{paths[field]} has shape {value.shape}; expected {shape}.")
                if not np.all(np.isfinite(value)):
                    raise ValueError(f"{paths[field]} has non-finite values.")
            label = arrays["label"]
            bad = (label != np.round(label)) | (label < -1) | (label >= NUM_CLASSES)
            if np.any(bad):
                raise ValueError(
                    f"{paths['label']} has labels outside -1..{NUM_CLASSES - 1}: "
                    f"{np.unique(label[bad])[:5]}."
                )
            yield (
                f"{name}/{idx}",
                {
                    "id": f"{name}/{idx}",
                    "image": arrays["image"].astype(np.float32),
                    "semseg": map_label(label)[..., None],
                    "depth": arrays["depth"][..., 0].astype(np.float32),
                    "normals": arrays["normal"].astype(np.float32),
                },
            )


# ---------------------------------------------------------------------------------------------
# lorenmt's optional augmentation (`MTAN:im2im_pred/create_dataset.py`), `config.dataset.
# augmentation = "lorenmt"`: RandomScaleCrop(scale=[1.0, 1.2, 1.5]), then a flip with p = 1/2;
# evaluation reads the arrays as stored.
SCALES = (1.0, 1.2, 1.5)
TRAIN_RECIPE = f"random_crop_zoom_align_corners{SCALES}|random_flip_lr"
ops.register_recipe("lorenmt", ops.Recipe(train=lambda ctx: TRAIN_RECIPE))
