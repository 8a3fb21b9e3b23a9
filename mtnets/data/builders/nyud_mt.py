"""`nyud_mt`: NYUD-v2 for multi-task learning, read from the MTL reference's `NYUD_MT.tgz`.

The archive (docs/reference_notes.md#datasets, `MTL:data/nyud.py`) extracts to `NYUD_MT/` with
`images/<id>.jpg`, `segmentation/<id>.png` (0 void, 1..40 classes), `depth/<id>.npy`
(metres, 0 invalid), `normals/<id>.npy` (HxWx3), `edge/<id>.npy` (binary) and
`gt_sets/{train,val}.txt` (one id per line). It is read from the TFDS manual directory, as the
archive or as the extracted `NYUD_MT/` folder; nothing is downloaded.

Features of each example (all 480x640, the original resolution):

* `id`: text, the id of the split list;
* `image`: uint8 `[H, W, 3]`, the original JPEG bytes (decode them as the pipeline does, with
  `INTEGER_ACCURATE`, to get the reference's PIL pixels);
* `semseg`: uint8 `[H, W, 1]` PNG: 40 classes 0..39 (the archive's 1..40), 255 where the
  archive has 0 (void), as `MTL:data/nyud.py` `_load_semseg` maps them;
* `depth`: float32 `[H, W]` metres, 0 invalid (zlib);
* `normals`: float32 `[H, W, 3]` as stored in the archive (zlib);
* `edge`: uint8 `[H, W, 1]` PNG in {0, 1}: the archive's value >= 0.5, which is what the
  reference's balanced BCE (`torch.ge(label, 0.5)`) reads.

Splits: `train` (`gt_sets/train.txt`) and `validation` (`gt_sets/val.txt`, the reference's
test set).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import ClassVar

import numpy as np
import tensorflow_datasets as tfds

from mtnets import progress
from mtnets.data import ops
from mtnets.data.builders import _manual

NUM_CLASSES = 40
IGNORE_LABEL = 255
ARCHIVE = _manual.ManualArchive(
    archive="NYUD_MT.tgz",
    folder="NYUD_MT",
    url="https://drive.google.com/file/d/14EAEMXmd3zs2hIMY63UhHPSFPDAkiTzw",
    marker="gt_sets",
)
SPLIT_FILES = {"train": "train", "validation": "val"}


@dataclasses.dataclass(eq=False)
class NyudMtConfig(tfds.core.BuilderConfig):
    """The image size every file of the archive must have."""

    height: int = 480
    width: int = 640


def map_semseg(raw: np.ndarray) -> np.ndarray:
    """Archive labels (0 void, 1..40) -> uint8 0..39 with void as 255 (`MTL:data/nyud.py`)."""
    raw = raw.astype(np.int64)
    return np.where(raw == 0, IGNORE_LABEL, raw - 1).astype(np.uint8)


class NyudMt(_manual.ManualArchiveMixin, tfds.core.GeneratorBasedBuilder):
    """NYUD-v2 (MTL reference archive): semseg (40), depth, normals, edge."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES: ClassVar[dict[str, str]] = {"1.0.0": "From NYUD_MT.tgz (2020-12-16 release)."}
    BUILDER_CONFIGS: ClassVar[list[tfds.core.BuilderConfig]] = [
        NyudMtConfig(name="default", description="480x640, as in NYUD_MT.tgz.")
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
                "image": tfds.features.Image(shape=(h, w, 3), encoding_format="jpeg"),
                "semseg": tfds.features.Image(shape=(h, w, 1), dtype=np.uint8),
                "depth": tfds.features.Tensor(shape=(h, w), dtype=np.float32, encoding=zlib),
                "normals": tfds.features.Tensor(shape=(h, w, 3), dtype=np.float32, encoding=zlib),
                "edge": tfds.features.Image(shape=(h, w, 1), dtype=np.uint8),
            }
        )
        return tfds.core.DatasetInfo(builder=self, description=__doc__, features=features)

    def _split_generators(self, dl_manager):
        source = self.open_source(dl_manager)
        splits = {}
        for split, name in SPLIT_FILES.items():
            ids = source.read_lines(f"gt_sets/{name}.txt")
            source.require([p for i in ids for p in _files(i)])
            ids = progress.logged(ids, f"Building nyud_mt {split}", len(ids))
            splits[split] = self._generate_examples(source, ids)
        return splits

    def _generate_examples(self, source, ids) -> Iterator[tuple[str, dict]]:
        for example_id in ids:
            yield example_id, self._example(source, example_id)

    def _example(self, source, example_id: str) -> dict:
        h, w = self.builder_config.height, self.builder_config.width
        image_path, seg_path, depth_path, normals_path, edge_path = (
            source.path(p) for p in _files(example_id)
        )
        image, size = _manual.jpeg_bytes(image_path)
        _check_shape(image_path, size, (h, w))
        semseg = _manual.read_png(seg_path)
        _check_shape(seg_path, semseg.shape, (h, w))
        if semseg.max(initial=0) > NUM_CLASSES:
            raise ValueError(f"{seg_path} has label {semseg.max()} > {NUM_CLASSES}.")
        depth = _manual.read_npy(depth_path).astype(np.float32)
        depth = depth[..., 0] if depth.ndim == 3 and depth.shape[-1] == 1 else depth
        _check_shape(depth_path, depth.shape, (h, w))
        normals = _manual.read_npy(normals_path).astype(np.float32)
        _check_shape(normals_path, normals.shape, (h, w, 3))
        edge = _manual.read_npy(edge_path)
        _check_shape(edge_path, edge.shape, (h, w))
        for path, value in ((depth_path, depth), (normals_path, normals), (edge_path, edge)):
            if not np.all(np.isfinite(value)):
                raise ValueError(f"{path} has non-finite values.")
        return {
            "id": example_id,
            "image": image,
            "semseg": map_semseg(semseg)[..., None],
            "depth": depth,
            "normals": normals,
            "edge": (edge >= 0.5).astype(np.uint8)[..., None],
        }


def _files(example_id: str) -> list[str]:
    return [
        f"images/{example_id}.jpg",
        f"segmentation/{example_id}.png",
        f"depth/{example_id}.npy",
        f"normals/{example_id}.npy",
        f"edge/{example_id}.npy",
    ]


def _check_shape(path: str, shape, expected) -> None:
    if tuple(shape) != tuple(expected):
        raise ValueError(f"{path} has shape {tuple(shape)}; expected {tuple(expected)}.")


# ---------------------------------------------------------------------------------------------
# The MTL reference's NYUD transforms (`MTL:utils/common_config.py`), `config.dataset.augmentation
# = "nyud"`: a flip, ScaleNRotate(rots=[0], scales=[1.0, 1.2, 1.5]) (a centre zoom), and
# FixedResize to the stored 480x640 (a copy in cv2 but for the normals' re-normalisation);
# evaluation: the FixedResize alone.
SCALES = (1.0, 1.2, 1.5)
EVAL_RECIPE = "project_labels|to_uint8_range"
TRAIN_RECIPE = f"random_flip_lr|random_centre_zoom{SCALES}|{EVAL_RECIPE}"
ops.register_recipe(
    "nyud", ops.Recipe(train=lambda ctx: TRAIN_RECIPE, eval=lambda ctx: EVAL_RECIPE)
)
