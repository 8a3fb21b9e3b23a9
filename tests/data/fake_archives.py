"""Small fake copies of the real archives, in their exact on-disk layout, for the builder tests.

Each writer returns the arrays it wrote (as the reference loaders would read them back), so the
tests can compare every decoded field with an independent NumPy transcription.
"""

from __future__ import annotations

import os
import tarfile

import numpy as np
import scipy.io
from PIL import Image


def _jpeg(path: str, rgb: np.ndarray) -> np.ndarray:
    """Writes a JPEG and returns the pixels PIL decodes from it (what the reference reads)."""
    Image.fromarray(rgb).save(path, quality=90)
    with Image.open(path) as image:
        return np.array(image.convert("RGB"))


def _smooth_rgb(rng, h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x + y) % 256], -1)
    return np.clip(base + rng.integers(-20, 20, (h, w, 3)), 0, 255).astype(np.uint8)


def _unit_normals(rng, h: int, w: int) -> np.ndarray:
    n = rng.normal(size=(h, w, 3)).astype(np.float32)
    n[..., 2] = -np.abs(n[..., 2]) - 0.5
    return n / np.linalg.norm(n, axis=-1, keepdims=True)


def tar_gz(folder: str, archive: str) -> str:
    """`archive` (.tgz) holding `folder` under its base name, as the real archives do."""
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(folder, arcname=os.path.basename(folder))
    return archive


# -------------------------------------------------------------------------------------------
# NYUD_MT.tgz (MTL:data/nyud.py).
def write_nyud_mt(root: str, ids: dict[str, list[str]], h: int = 24, w: int = 32, seed=0):
    """Writes `<root>/NYUD_MT/...`; returns `{id: arrays as the reference loader reads them}`."""
    rng = np.random.default_rng(seed)
    base = os.path.join(root, "NYUD_MT")
    for sub in ("images", "segmentation", "depth", "normals", "edge", "gt_sets"):
        os.makedirs(os.path.join(base, sub), exist_ok=True)
    written = {}
    for split, split_ids in ids.items():
        with open(os.path.join(base, "gt_sets", f"{split}.txt"), "w") as f:
            f.write("\n".join(split_ids) + "\n")
        for i in split_ids:
            image = _jpeg(os.path.join(base, "images", f"{i}.jpg"), _smooth_rgb(rng, h, w))
            seg = rng.integers(0, 41, (h, w)).astype(np.uint8)  # 0 void, 1..40
            Image.fromarray(seg).save(os.path.join(base, "segmentation", f"{i}.png"))
            depth = rng.uniform(0.5, 9.0, (h, w)).astype(np.float32)
            depth[rng.random((h, w)) < 0.1] = 0.0  # invalid
            np.save(os.path.join(base, "depth", f"{i}.npy"), depth)
            normals = _unit_normals(rng, h, w)
            normals[rng.random((h, w)) < 0.1] = 0.0
            np.save(os.path.join(base, "normals", f"{i}.npy"), normals)
            edge = (rng.random((h, w)) < 0.2).astype(np.float32)
            np.save(os.path.join(base, "edge", f"{i}.npy"), edge)
            written[i] = dict(image=image, seg=seg, depth=depth, normals=normals, edge=edge)
    return written


# -------------------------------------------------------------------------------------------
# lorenmt's preprocessed NYUv2 (MTAN:im2im_pred/create_dataset.py).
def write_nyuv2_mtan(root: str, counts: dict[str, int], h: int = 24, w: int = 32, seed=0):
    """Writes `<root>/nyuv2/{train,val}/{image,label,depth,normal}/<idx>.npy`."""
    rng = np.random.default_rng(seed)
    written = {}
    for split, count in counts.items():
        for sub in ("image", "label", "depth", "normal"):
            os.makedirs(os.path.join(root, "nyuv2", split, sub), exist_ok=True)
        for idx in range(count):
            image = rng.random((h, w, 3)).astype(np.float32)  # [0, 1] floats
            label = rng.integers(-1, 13, (h, w)).astype(np.float32)  # -1 ignore
            depth = rng.uniform(0.5, 9.0, (h, w, 1)).astype(np.float32)
            depth[rng.random((h, w, 1)) < 0.1] = 0.0
            normal = _unit_normals(rng, h, w)
            normal[rng.random((h, w)) < 0.1] = 0.0
            arrays = dict(image=image, label=label, depth=depth, normal=normal)
            for sub, value in arrays.items():
                np.save(os.path.join(root, "nyuv2", split, sub, f"{idx}.npy"), value)
            written[(split, idx)] = arrays
    return written


