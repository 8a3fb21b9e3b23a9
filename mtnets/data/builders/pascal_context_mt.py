"""`pascal_context_mt`: PASCAL-Context for multi-task learning, from the ASTMT `PASCAL_MT.tgz`.

The archive (docs/reference_notes.md#datasets, `MTL:data/pascal_context.py`) extracts to
`PASCAL_MT/` with
`JPEGImages/<id>.jpg`, `pascal-context/trainval/<id>.mat` (`LabelMap`, the 459 Context
classes), `semseg/{VOC12,pascal-context}/<id>.png`, `human_parts/<id>.mat` (Pascal-Part
`anno` structs), `normals_distill/<id>.png`, `sal_distill/<id>.png` and
`ImageSets/Context/{train,val}.txt`. It is read from the TFDS manual directory as the archive
or the extracted `PASCAL_MT/` folder; nothing is downloaded.

Features, every map at the image's own (variable, at most 500x500) size:

* `id`: text, e.g. `"2008_000002"`;
* `image`: uint8 `[H, W, 3]`, the original JPEG bytes;
* `semseg`: uint8 `[H, W, 1]` PNG, 21 classes (0 background, 20 VOC), 255 ignore, as stored
  (`semseg/VOC12/` first, else `semseg/pascal-context/`, as the reference looks them up);
* `human_parts`: uint8 `[H, W, 1]` PNG, 7 classes (0 background, head, torso, upper arm,
  lower arm, upper leg, lower leg: the reference's 6-part grouping of the Pascal-Part names)
  drawn from the parts of every person (class 15) that has parts, later parts over earlier
  ones; all 255 when no part pixel exists (no person, or persons without parts);
* `sal`: uint8 `[H, W, 1]` PNG in {0, 1}: distilled saliency / 255 > 0.5;
* `normals`: uint8 `[H, W, 3]` PNG codes c of the distilled normals, normal = 2 c / 255 - 1
  (the pipeline decodes them); (0, 0, 0) marks the pixels whose Context class is not among
  the classes shared with NYU (+ tvmonitor), where the reference sets the normals to 0 (a
  code (0, 0, 0) cannot encode a unit normal, so the mark is unambiguous);
* `edge`: uint8 `[H, W, 1]` PNG in {0, 1}: |Laplacian(LabelMap)| > 0 (3x3 cross kernel,
  reflected border, as `cv2.Laplacian` with ksize 1) thinned to one pixel (Guo & Hall 1989,
  the algorithm of `skimage.morphology.thin`).

Splits: `train` (`ImageSets/Context/train.txt`, 4,998 images) and `validation` (`val.txt`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from mtnets import progress
from mtnets.data import augment, ops
from mtnets.data.builders import _manual

IGNORE_LABEL = 255
PERSON_CLASS = 15  # VOC / Pascal-Part class index of "person"
ARCHIVE = _manual.ManualArchive(
    archive="PASCAL_MT.tgz",
    folder="PASCAL_MT",
    url="https://data.vision.ee.ethz.ch/kmaninis/share/MTL/PASCAL_MT.tgz",
    marker="ImageSets/Context",
)
SPLIT_FILES = {"train": "train", "validation": "val"}

# Pascal-Part person part names -> the 6 parts of the reference (`HUMAN_PART[6]`).
PART_GROUPS = {
    1: ("hair", "head", "lear", "lebrow", "leye", "mouth", "nose", "rear", "rebrow", "reye"),
    2: ("neck", "torso"),
    3: ("luarm", "ruarm"),
    4: ("lhand", "llarm", "rhand", "rlarm"),
    5: ("luleg", "ruleg"),
    6: ("lfoot", "llleg", "rfoot", "rlleg"),
}
PART_IDS = {name: part for part, names in PART_GROUPS.items() for name in names}

# PASCAL-Context label ids (of the 459-class `LabelMap`) on which the distilled normals are kept:
# the classes whose name is also an NYU class (`unknown` excluded), plus tvmonitor (427), as the
# reference computes them from `nyu_classes.json` and `context_classes.json`.
NORMALS_VALID_CLASSES = frozenset(
    # fmt: off
    (
        3,
        4,
        6,
        9,
        10,
        11,
        13,
        15,
        17,
        18,
        22,
        23,
        29,
        30,
        33,
        34,
        36,
        37,
        38,
        39,
        41,
        43,
        46,
        49,
        50,
        51,
        53,
        55,
        56,
        59,
        61,
        62,
        65,
        66,
        68,
        69,
        72,
        73,
        78,
        83,
        84,
        85,
        87,
        88,
        95,
        96,
        101,
        104,
        105,
        107,
        111,
        113,
        115,
        122,
        124,
        135,
        141,
        142,
        143,
        146,
        150,
        154,
        157,
        158,
        159,
        165,
        172,
        174,
        181,
        183,
        184,
        191,
        193,
        195,
        197,
        199,
        202,
        213,
        215,
        216,
        219,
        220,
        223,
        225,
        228,
        230,
        232,
        233,
        238,
        239,
        242,
        243,
        246,
        250,
        251,
        252,
        255,
        260,
        261,
        263,
        269,
        272,
        273,
        275,
        281,
        283,
        284,
        285,
        286,
        287,
        288,
        290,
        291,
        292,
        293,
        295,
        304,
        307,
        309,
        310,
        314,
        315,
        319,
        323,
        329,
        330,
        331,
        336,
        342,
        345,
        349,
        350,
        351,
        352,
        355,
        357,
        368,
        370,
        371,
        374,
        379,
        380,
        383,
        384,
        397,
        401,
        403,
        405,
        407,
        408,
        411,
        412,
        413,
        414,
        417,
        419,
        421,
        423,
        427,
        429,
        430,
        432,
        440,
        441,
        442,
        443,
        444,
        446,
        454,
        457,
    )
    # fmt: on
)


class PascalContextMt(_manual.ManualArchiveMixin, tfds.core.GeneratorBasedBuilder):
    """PASCAL-Context MT: semseg (21), human_parts (7), sal, normals, edge; variable size."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES: ClassVar[dict[str, str]] = {"1.0.0": "From PASCAL_MT.tgz (ASTMT release)."}
    # One config, so that `pascal_context_mt/default` works like the other datasets' names.
    BUILDER_CONFIGS: ClassVar[list[tfds.core.BuilderConfig]] = [
        tfds.core.BuilderConfig(name="default", description="Original image sizes.")
    ]
    DEFAULT_CONFIG_NAME = "default"
    ARCHIVE = ARCHIVE
    MANUAL_DOWNLOAD_INSTRUCTIONS = ARCHIVE.instructions(None)

    def _info(self) -> tfds.core.DatasetInfo:
        def label(channels=1):
            return tfds.features.Image(shape=(None, None, channels), dtype=np.uint8)

        features = tfds.features.FeaturesDict(
            {
                "id": tfds.features.Text(),
                "image": tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg"),
                "semseg": label(),
                "human_parts": label(),
                "sal": label(),
                "normals": label(3),
                "edge": label(),
            }
        )
        return tfds.core.DatasetInfo(builder=self, description=__doc__, features=features)

    def _split_generators(self, dl_manager):
        source = self.open_source(dl_manager)
        splits = {}
        for split, name in SPLIT_FILES.items():
            ids = source.read_lines(f"ImageSets/Context/{name}.txt")
            source.require([p for i in ids for p in _fixed_files(i)])
            missing = [i for i in ids if _semseg_file(source, i) is None]
            if missing:
                source.require([f"semseg/VOC12/{i}.png" for i in missing])
            ids = progress.logged(ids, f"Building pascal_context_mt {split}", len(ids))
            splits[split] = self._generate_examples(source, ids)
        return splits

    def _generate_examples(self, source, ids) -> Iterator[tuple[str, dict]]:
        for example_id in ids:
            yield example_id, _example(source, example_id)


