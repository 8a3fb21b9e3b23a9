"""The `synthetic_scenes` dataset: label geometry and consistency, determinism, TFDS builder."""

from __future__ import annotations

import dataclasses
import hashlib
import socket

import numpy as np
import pytest
import tensorflow_datasets as tfds

from mtnets.data.builders import scene_renderer as sr
from mtnets.data.builders import synthetic_scenes
from mtnets.tasks import DATASET_CLASSES

H, W = 96, 120
INDICES = range(12)  # examples of the train split of seed 0 used by the geometry tests
SMALL = (48, 60)  # size of the many-scenes statistics: only which labels occur matters there

# SHA-256 of `_digest` over train examples 0-3 at 48x60, computed once. A change means the
# rendered bytes changed: on purpose (then bump the dataset VERSION and this value) or not.
GOLDEN_SHA256 = "63e92911aa03e6e8b47adc90033d4f1c753daf8523e596be2ddcc15392268766"


@pytest.fixture(scope="module")
def examples() -> list[dict[str, np.ndarray]]:
    return [sr.render_example(0, "train", i, H, W) for i in INDICES]


@pytest.fixture(scope="module")
def many_small() -> list[dict[str, np.ndarray]]:
    return [sr.render_example(0, "train", i, *SMALL) for i in range(60)]


def _digest(examples: list[dict[str, np.ndarray]]) -> str:
    sha = hashlib.sha256()
    for example in examples:
        for key in sorted(example):
            value = example[key]
            sha.update(f"{key}:{value.dtype.str}:{value.shape}".encode())
            sha.update(np.ascontiguousarray(value).tobytes())
    return sha.hexdigest()


def _rays(height: int, width: int) -> np.ndarray:
    """`[H, W, 3]` camera-frame rays `((u - cx) / f, (v - cy) / f, 1)` of the pixel centres."""
    k = sr.camera_intrinsics(height, width)
    u = (np.arange(width) + 0.5 - k[0, 2]) / k[0, 0]
    v = (np.arange(height) + 0.5 - k[1, 2]) / k[1, 1]
    uu, vv = np.meshgrid(u, v)
    return np.stack([uu, vv, np.ones_like(uu)], axis=-1)


def _neighbour_pairs(a: np.ndarray):
    """The two sides of every horizontally and vertically adjacent pixel pair."""
    yield a[:, :-1], a[:, 1:]
    yield a[:-1, :], a[1:, :]


# --------------------------------------------------------------------------------------------
# Geometry


def test_intrinsics() -> None:
    k = sr.camera_intrinsics(96, 120)
    assert k.shape == (3, 3)
    np.testing.assert_allclose(k[0, 0], 60.0 / np.tan(np.radians(30.0)))
    assert k[0, 0] == k[1, 1]
    assert (k[0, 2], k[1, 2]) == (60.0, 48.0)


def test_normals_agree_with_depth_gradients(examples) -> None:
    """On planar patches, the normal of the back-projected depth map is the labelled normal."""
    rays = _rays(H, W)
    angles = []
    for ex in examples:
        points = rays * ex["depth"][..., None].astype(np.float64)
        # Central differences; cross(d/dv, d/du) points towards the camera (x right, y down).
        du = points[1:-1, 2:] - points[1:-1, :-2]
        dv = points[2:, 1:-1] - points[:-2, 1:-1]
        est = np.cross(dv, du)
        est /= np.linalg.norm(est, axis=-1, keepdims=True) + 1e-12
        n = ex["normals"].astype(np.float64)
        # A patch is one plane if its 3x3 normals all equal the centre's, with no invalid or
        # edge pixel (a box top and the floor behind it share a normal, but not a plane).
        planar = np.ones((H - 2, W - 2), dtype=bool)
        for di in range(3):
            for dj in range(3):
                window = n[di : di + H - 2, dj : dj + W - 2]
                planar &= np.all(np.abs(window - n[1:-1, 1:-1]) < 1e-6, axis=-1)
                planar &= ex["depth"][di : di + H - 2, dj : dj + W - 2] > 0
                planar &= ex["edge"][di : di + H - 2, dj : dj + W - 2] == 0
        cosine = np.clip(np.sum(est * n[1:-1, 1:-1], axis=-1), -1.0, 1.0)
        angles.append(np.degrees(np.arccos(cosine[planar])))
    angles = np.concatenate(angles)
    assert angles.size > 0.5 * len(examples) * H * W
    # Exact up to float32 depth: typically hundredths of a degree.
    assert np.median(angles) < 0.5
    assert np.mean(angles < 2.0) > 0.999