# -------------------------------------------------------------------------------------------
# PASCAL_MT.tgz (MTL:data/pascal_context.py; Pascal-Part `anno` structs).
PASCAL_IDS = {
    "train": ["2008_000002", "2008_000003", "2008_000007"],
    "val": ["2008_000009", "2008_000015"],
}
# Sizes vary, as VOC's do; (h, w) per id.
PASCAL_SIZES = [(20, 28), (26, 22), (18, 30), (24, 24), (22, 26)]
# Context classes used in the fake LabelMaps: 440 wall, 158 floor, 284 person (normals kept),
# 2 aeroplane, 25 bird (normals dropped).
CONTEXT_CLASSES = (440, 158, 284, 2, 25)


def pascal_part_struct(objects: list[dict]) -> dict:
    """`{'anno': ...}` with Pascal-Part's nesting: anno(imname, objects); objects(class,
    class_ind, mask, parts); parts(part_name, mask). An object without parts has an empty
    `parts` (0x0), as MATLAB saves it."""
    part_dtype = [("part_name", "O"), ("mask", "O")]
    obj_dtype = [("class", "O"), ("class_ind", "O"), ("mask", "O"), ("parts", "O")]
    objs = np.zeros((1, len(objects)), dtype=obj_dtype)
    for i, obj in enumerate(objects):
        objs[0, i]["class"] = obj["class"]
        objs[0, i]["class_ind"] = np.array([[obj["class_ind"]]], np.float64)
        objs[0, i]["mask"] = obj["mask"].astype(np.uint8)
        if obj["parts"]:
            parts = np.zeros((1, len(obj["parts"])), dtype=part_dtype)
            for j, (name, mask) in enumerate(obj["parts"]):
                parts[0, j]["part_name"] = name
                parts[0, j]["mask"] = mask.astype(np.uint8)
            objs[0, i]["parts"] = parts
        else:
            objs[0, i]["parts"] = np.zeros((0, 0))
    anno = np.zeros((1, 1), dtype=[("imname", "O"), ("objects", "O")])
    anno[0, 0]["imname"] = "x"
    anno[0, 0]["objects"] = objs
    return {"anno": anno}


def _box(h, w, y0, y1, x0, x1):
    mask = np.zeros((h, w), bool)
    mask[y0:y1, x0:x1] = True
    return mask


def _people(kind: str, h: int, w: int) -> list[dict]:
    """Objects of one fake image: 'two' (two people with parts, overlapping), 'noparts' (a
    person without parts and a cat), 'none' (a cat only)."""
    cat = {"class": "cat", "class_ind": 8, "mask": _box(h, w, 0, 5, 0, 5), "parts": []}
    if kind == "none":
        return [cat]
    if kind == "noparts":
        return [
            {"class": "person", "class_ind": 15, "mask": _box(h, w, 2, 9, 2, 9), "parts": []},
            cat,
        ]
    first = [
        ("head", _box(h, w, 2, 6, 4, 8)),
        ("hair", _box(h, w, 2, 3, 4, 8)),
        ("torso", _box(h, w, 6, 12, 3, 9)),
        ("luarm", _box(h, w, 6, 9, 1, 3)),
        ("rlarm", _box(h, w, 9, 12, 9, 11)),
        ("luleg", _box(h, w, 12, 15, 3, 6)),
        ("rfoot", _box(h, w, 15, 17, 6, 9)),
    ]
    second = [("neck", _box(h, w, 10, 13, 7, 12)), ("llleg", _box(h, w, 13, 16, 10, 13))]
    return [
        {"class": "person", "class_ind": 15, "mask": _box(h, w, 2, 17, 1, 11), "parts": first},
        cat,
        {"class": "person", "class_ind": 15, "mask": _box(h, w, 10, 16, 7, 13), "parts": second},
    ]


