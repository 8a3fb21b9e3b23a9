"""`synthetic_scenes`: procedurally rendered indoor scenes with exact labels for six tasks.

The library's default dataset: it is generated locally by `scene_renderer` (nothing is
downloaded), byte-identical on every machine for a given version, config and seed, and small
enough to build in about 45 s on two CPU cores (default config, ~260 MB on disk).

Features of each example (`H`, `W` from the builder config):

* `id`: text, `"<split>/<index:05d>"`, e.g. `"train/00012"`;
* `image`: uint8 `[H, W, 3]` RGB (PNG);
* `semseg`: uint8 `[H, W, 1]` index into `CLASS_NAMES`, 255 on windows (PNG);
* `depth`: float32 `[H, W]` metres along the optical axis, 0 on windows (zlib);
* `normals`: float32 `[H, W, 3]` unit normals in the OpenCV camera frame (x right, y down,
  z forward) pointing towards the camera, all zero on windows (zlib);
* `edge`: uint8 `[H, W, 1]` in {0, 1}, semantic and depth boundaries (PNG);
* `sal`: uint8 `[H, W, 1]` in {0, 1}, 1 on objects (box, sphere, cylinder) (PNG);
* `human_parts`: uint8 `[H, W, 1]` index into `PART_NAMES` (parts of boxes, 0 elsewhere), 255
  on windows and on the whole of an image that shows no box (PNG).

The camera intrinsics are `camera_intrinsics(H, W)`; see `scene_renderer` for the details of
the scenes and the label definitions. Use with
`tfds.builder("synthetic_scenes/tiny", data_dir=...)` after `import mtnets.data.builders`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import ClassVar

import numpy as np
import tensorflow_datasets as tfds

from mtnets import progress
from mtnets.data import ops
from mtnets.data.builders.scene_renderer import (
    CLASS_NAMES,
    IGNORE_LABEL,
    PART_NAMES,
    SPLITS,
    camera_intrinsics,
    render_example,
)

__all__ = [
    "CLASS_NAMES",
    "IGNORE_LABEL",
    "PART_NAMES",
    "SPLITS",
    "SyntheticScenes",
    "SyntheticScenesConfig",
    "camera_intrinsics",
    "example_id",
    "render_example",
]

# Label maps that are stored as single-channel PNGs.
_MASK_KEYS = ("semseg", "edge", "sal", "human_parts")


@dataclasses.dataclass(eq=False)
class SyntheticScenesConfig(tfds.core.BuilderConfig):
    """Image size, split sizes and the seed from which every example is derived."""

    height: int = 128
    width: int = 160
    num_train: int = 2000
    num_validation: int = 300
    seed: int = 0

    def num_examples(self, split: str) -> int:
        return {"train": self.num_train, "validation": self.num_validation}[split]


def example_id(split: str, index: int) -> str:
    """The `id` feature of example `index` of `split`, e.g. `"train/00012"`."""
    return f"{split}/{index:05d}"


class SyntheticScenes(tfds.core.GeneratorBasedBuilder):
    """Procedural indoor scenes with semseg, depth, normals, edge, sal and human_parts labels."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES: ClassVar[dict[str, str]] = {
        "1.0.0": "First release: rooms with pictures and windows, boxes, spheres, cylinders; "
        "one point light with shadows; six exact label maps.",
    }
    BUILDER_CONFIGS: ClassVar[list[tfds.core.BuilderConfig]] = [
        SyntheticScenesConfig(
            name="default",
            description="128x160 images, 2,000 train and 300 validation examples.",
        ),
        SyntheticScenesConfig(
            name="small",
            description="64x96 images (the scenes of `default` at half the resolution, with a "
            "wider aspect so that both sides divide by 32), 2,000 train and 300 validation "
            "examples: the CPU results table.",
            height=64,
            width=96,
        ),
        SyntheticScenesConfig(
            name="tiny",
            description="32x40 images, 24 train and 8 validation examples, for tests.",
            height=32,
            width=40,
            num_train=24,
            num_validation=8,
        ),
    ]
    DEFAULT_CONFIG_NAME = "default"

    def _info(self) -> tfds.core.DatasetInfo:
        h, w = self.builder_config.height, self.builder_config.width
        masks = {key: tfds.features.Image(shape=(h, w, 1), dtype=np.uint8) for key in _MASK_KEYS}
        zlib = tfds.features.Encoding.ZLIB
        features = tfds.features.FeaturesDict(
            {
                "id": tfds.features.Text(),
                "image": tfds.features.Image(shape=(h, w, 3)),
                "depth": tfds.features.Tensor(shape=(h, w), dtype=np.float32, encoding=zlib),
                "normals": tfds.features.Tensor(shape=(h, w, 3), dtype=np.float32, encoding=zlib),
                **masks,
            }
        )
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=features,
            supervised_keys=None,
            homepage=None,
        )

    def download_and_prepare(self, *args, **kwargs):
        progress.quiet_progress_bars_unless_terminal()
        return super().download_and_prepare(*args, **kwargs)

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        del dl_manager  # everything is rendered locally
        return {split: self._generate_examples(split) for split in SPLITS}

    def _generate_examples(self, split: str) -> Iterator[tuple[str, dict[str, object]]]:
        config = self.builder_config
        count = config.num_examples(split)
        what = f"Building synthetic_scenes/{config.name} {split}"
        for index in progress.logged(range(count), what, count):
            arrays = render_example(config.seed, split, index, config.height, config.width)
            example: dict[str, object] = {"id": example_id(split, index), **arrays}
            for key in _MASK_KEYS:
                example[key] = arrays[key][..., None]
            yield example_id(split, index), example


# ---------------------------------------------------------------------------------------------
def train_recipe(ctx: ops.RecipeContext) -> str:
    """`config.dataset.augmentation = "synthetic"`: a zoom-in by s ~ U[scale_min, scale_max]
    at a random position, then a flip with probability 1/2 (none if `flip` is False: p = 0
    keeps the draws of the other ops where they were)."""
    d = ctx.dataset
    p = 0.5 if d.flip else 0.0
    return f"random_scale_crop({float(d.scale_min)!r}, {float(d.scale_max)!r})|random_flip_lr({p})"


ops.register_recipe("synthetic", ops.Recipe(train=train_recipe))