def test_normals_unit_valid_and_facing_camera(examples) -> None:
    rays = _rays(H, W)
    for ex in examples:
        n, valid = ex["normals"], ex["semseg"] != sr.IGNORE_LABEL
        np.testing.assert_allclose(np.linalg.norm(n[valid], axis=-1), 1.0, atol=1e-5)
        assert np.all(n[~valid] == 0)
        assert np.all(np.sum(n * rays, axis=-1)[valid] < 0)


def test_box_parts_follow_geometry() -> None:
    """Top faces point up in the world, sides horizontally; long sides are the larger faces."""
    for index in INDICES:
        ex = sr.render_example(0, "train", index, H, W)
        rotation = np.array(sr.example_scene(0, "train", index).rotation)
        world_n = ex["normals"].astype(np.float64) @ rotation.T
        parts = ex["human_parts"]
        assert np.all(np.abs(world_n[parts == sr.TOP] - [0.0, 1.0, 0.0]) < 1e-5)
        sides = (parts == sr.LONG_SIDE) | (parts == sr.SHORT_SIDE)
        assert np.all(np.abs(world_n[sides][:, 1]) < 1e-5)


def test_long_and_short_sides() -> None:
    """A box 1.0 m long (local x) and 0.4 m deep: its long sides face along its local z."""
    scene = sr.example_scene(0, "train", 0)
    rot = np.array(scene.rotation)
    forward = rot[[0, 2], 2] / np.linalg.norm(rot[[0, 2], 2])
    cx, cz = np.array([scene.camera[0], scene.camera[2]]) + 2.5 * forward
    yaw = np.radians(35.0)
    box = sr.Box(cx, cz, 0.5, 0.2, 1.0, np.cos(yaw), np.sin(yaw), (0.5, 0.5, 0.5), 0.1)
    scene = dataclasses.replace(scene, boxes=(box,), spheres=(), cylinders=(), rects=())
    ex = sr.render_scene(scene, H, W, np.random.default_rng(0))
    world_n = ex["normals"].astype(np.float64) @ rot.T
    parts = ex["human_parts"]
    for part, axis in (
        (sr.LONG_SIDE, (-np.sin(yaw), 0, np.cos(yaw))),
        (sr.SHORT_SIDE, (np.cos(yaw), 0, np.sin(yaw))),
    ):
        assert (parts == part).sum() > 20
        np.testing.assert_allclose(np.abs(world_n[parts == part] @ axis), 1.0, atol=1e-5)
    assert (parts == sr.TOP).sum() > 20


# --------------------------------------------------------------------------------------------
# Edges