PART_OF = {
    "head": 1,
    "hair": 1,
    "torso": 2,
    "neck": 2,
    "luarm": 3,
    "rlarm": 4,
    "luleg": 5,
    "rfoot": 6,
    "llleg": 6,
}  # the reference's 6-part grouping, for the fake parts


def write_pascal_mt(root: str, seed=0):
    """Writes `<root>/PASCAL_MT/...`; returns `{id: arrays as the reference loader reads them}`
    (`parts`: the reference's target before AddIgnoreRegions)."""
    rng = np.random.default_rng(seed)
    base = os.path.join(root, "PASCAL_MT")
    for sub in (
        "JPEGImages",
        "pascal-context/trainval",
        "semseg/VOC12",
        "semseg/pascal-context",
        "human_parts",
        "normals_distill",
        "sal_distill",
        "ImageSets/Context",
        "ImageSets/Parts",
    ):
        os.makedirs(os.path.join(base, sub), exist_ok=True)
    written, kinds = {}, ["two", "noparts", "none", "two", "none"]
    all_ids = [i for ids in PASCAL_IDS.values() for i in ids]
    for n, example_id in enumerate(all_ids):
        h, w = PASCAL_SIZES[n]
        image = _jpeg(os.path.join(base, "JPEGImages", f"{example_id}.jpg"), _smooth_rgb(rng, h, w))
        label_map = np.array(CONTEXT_CLASSES, np.uint16)[
            (np.arange(h)[:, None] // 5 + np.arange(w)[None, :] // 7) % len(CONTEXT_CLASSES)
        ]
        scipy.io.savemat(
            os.path.join(base, "pascal-context", "trainval", f"{example_id}.mat"),
            {"LabelMap": label_map},
        )
        seg = rng.integers(0, 21, (h, w)).astype(np.uint8)
        seg[rng.random((h, w)) < 0.05] = 255
        folder = "VOC12" if n % 2 == 0 else "pascal-context"
        png = Image.fromarray(seg, mode="L").convert("P")
        png.putpalette([v for i in range(256) for v in (i, 255 - i, (7 * i) % 256)])
        png.save(os.path.join(base, "semseg", folder, f"{example_id}.png"))
        objects = _people(kinds[n], h, w)
        scipy.io.savemat(
            os.path.join(base, "human_parts", f"{example_id}.mat"), pascal_part_struct(objects)
        )
        parts = np.zeros((h, w), np.uint8)
        for obj in objects:
            if obj["class_ind"] == 15:
                for name, mask in obj["parts"]:
                    parts[mask] = PART_OF[name]
        codes = rng.integers(1, 256, (h, w, 3)).astype(np.uint8)
        Image.fromarray(codes).save(os.path.join(base, "normals_distill", f"{example_id}.png"))
        sal = rng.integers(0, 256, (h, w)).astype(np.uint8)
        Image.fromarray(sal).save(os.path.join(base, "sal_distill", f"{example_id}.png"))
        written[example_id] = dict(
            image=image, label_map=label_map, seg=seg, parts=parts, codes=codes, sal=sal
        )
    for split, ids in PASCAL_IDS.items():
        with open(os.path.join(base, "ImageSets", "Context", f"{split}.txt"), "w") as f:
            f.write("\n".join(ids) + "\n")
        with open(os.path.join(base, "ImageSets", "Parts", f"{split}.txt"), "w") as f:
            f.write("{}\n")
    return written