def _fixed_files(example_id: str) -> list[str]:
    return [
        f"JPEGImages/{example_id}.jpg",
        f"pascal-context/trainval/{example_id}.mat",
        f"human_parts/{example_id}.mat",
        f"normals_distill/{example_id}.png",
        f"sal_distill/{example_id}.png",
    ]


def _semseg_file(source, example_id: str) -> str | None:
    import os

    for folder in ("VOC12", "pascal-context"):
        path = source.path("semseg", folder, f"{example_id}.png")
        if os.path.isfile(path):
            return path
    return None


def _example(source, example_id: str) -> dict:
    image_path = source.path("JPEGImages", f"{example_id}.jpg")
    image, size = _manual.jpeg_bytes(image_path)

    label_path = source.path("pascal-context", "trainval", f"{example_id}.mat")
    mat = _manual.read_mat(label_path)
    if "LabelMap" not in mat:
        raise ValueError(f"{label_path} has no LabelMap.")
    label_map = np.asarray(mat["LabelMap"])
    _check_shape(label_path, label_map.shape, size)

    seg_path = _semseg_file(source, example_id)
    semseg = _manual.read_png(seg_path)
    _check_shape(seg_path, semseg.shape, size)
    if np.any((semseg > 20) & (semseg != IGNORE_LABEL)):
        raise ValueError(f"{seg_path} has labels outside 0..20 and 255.")

    parts_path = source.path("human_parts", f"{example_id}.mat")
    parts = human_parts(_manual.read_mat(parts_path), size, parts_path)

    normals_path = source.path("normals_distill", f"{example_id}.png")
    codes = _manual.read_png(normals_path)
    _check_shape(normals_path, codes.shape, (*size, 3))
    valid = np.isin(label_map, list(NORMALS_VALID_CLASSES))
    codes = np.where(valid[..., None], codes, 0).astype(np.uint8)

    sal_path = source.path("sal_distill", f"{example_id}.png")
    sal = _manual.read_png(sal_path)
    _check_shape(sal_path, sal.shape, size)

    return {
        "id": example_id,
        "image": image,
        "semseg": semseg.astype(np.uint8)[..., None],
        "human_parts": parts[..., None],
        "sal": (sal.astype(np.float32) / 255.0 > 0.5).astype(np.uint8)[..., None],
        "normals": codes,
        "edge": context_edges(label_map).astype(np.uint8)[..., None],
    }