def _jump(a: np.ndarray, b: np.ndarray, ratio: float) -> np.ndarray:
    """Relative depth jumps larger than `ratio` between two valid depths (as `edge_map`)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    both = (a > 0) & (b > 0)
    return both & (np.abs(a - b) > ratio * np.minimum(a, b))


def test_edges_lie_on_label_or_depth_boundaries(examples) -> None:
    for ex in examples:
        edge = ex["edge"].astype(bool)
        explained = np.zeros_like(edge)
        sem, depth = ex["semseg"], ex["depth"]
        for axis in (0, 1):
            a = [slice(None)] * 2
            b = [slice(None)] * 2
            a[axis], b[axis] = slice(None, -1), slice(1, None)
            a, b = tuple(a), tuple(b)
            boundary = (sem[a] != sem[b]) | _jump(depth[a], depth[b], sr.DEPTH_EDGE_RATIO)
            explained[a] |= boundary
            explained[b] |= boundary
        assert np.all(explained[edge])
        assert 0.005 < edge.mean() < 0.15


def test_label_and_depth_boundaries_are_covered_by_edges(examples) -> None:
    for ex in examples:
        edge = ex["edge"].astype(bool)
        pairs = zip(
            _neighbour_pairs(ex["semseg"]),
            _neighbour_pairs(ex["depth"]),
            _neighbour_pairs(edge),
            strict=True,
        )
        for (sa, sb), (da, db), (ea, eb) in pairs:
            # Within one surface of these rooms, neighbours never differ by 20 % in depth.
            boundary = (sa != sb) | _jump(da, db, 0.2)
            assert np.all((ea | eb)[boundary])


def test_edges_are_thin(examples) -> None:
    """About one pixel wide: a boundary is marked on one side only, so full 2x2 blocks of edge
    pixels (which any two-pixel-wide line makes) are rare: only where lines meet."""
    for ex in examples:
        e = ex["edge"].astype(bool)
        blocks = e[:-1, :-1] & e[1:, :-1] & e[:-1, 1:] & e[1:, 1:]
        assert blocks.sum() < 0.05 * e.sum()


# --------------------------------------------------------------------------------------------
# Label validity


def test_label_ranges_and_validity(examples) -> None:
    for ex in examples:
        sem = ex["semseg"]
        assert set(np.unique(sem)) <= {*range(len(sr.CLASS_NAMES)), sr.IGNORE_LABEL}
        np.testing.assert_array_equal(ex["depth"] > 0, sem != sr.IGNORE_LABEL)
        assert np.all(ex["depth"][ex["depth"] > 0] < 15.0)
        objects = (sem == sr.BOX) | (sem == sr.SPHERE) | (sem == sr.CYLINDER)
        np.testing.assert_array_equal(ex["sal"], objects.astype(np.uint8))
        assert set(np.unique(ex["edge"])) <= {0, 1}
        for key, shape in (("image", (H, W, 3)), ("normals", (H, W, 3)), ("depth", (H, W))):
            assert ex[key].shape == shape
        assert ex["image"].dtype == np.uint8 and ex["depth"].dtype == np.float32


def test_human_parts(many_small) -> None:
    with_box = without_box = 0
    for ex in many_small:
        sem, parts = ex["semseg"], ex["human_parts"]
        if (sem == sr.BOX).any():
            with_box += 1
            assert set(np.unique(parts[sem == sr.BOX])) <= {1, 2, 3}
            assert np.all(parts[sem == sr.IGNORE_LABEL] == sr.IGNORE_LABEL)
            others = (sem != sr.BOX) & (sem != sr.IGNORE_LABEL)
            assert np.all(parts[others] == 0)
        else:
            without_box += 1
            assert np.all(parts == sr.IGNORE_LABEL)
    assert with_box > 0 and without_box > 0


def test_all_classes_appear(many_small) -> None:
    seen = set()
    for ex in many_small:
        seen |= set(np.unique(ex["semseg"]).tolist())
    assert seen == {*range(len(sr.CLASS_NAMES)), sr.IGNORE_LABEL}
    seen_parts = set()
    for ex in many_small:
        seen_parts |= set(np.unique(ex["human_parts"]).tolist())
    assert seen_parts == {*range(len(sr.PART_NAMES)), sr.IGNORE_LABEL}


def test_scene_is_physically_valid() -> None:
    """Objects stand inside the room, apart from each other and from the camera."""
    for index in range(40):
        scene = sr.example_scene(0, "validation", index)
        sx, sy, sz = scene.size
        assert 4.0 <= sx <= 7.0 and 2.5 <= sy <= 3.2 and 4.0 <= sz <= 7.0
        cam = scene.camera
        assert 0 < cam[0] < sx and 1.2 <= cam[1] <= 1.8 and 0 < cam[2] < sz
        rot = np.array(scene.rotation)
        np.testing.assert_allclose(rot.T @ rot, np.eye(3), atol=1e-12)
        assert np.linalg.det(rot) > 0 and rot[1, 2] < 0  # right-handed, looking down
        footprints = [(b.cx, b.cz, np.hypot(b.half_x, b.half_z)) for b in scene.boxes]
        footprints += [(s.cx, s.cz, s.radius) for s in scene.spheres]
        footprints += [(c.cx, c.cz, c.radius) for c in scene.cylinders]
        for i, (x, z, r) in enumerate(footprints):
            assert r <= x <= sx - r and r <= z <= sz - r
            assert np.hypot(x - cam[0], z - cam[2]) > r + 0.5
            for x2, z2, r2 in footprints[:i]:
                assert np.hypot(x - x2, z - z2) > r + r2


# --------------------------------------------------------------------------------------------
# Determinism


def test_rendering_is_deterministic() -> None:
    a = sr.render_example(3, "train", 5, 40, 50)
    b = sr.render_example(3, "train", 5, 40, 50)
    assert _digest([a]) == _digest([b])
    other_index = sr.render_example(3, "train", 6, 40, 50)
    other_split = sr.render_example(3, "validation", 5, 40, 50)
    other_seed = sr.render_example(4, "train", 5, 40, 50)
    for other in (other_index, other_split, other_seed):
        assert not np.array_equal(a["image"], other["image"])


def test_golden_hash() -> None:
    examples = [sr.render_example(0, "train", i, *SMALL) for i in range(4)]
    assert _digest(examples) == GOLDEN_SHA256


def test_screen_space_culling_changes_nothing(monkeypatch) -> None:
    """Objects are only cast on a bounding window of the image; casting them everywhere must
    give the same bytes."""
    fast = [sr.render_example(1, "train", i, 40, 50) for i in range(6)]
    monkeypatch.setattr(sr, "_screen_window", lambda *a: (slice(0, 40), slice(0, 50)))
    slow = [sr.render_example(1, "train", i, 40, 50) for i in range(6)]
    assert _digest(fast) == _digest(slow)


def test_unknown_split() -> None:
    with pytest.raises(ValueError, match="split"):
        sr.render_example(0, "test", 0, 8, 10)


# --------------------------------------------------------------------------------------------
# TFDS builder


@pytest.fixture(scope="module")
def tiny_builder(tmp_path_factory) -> tfds.core.DatasetBuilder:
    """`synthetic_scenes/tiny` built into a fresh directory, with sockets forbidden."""

    def no_network(*args, **kwargs):
        raise AssertionError("synthetic_scenes must not touch the network")

    data_dir = tmp_path_factory.mktemp("tfds")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", no_network)
        mp.setattr(socket, "create_connection", no_network)
        builder = tfds.builder("synthetic_scenes/tiny", data_dir=str(data_dir))
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(try_download_gcs=False)
        )
    return builder


def test_builder_metadata(tiny_builder) -> None:
    info = tiny_builder.info
    assert info.name == "synthetic_scenes" and str(info.version) == "1.0.0"
    assert info.splits["train"].num_examples == 24
    assert info.splits["validation"].num_examples == 8
    assert synthetic_scenes.CLASS_NAMES == sr.CLASS_NAMES and len(sr.CLASS_NAMES) == 7
    assert synthetic_scenes.PART_NAMES == sr.PART_NAMES and len(sr.PART_NAMES) == 4
    assert DATASET_CLASSES["synthetic_scenes"] == {
        "semseg": len(sr.CLASS_NAMES),
        "human_parts": len(sr.PART_NAMES),
    }
    default = synthetic_scenes.SyntheticScenes.builder_configs["default"]
    sizes = (default.height, default.width, default.num_train, default.num_validation)
    assert sizes == (128, 160, 2000, 300)


@pytest.mark.parametrize("split,count", [("train", 24), ("validation", 8)])
def test_builder_examples_match_renderer(tiny_builder, split, count) -> None:
    dtypes = {"image": np.uint8, "depth": np.float32, "normals": np.float32}
    shapes = {"image": (32, 40, 3), "depth": (32, 40), "normals": (32, 40, 3)}
    ids = set()
    for ex in tfds.as_numpy(tiny_builder.as_dataset(split=split)):
        name = ex["id"].decode()
        ids.add(name)
        index = int(name.split("/")[1])
        assert name == f"{split}/{index:05d}"
        expected = sr.render_example(0, split, index, 32, 40)
        for key, value in expected.items():
            got = ex[key]
            assert got.dtype == dtypes.get(key, np.uint8), key
            assert got.shape == shapes.get(key, (32, 40, 1)), key
            np.testing.assert_array_equal(got.reshape(value.shape), value, err_msg=key)
    assert len(ids) == count