def human_parts(mat: dict, size, path: str) -> np.ndarray:
    """uint8 `[H, W]` part ids from a Pascal-Part annotation, indexed as the reference does
    (`anno[0][0][1][0]` = objects; object fields class, class_ind, mask, parts; part fields
    part_name, mask); all 255 when no part pixel exists."""
    target = np.zeros(size, np.uint8)
    try:
        objects = mat["anno"][0][0][1][0]
        # The reference reads parts only when a person of non-zero area is in the image.
        has_person = any(
            int(obj[1][0][0]) == PERSON_CLASS and np.sum(obj[2]) > 0 for obj in objects
        )
        for obj in objects if has_person else ():
            if obj[1][0][0] != PERSON_CLASS or len(obj[3]) == 0:
                continue
            for part in obj[3][0]:
                name = str(part[0][0])
                if name not in PART_IDS:
                    raise ValueError(f"unknown person part {name!r}")
                mask = np.asarray(part[1]).astype(bool)
                _check_shape(path, mask.shape, size)
                target[mask] = PART_IDS[name]
    except (KeyError, IndexError, TypeError) as error:
        raise ValueError(f"{path} is not a Pascal-Part annotation ({error!r}).") from None
    if not np.any(target):
        target[:] = IGNORE_LABEL
    return target


def context_edges(label_map: np.ndarray) -> np.ndarray:
    """bool `[H, W]`: |Laplacian(LabelMap)| > 0, then thinned (`MTL:data/pascal_context.py`)."""
    x = np.pad(label_map.astype(np.float64), 1, mode="reflect")  # cv2's BORDER_REFLECT_101
    laplacian = x[:-2, 1:-1] + x[2:, 1:-1] + x[1:-1, :-2] + x[1:-1, 2:] - 4 * x[1:-1, 1:-1]
    return thin(np.abs(laplacian) > 0)


# -------------------------------------------------------------------------------------------
# Thinning, Z. Guo and R. W. Hall, "Parallel thinning with two-subiteration algorithms",
# Comm. ACM 32(3), 1989: neighbours x1..x8 counter-clockwise from the east (bits 0..7 below).
def _neighbour_bits(code: int) -> list[bool]:
    return [bool(code >> i & 1) for i in range(8)]


def _deletable(code: int, first: bool) -> bool:
    x = _neighbour_bits(code)
    # G1: exactly one 4-connected "0 then a 1" transition around the pixel.
    c = sum((not x[i]) and (x[i + 1] or x[(i + 2) % 8]) for i in (0, 2, 4, 6))
    # G2: 2 <= min(N1, N2) <= 3.
    n1 = sum(x[k] or x[k + 1] for k in (0, 2, 4, 6))
    n2 = sum(x[k + 1] or x[(k + 2) % 8] for k in (0, 2, 4, 6))
    # G3 (first subiteration) / G3' (second).
    if first:
        g3 = not ((x[1] or x[2] or not x[7]) and x[0])
    else:
        g3 = not ((x[5] or x[6] or not x[3]) and x[4])
    return c == 1 and 2 <= min(n1, n2) <= 3 and g3


_DELETE = [np.array([_deletable(code, first) for code in range(256)]) for first in (True, False)]


def thin(mask: np.ndarray) -> np.ndarray:
    """Guo-Hall thinning of a bool `[H, W]` mask (outside the image counts as background)."""
    skel = np.asarray(mask, bool).copy()
    while True:
        before = int(skel.sum())
        for table in _DELETE:
            skel &= ~table[_neighbour_codes(skel)]
        if int(skel.sum()) == before:
            return skel


def _neighbour_codes(skel: np.ndarray) -> np.ndarray:
    p = np.pad(skel, 1).astype(np.uint8)
    h, w = skel.shape
    # (dy, dx) of x1..x8: E, NE, N, NW, W, SW, S, SE (y down).
    offsets = ((0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1))
    code = np.zeros((h, w), np.uint8)
    for bit, (dy, dx) in enumerate(offsets):
        code |= p[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] << bit
    return code


def _check_shape(path: str, shape, expected) -> None:
    if tuple(shape) != tuple(expected):
        raise ValueError(f"{path} has shape {tuple(shape)}; expected {tuple(expected)}.")


# ---------------------------------------------------------------------------------------------
# The MTL reference's PASCAL transforms (`MTL:utils/common_config.py`), `config.dataset.
# augmentation = "pascal"`. Its loader gives all-zero human-parts maps for images without a
# person (stored here as all ignore), and AddIgnoreRegions turns a map that is still empty
# after the transforms into ignore; both apply to every task that is `unlabelled_when_empty`.
MAX_ROTATION = 20.0  # ScaleNRotate(rots=(-20, 20), scales=(.75, 1.25)), continuous draws
SCALE_RANGE = (0.75, 1.25)


@ops.register_op("zero_unlabelled_maps")
def zero_unlabelled_maps(fields: dict) -> dict:
    """The loader's zeros: ignore -> 0 in the labels of `unlabelled_when_empty` tasks."""

    def zeroed(task, value):
        if not task.unlabelled_when_empty:
            return value
        return tf.where(value == task.ignore_value, tf.zeros_like(value), value)

    return augment.labels_corrected(fields, zeroed)


@ops.register_op("ignore_empty_maps")
def ignore_empty_maps(fields: dict) -> dict:
    """AddIgnoreRegions: a label of an `unlabelled_when_empty` task with no nonzero pixel
    becomes all ignore."""

    def ignored(task, value):
        if not task.unlabelled_when_empty:
            return value
        return augment.parts_ignore_if_empty(value, task.ignore_value)

    return augment.labels_corrected(fields, ignored)


def finish_recipe(size) -> str:
    """FixedResize to `size`, the image as `astype(uint8)` reads it, AddIgnoreRegions."""
    return f"fixed_resize({size[0]}, {size[1]})|to_uint8_range|ignore_empty_maps"


def train_recipe(size) -> str:
    """A flip, rotation U(-20, 20) degrees and scale U(0.75, 1.25) about the centre (fill 0),
    then `finish_recipe`. Expects the loader's zeros (`zero_unlabelled_maps`) first."""
    low, high = SCALE_RANGE
    rotate = f"random_rotate_scale({MAX_ROTATION}, {low}, {high})"
    return f"random_flip_lr|{rotate}|{finish_recipe(size)}"


ops.register_recipe(
    "pascal",
    ops.Recipe(
        train=lambda ctx: f"zero_unlabelled_maps|{train_recipe(ctx.size)}",
        eval=lambda ctx: f"zero_unlabelled_maps|{finish_recipe(ctx.size)}",
        canvas_eval=lambda ctx: (
            "zero_unlabelled_maps|"
            + ops.canvas_eval_recipe(ctx.size, "project_labels|ignore_empty_maps")
        ),
        resizes=True,
    ),
)
