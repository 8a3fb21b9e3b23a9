"""Procedural indoor scenes, ray cast with NumPy into an image and six exact label maps.

A scene is an axis-aligned room (floor, four walls, ceiling) with pictures and windows on its
walls, and a few objects standing on the floor: boxes turned about the vertical axis, spheres and
vertical cylinders. A pinhole camera inside the room looks at it; one point light (plus ambient
light) shades it, with shadows cast by the objects.

Conventions of `render_example` / `render_scene` outputs (`H`, `W` the image size):

| key | dtype | shape | meaning | invalid |
|---|---|---|---|---|
| `image` | uint8 | [H, W, 3] | RGB with sensor noise | |
| `semseg` | uint8 | [H, W] | index into `CLASS_NAMES` | 255 (windows) |
| `depth` | float32 | [H, W] | metres along the optical axis (camera-frame z) | 0 (windows) |
| `normals` | float32 | [H, W, 3] | unit surface normal, camera frame, towards cam. | all zero |
| `edge` | uint8 | [H, W] | 1 on semantic and depth boundaries, ~1 px thick | |
| `sal` | uint8 | [H, W] | 1 on objects (box, sphere, cylinder), 0 on room | |
| `human_parts` | uint8 | [H, W] | index into `PART_NAMES`; parts of boxes | 255 |

The camera frame is OpenCV's: x right, y down, z forward. Intrinsics (`camera_intrinsics`) are a
60 degree horizontal field of view with square pixels and the principal point at the image
centre; pixel `(row i, column j)` has its centre at `(u, v) = (j + 0.5, i + 0.5)`. `human_parts`
is 255 on windows, and on every pixel of an image that shows no box at all (there is no part
annotation to learn from such an image, like a PASCAL image without a person).

Edges are drawn on the nearer pixel of each 4-connected pair that differs in class, or that lies
on two different surfaces whose depths differ by more than `DEPTH_EDGE_RATIO` (relative); a
window counts as infinitely far. They are thus one pixel thick and hug occluding contours.

Determinism: an example depends only on `(seed, split, index)` through NumPy's `SeedSequence`
and PCG64, and the per-pixel work uses only `+ - * /`, `sqrt`, `floor` and comparisons, which
IEEE 754 rounds exactly the same on every CPU. Sines and cosines are only ever taken of scalars,
with a fixed series (`_sin_cos`) rather than the platform's libm, and the sensor noise is an
Irwin-Hall sum of random integers rather than a ziggurat Gaussian (which calls libm `exp`/`log`). So
the output is byte-identical on every machine for a given NumPy bit generator.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence

import numpy as np

CLASS_NAMES: tuple[str, ...] = (
    "floor",
    "wall",
    "ceiling",
    "picture",
    "box",
    "sphere",
    "cylinder",
)
PART_NAMES: tuple[str, ...] = ("background", "top", "long_side", "short_side")
IGNORE_LABEL = 255
SPLITS: tuple[str, ...] = ("train", "validation")
HORIZONTAL_FOV_DEGREES = 60.0
DEPTH_EDGE_RATIO = 0.05

FLOOR, WALL, CEILING, PICTURE, BOX, SPHERE, CYLINDER = range(7)
OBJECT_CLASSES: tuple[int, ...] = (BOX, SPHERE, CYLINDER)
TOP, LONG_SIDE, SHORT_SIDE = 1, 2, 3

_EPS = 1e-6  # smallest accepted ray parameter: rejects a shadow ray's own starting surface
_TINY = 1e-12  # stands in for a zero direction component, so that slabs never divide by 0
_SHADOW_OFFSET = 1e-4  # metres a shadow ray starts off its surface, against self-hits

# Surface ids of the room; pictures, windows and objects are numbered after them.
_FLOOR_ID, _CEILING_ID, _WALL0_ID = 0, 1, 2
# World frame: y up, floor at y = 0, room spans [0, size_x] x [0, size_y] x [0, size_z].
# Walls 0..3 lie at x = 0, x = size_x, z = 0, z = size_z; inward normals, and the world axis
# that runs along each wall (its "u" coordinate).
_WALL_NORMALS = ((1.0, 0.0, 0.0), (-1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.0, 0.0, -1.0))
_WALL_U_AXIS = (2, 2, 0, 0)

_BASE_COLOURS = {
    FLOOR: (0.55, 0.40, 0.27),
    WALL: (0.78, 0.76, 0.70),
    CEILING: (0.90, 0.90, 0.88),
    BOX: (0.65, 0.47, 0.27),
    SPHERE: (0.75, 0.22, 0.20),
    CYLINDER: (0.25, 0.45, 0.70),
}
_SKY_HORIZON = (0.92, 0.95, 1.0)
_SKY_ZENITH = (0.55, 0.74, 1.0)


# --------------------------------------------------------------------------------------------
# Scene description


@dataclasses.dataclass(frozen=True)
class Box:
    """A box on the floor: footprint `[-half_x, half_x] x [-half_z, half_z]` in its own frame,
    turned by `yaw` about the vertical axis through `(cx, cz)`; `height` metres tall."""

    cx: float
    cz: float
    half_x: float
    half_z: float
    height: float
    cos_yaw: float
    sin_yaw: float
    colour: tuple[float, float, float]
    grain: float  # period of the wood-like stripes, metres


@dataclasses.dataclass(frozen=True)
class Sphere:
    """A sphere resting on the floor at `(cx, cz)`."""

    cx: float
    cz: float
    radius: float
    colour: tuple[float, float, float]
    band: float  # height of its horizontal colour bands, metres


@dataclasses.dataclass(frozen=True)
class Cylinder:
    """A vertical cylinder standing on the floor with its axis at `(cx, cz)`."""

    cx: float
    cz: float
    radius: float
    height: float
    colour: tuple[float, float, float]
    ring: float  # width of its rings, metres


@dataclasses.dataclass(frozen=True)
class WallRect:
    """A picture or a window: the rectangle `[u0, u1] x [y0, y1]` on wall `wall` (0..3)."""

    wall: int
    u0: float
    u1: float
    y0: float
    y1: float
    is_window: bool
    colour: tuple[float, float, float]
    period: float  # period of a picture's pattern, metres


@dataclasses.dataclass(frozen=True)
class Scene:
    """Everything needed to render one example, independent of the image size."""

    size: tuple[float, float, float]  # room extent along world x, y (height), z; metres
    camera: tuple[float, float, float]  # camera centre, world frame
    # Camera-to-world rotation, row-major; its columns are the camera's x, y, z axes.
    rotation: tuple[tuple[float, float, float], ...]
    light: tuple[float, float, float]
    light_power: float
    ambient: float
    floor_colour: tuple[float, float, float]
    tile: float  # floor tile size, metres
    wall_colour: tuple[float, float, float]
    stripe: float  # wall stripe width, metres
    ceiling_colour: tuple[float, float, float]
    rects: tuple[WallRect, ...]
    boxes: tuple[Box, ...]
    spheres: tuple[Sphere, ...]
    cylinders: tuple[Cylinder, ...]
    noise_sigma: float  # standard deviation of the sensor noise, in uint8 units


def camera_intrinsics(height: int, width: int) -> np.ndarray:
    """The 3x3 pinhole matrix `K` (float64) of images `height` x `width` pixels.

    `f = (width / 2) / tan(30 deg)` for a 60 degree horizontal field of view, square pixels,
    principal point at the image centre `(width / 2, height / 2)` (pixel centres sit at
    `+0.5`). A camera-frame point `(x, y, z)` projects to `(u, v) = (f x / z + cx, f y / z + cy)`.
    """
    focal = 0.5 * width * math.sqrt(3.0)  # 1 / tan(30 deg) = sqrt(3), no libm tan needed
    return np.array(
        [[focal, 0.0, 0.5 * width], [0.0, focal, 0.5 * height], [0.0, 0.0, 1.0]],
        dtype=np.float64,
    )


def _sin_cos(angle: float) -> tuple[float, float]:
    """Sine and cosine of a scalar by a fixed Taylor series, the same on every platform.

    libm's `sin`/`cos` may differ in the last bit between systems, and a one-ulp change of the
    camera pose could move a label boundary by a pixel; plain float arithmetic cannot.
    """
    x = angle - 2.0 * math.pi * round(angle / (2.0 * math.pi))  # into [-pi, pi]
    x2 = x * x
    sin_term, cos_term = x, 1.0
    sin_sum, cos_sum = x, 1.0
    for k in range(1, 16):  # terms up to x^31 / 31!: below 1e-17 for |x| <= pi
        sin_term = -sin_term * x2 / ((2 * k) * (2 * k + 1))
        cos_term = -cos_term * x2 / ((2 * k - 1) * (2 * k))
        sin_sum += sin_term
        cos_sum += cos_term
    return sin_sum, cos_sum


def _camera_rotation(
    yaw: float, pitch: float, roll: float
) -> tuple[tuple[float, float, float], ...]:
    """Camera-to-world rotation for a camera looking along `yaw` (about world y, 0 = +z),
    tilted up by `pitch` (negative looks down) and rolled by `roll` about its optical axis."""
    sy, cy = _sin_cos(yaw)
    sp, cp = _sin_cos(pitch)
    sr, cr = _sin_cos(roll)
    forward = (sy * cp, sp, cy * cp)
    # right = forward x world-up, normalised; down = forward x right completes x-right, y-down.
    rx, rz = -forward[2], forward[0]
    norm = math.sqrt(rx * rx + rz * rz)
    right = (rx / norm, 0.0, rz / norm)
    down = (
        forward[1] * right[2] - forward[2] * right[1],
        forward[2] * right[0] - forward[0] * right[2],
        forward[0] * right[1] - forward[1] * right[0],
    )
    x_axis = tuple(cr * r + sr * d for r, d in zip(right, down, strict=True))
    y_axis = tuple(-sr * r + cr * d for r, d in zip(right, down, strict=True))
    return tuple((x_axis[k], y_axis[k], forward[k]) for k in range(3))


# --------------------------------------------------------------------------------------------
# Sampling a scene


def _jitter(
    rng: np.random.Generator, colour: Sequence[float], amount: float = 0.08
) -> tuple[float, float, float]:
    return tuple(float(min(max(c + rng.uniform(-amount, amount), 0.0), 1.0)) for c in colour)


def _free_distance(size: tuple[float, float, float], x: float, z: float, yaw: float) -> float:
    """Horizontal distance from `(x, z)` to the wall straight ahead along `yaw`."""
    sin_yaw, cos_yaw = _sin_cos(yaw)
    ts = []
    for pos, step, limit in ((x, sin_yaw, size[0]), (z, cos_yaw, size[2])):
        if step > 1e-9:
            ts.append((limit - pos) / step)
        elif step < -1e-9:
            ts.append(-pos / step)
    return min(ts)


def _sample_camera(rng: np.random.Generator, size: tuple[float, float, float]):
    """Camera centre and rotation: inside the room, facing at least 2 m of free floor."""
    x = rng.uniform(0.6, size[0] - 0.6)
    z = rng.uniform(0.6, size[2] - 0.6)
    y = rng.uniform(1.2, 1.8)
    yaw = 0.0
    for _ in range(20):  # a camera staring at a wall from 60 cm sees nothing else
        yaw = rng.uniform(0.0, 2.0 * math.pi)
        if _free_distance(size, x, z, yaw) > 2.0:
            break
    pitch = -math.radians(rng.uniform(5.0, 25.0))
    roll = math.radians(rng.uniform(-4.0, 4.0))
    return (x, y, z), yaw, _camera_rotation(yaw, pitch, roll)


def _place(rng, size, camera, yaw, radius, placed) -> tuple[float, float] | None:
    """A floor position for a footprint of `radius` clear of the walls, the camera and the
    `placed` `(x, z, radius)` footprints; mostly in front of the camera. None if none found."""
    for _ in range(40):
        if rng.random() < 0.75:
            sin_a, cos_a = _sin_cos(yaw + rng.uniform(-0.55, 0.55))
            dist = rng.uniform(1.2, 4.5)
            x, z = camera[0] + dist * sin_a, camera[2] + dist * cos_a
        else:
            x, z = rng.uniform(0.0, size[0]), rng.uniform(0.0, size[2])
        margin = radius + 0.05
        if not (margin <= x <= size[0] - margin and margin <= z <= size[2] - margin):
            continue
        if math.hypot(x - camera[0], z - camera[2]) < radius + 0.8:
            continue
        if all(math.hypot(x - px, z - pz) >= radius + pr + 0.1 for px, pz, pr in placed):
            placed.append((x, z, radius))
            return x, z
    return None


def _sample_objects(rng, size, camera, yaw):
    """Boxes (none in a fifth of the scenes), spheres and cylinders on the floor."""
    placed: list[tuple[float, float, float]] = []
    boxes, spheres, cylinders = [], [], []
    num_boxes = 0 if rng.random() < 0.2 else int(rng.integers(1, 4))
    for _ in range(num_boxes):
        long_half = rng.uniform(0.25, 0.6)
        short_half = long_half * rng.uniform(0.4, 0.75)  # clearly long vs short sides
        height = rng.uniform(0.3, 1.2)
        sin_y, cos_y = _sin_cos(rng.uniform(0.0, math.pi))
        spot = _place(rng, size, camera, yaw, math.hypot(long_half, short_half), placed)
        colour = _jitter(rng, _BASE_COLOURS[BOX])
        grain = rng.uniform(0.05, 0.12)
        if spot is not None:
            boxes.append(
                Box(spot[0], spot[1], long_half, short_half, height, cos_y, sin_y, colour, grain)
            )
    for _ in range(int(rng.integers(0, 3))):
        radius = rng.uniform(0.15, 0.45)
        spot = _place(rng, size, camera, yaw, radius, placed)
        colour = _jitter(rng, _BASE_COLOURS[SPHERE])
        band = rng.uniform(0.06, 0.15)
        if spot is not None:
            spheres.append(Sphere(spot[0], spot[1], radius, colour, band))
    for _ in range(int(rng.integers(0, 3))):
        radius = rng.uniform(0.1, 0.35)
        height = rng.uniform(0.4, 1.8)  # below the lowest light (2.0 m): never hides it
        spot = _place(rng, size, camera, yaw, radius, placed)
        colour = _jitter(rng, _BASE_COLOURS[CYLINDER])
        ring = rng.uniform(0.08, 0.2)
        if spot is not None:
            cylinders.append(Cylinder(spot[0], spot[1], radius, height, colour, ring))
    return tuple(boxes), tuple(spheres), tuple(cylinders)


def _sample_rects(rng, size) -> tuple[WallRect, ...]:
    """Pictures (1-3) and windows (0-2) on random walls, not overlapping each other."""
    rects: list[WallRect] = []
    kinds = [False] * int(rng.integers(1, 4)) + [True] * int(rng.integers(0, 3))
    for is_window in kinds:
        for _ in range(20):
            wall = int(rng.integers(0, 4))
            length = size[2] if wall < 2 else size[0]
            if is_window:
                w, h, y0 = rng.uniform(0.6, 1.5), rng.uniform(0.8, 1.3), rng.uniform(0.8, 1.0)
            else:
                w, h = rng.uniform(0.4, 1.2), rng.uniform(0.3, 0.9)
                y0 = rng.uniform(1.2, 1.9) - 0.5 * h
            u0 = rng.uniform(0.2, length - 0.2 - w)
            colour = tuple(float(c) for c in rng.uniform(0.15, 0.9, size=3))
            rect = WallRect(wall, u0, u0 + w, y0, y0 + h, is_window, colour, rng.uniform(0.1, 0.3))
            if not any(_rects_overlap(rect, other) for other in rects):
                rects.append(rect)
                break
    return tuple(rects)


def _rects_overlap(a: WallRect, b: WallRect, gap: float = 0.1) -> bool:
    return (
        a.wall == b.wall
        and a.u0 < b.u1 + gap
        and b.u0 < a.u1 + gap
        and a.y0 < b.y1 + gap
        and b.y0 < a.y1 + gap
    )


def sample_scene(rng: np.random.Generator) -> Scene:
    """Draw a random scene. Only scalar draws from `rng`, in a fixed order."""
    size = (rng.uniform(4.0, 7.0), rng.uniform(2.5, 3.2), rng.uniform(4.0, 7.0))
    camera, yaw, rotation = _sample_camera(rng, size)
    light = (
        rng.uniform(0.5, size[0] - 0.5),
        size[1] - rng.uniform(0.15, 0.5),
        rng.uniform(0.5, size[2] - 0.5),
    )
    light_power, ambient = rng.uniform(6.0, 10.0), rng.uniform(0.22, 0.38)
    floor_colour, tile = _jitter(rng, _BASE_COLOURS[FLOOR]), rng.uniform(0.3, 0.7)
    wall_colour, stripe = _jitter(rng, _BASE_COLOURS[WALL]), rng.uniform(0.1, 0.4)
    ceiling_colour = _jitter(rng, _BASE_COLOURS[CEILING], 0.04)
    rects = _sample_rects(rng, size)
    boxes, spheres, cylinders = _sample_objects(rng, size, camera, yaw)
    return Scene(
        size=size,
        camera=camera,
        rotation=rotation,
        light=light,
        light_power=light_power,
        ambient=ambient,
        floor_colour=floor_colour,
        tile=tile,
        wall_colour=wall_colour,
        stripe=stripe,
        ceiling_colour=ceiling_colour,
        rects=rects,
        boxes=boxes,
        spheres=spheres,
        cylinders=cylinders,
        noise_sigma=rng.uniform(1.5, 4.0),
    )


# --------------------------------------------------------------------------------------------
# Ray-primitive intersections. Origins are scalars (camera rays) or arrays (shadow rays);
# directions are arrays and need not be unit length. Misses return +inf.


def _safe(d: np.ndarray) -> np.ndarray:
    return np.where(np.abs(d) < _TINY, _TINY, d)


def _slab(o, d, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Ray parameters where the ray enters and leaves the slab `lo <= coordinate <= hi`."""
    d = _safe(d)
    a, b = (lo - o) / d, (hi - o) / d
    return np.minimum(a, b), np.maximum(a, b)


def _box_local(box: Box, x, z):
    """Horizontal world offsets or directions `(x, z)` along the box's local x and z axes."""
    return box.cos_yaw * x + box.sin_yaw * z, -box.sin_yaw * x + box.cos_yaw * z


def _hit_box(box: Box, o, d):
    """`(t, entry_x, entry_y, entry_z, local_dx, local_dz)`; the entry face is the slab whose
    entry parameter is largest."""
    lox, loz = _box_local(box, o[0] - box.cx, o[2] - box.cz)
    ldx, ldz = _box_local(box, d[0], d[2])
    x0, x1 = _slab(lox, ldx, -box.half_x, box.half_x)
    y0, y1 = _slab(o[1], d[1], 0.0, box.height)
    z0, z1 = _slab(loz, ldz, -box.half_z, box.half_z)
    enter = np.maximum(np.maximum(x0, y0), z0)
    leave = np.minimum(np.minimum(x1, y1), z1)
    t = np.where((enter <= leave) & (enter > _EPS), enter, np.inf)
    return t, x0, y0, z0, ldx, ldz


def _hit_sphere(sphere: Sphere, o, d) -> np.ndarray:
    ox, oy, oz = o[0] - sphere.cx, o[1] - sphere.radius, o[2] - sphere.cz
    a = d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
    b = ox * d[0] + oy * d[1] + oz * d[2]
    c = ox * ox + oy * oy + oz * oz - sphere.radius * sphere.radius
    disc = b * b - a * c
    t = (-b - np.sqrt(np.maximum(disc, 0.0))) / a
    return np.where((disc >= 0.0) & (t > _EPS), t, np.inf)


def _hit_cylinder(cyl: Cylinder, o, d) -> tuple[np.ndarray, np.ndarray]:
    """`(t, on_cap)`: the nearer of the side and top-cap hits (the bottom lies on the floor)."""
    ox, oz = o[0] - cyl.cx, o[2] - cyl.cz
    a = _safe(d[0] * d[0] + d[2] * d[2])
    b = ox * d[0] + oz * d[2]
    c = ox * ox + oz * oz - cyl.radius * cyl.radius
    disc = b * b - a * c
    t_side = (-b - np.sqrt(np.maximum(disc, 0.0))) / a
    y_side = o[1] + t_side * d[1]
    side_ok = (disc >= 0.0) & (t_side > _EPS) & (y_side >= 0.0) & (y_side <= cyl.height)
    t_side = np.where(side_ok, t_side, np.inf)
    t_cap = (cyl.height - o[1]) / _safe(d[1])
    cx, cz = ox + t_cap * d[0], oz + t_cap * d[2]
    cap_ok = (t_cap > _EPS) & (cx * cx + cz * cz <= cyl.radius * cyl.radius)
    t_cap = np.where(cap_ok, t_cap, np.inf)
    return np.minimum(t_side, t_cap), t_cap < t_side


# --------------------------------------------------------------------------------------------
# Rendering


@dataclasses.dataclass
class _Hits:
    """Per-pixel results of casting the camera rays, `[H, W]` arrays."""

    t: np.ndarray  # ray parameter = camera-frame depth
    surface: np.ndarray  # int32 surface id
    normal: list[np.ndarray]  # world-frame unit normal, 3 arrays
    part: np.ndarray  # uint8 box part


@dataclasses.dataclass(frozen=True)
class _Surface:
    """What the shading and the labels need to know of one surface id."""

    cls: int  # semantic class, IGNORE_LABEL for windows
    colour: tuple[float, float, float]
    texture: str
    params: object = None


def _camera_rays(scene: Scene, height: int, width: int) -> list[np.ndarray]:
    """World-frame ray directions `R @ ((u - cx) / f, (v - cy) / f, 1)`, three `[H, W]`
    arrays, so that a ray's parameter at a hit point is that point's camera-frame depth."""
    k = camera_intrinsics(height, width)
    xc = (np.arange(width, dtype=np.float64) + 0.5 - k[0, 2]) / k[0, 0]
    yc = (np.arange(height, dtype=np.float64) + 0.5 - k[1, 2]) / k[1, 1]
    xc, yc = xc[None, :], yc[:, None]
    r = scene.rotation
    # Written out rather than a matmul: BLAS may sum in another order (or fuse) elsewhere.
    return [r[i][0] * xc + r[i][1] * yc + r[i][2] for i in range(3)]


def _screen_window(
    scene: Scene, lo: Sequence[float], hi: Sequence[float], height: int, width: int
) -> tuple[slice, slice] | None:
    """Rows and columns whose pixel centres may see the world box `[lo, hi]`; None if none.

    Only a speed-up: the object is tested on this window instead of the whole image. The
    window holds the projections of the box's corners plus a pixel, which bounds the object's
    image when all corners are in front of the camera; otherwise it is the whole image.
    """
    k = camera_intrinsics(height, width)
    r, o = scene.rotation, scene.camera
    us, vs = [], []
    for corner in itertools.product(*zip(lo, hi, strict=True)):
        rel = [corner[i] - o[i] for i in range(3)]
        x, y, z = (sum(r[i][j] * rel[i] for i in range(3)) for j in range(3))
        if z < 1e-3:
            return slice(0, height), slice(0, width)
        us.append(k[0, 0] * x / z + k[0, 2])
        vs.append(k[1, 1] * y / z + k[1, 2])
    # Pixel j has its centre at j + 0.5.
    c0, c1 = max(math.floor(min(us)) - 1, 0), min(math.ceil(max(us)) + 1, width)
    r0, r1 = max(math.floor(min(vs)) - 1, 0), min(math.ceil(max(vs)) + 1, height)
    if c0 >= c1 or r0 >= r1:
        return None
    return slice(r0, r1), slice(c0, c1)


def _cast_room(scene: Scene, d: list[np.ndarray]) -> _Hits:
    """The room seen from inside: per axis the plane the ray runs towards, nearest wins."""
    o, size = scene.camera, scene.size
    ts = [(np.where(d[i] > 0.0, size[i], 0.0) - o[i]) / _safe(d[i]) for i in range(3)]
    axis = np.where((ts[0] <= ts[1]) & (ts[0] <= ts[2]), 0, np.where(ts[1] <= ts[2], 1, 2))
    t = np.minimum(np.minimum(ts[0], ts[1]), ts[2])
    wall_x = np.where(d[0] > 0.0, _WALL0_ID + 1, _WALL0_ID)
    floor_ceiling = np.where(d[1] > 0.0, _CEILING_ID, _FLOOR_ID)
    wall_z = np.where(d[2] > 0.0, _WALL0_ID + 3, _WALL0_ID + 2)
    surface = np.where(axis == 0, wall_x, np.where(axis == 1, floor_ceiling, wall_z))
    table = np.array([(0.0, 1.0, 0.0), (0.0, -1.0, 0.0), *_WALL_NORMALS])
    normal = [table[surface, i] for i in range(3)]
    return _Hits(t, surface.astype(np.int32), normal, np.zeros(t.shape, np.uint8))


def _cast_rects(scene: Scene, hits: _Hits, d: list[np.ndarray], first_id: int) -> None:
    """Relabel wall pixels inside a picture or window rectangle (same plane as the wall)."""
    o = scene.camera
    y = o[1] + hits.t * d[1]
    for k, rect in enumerate(scene.rects):
        axis = _WALL_U_AXIS[rect.wall]
        u = o[axis] + hits.t * d[axis]
        inside = (u >= rect.u0) & (u <= rect.u1) & (y >= rect.y0) & (y <= rect.y1)
        hits.surface[(hits.surface == _WALL0_ID + rect.wall) & inside] = first_id + k


def _closer(hits: _Hits, win: tuple[slice, slice], t: np.ndarray, surface_id: int):
    """Pixels of window `win` where `t` beats the current hit: they take the new hit's depth
    and surface; returns their mask (window-shaped)."""
    near = t < hits.t[win]
    hits.t[win] = np.where(near, t, hits.t[win])
    hits.surface[win][near] = surface_id
    hits.part[win][near] = 0
    return near


def _set_normal(hits: _Hits, win, near: np.ndarray, normal: Sequence[np.ndarray]) -> None:
    for i in range(3):
        hits.normal[i][win] = np.where(near, normal[i], hits.normal[i][win])


def _cast_box(box: Box, hits: _Hits, o, d, surface_id: int, win) -> None:
    t, x0, y0, z0, ldx, ldz = _hit_box(box, o, d)
    near = _closer(hits, win, t, surface_id)
    on_x = (x0 >= y0) & (x0 >= z0)
    on_y = ~on_x & (y0 >= z0)
    on_z = ~on_x & ~on_y
    sx = -np.sign(ldx)  # the entry face looks back along the ray
    sz = -np.sign(ldz)
    # Local x / z axes in world: (cos, 0, sin) and (-sin, 0, cos).
    nx = np.where(on_x, sx * box.cos_yaw, np.where(on_z, -sz * box.sin_yaw, 0.0))
    nz = np.where(on_x, sx * box.sin_yaw, np.where(on_z, sz * box.cos_yaw, 0.0))
    ny = np.where(on_y, -np.sign(d[1]), 0.0)
    _set_normal(hits, win, near, (nx, ny, nz))
    # A face normal to local x spans the box's z extent: it is the long side if half_z wins.
    x_part = LONG_SIDE if box.half_z > box.half_x else SHORT_SIDE
    z_part = LONG_SIDE if box.half_x > box.half_z else SHORT_SIDE
    part = np.where(on_x, x_part, np.where(on_y, TOP, z_part)).astype(np.uint8)
    hits.part[win][near] = part[near]


def _cast_sphere(sphere: Sphere, hits: _Hits, o, d, surface_id: int, win) -> None:
    t = _hit_sphere(sphere, o, d)
    near = _closer(hits, win, t, surface_id)
    centre = (sphere.cx, sphere.radius, sphere.cz)
    normal = [(o[i] + t * d[i] - centre[i]) / sphere.radius for i in range(3)]
    _set_normal(hits, win, near, normal)


def _cast_cylinder(cyl: Cylinder, hits: _Hits, o, d, surface_id: int, win) -> None:
    t, on_cap = _hit_cylinder(cyl, o, d)
    near = _closer(hits, win, t, surface_id)
    nx = np.where(on_cap, 0.0, (o[0] + t * d[0] - cyl.cx) / cyl.radius)
    nz = np.where(on_cap, 0.0, (o[2] + t * d[2] - cyl.cz) / cyl.radius)
    ny = np.where(on_cap, 1.0, 0.0)
    _set_normal(hits, win, near, (nx, ny, nz))


def _surfaces(scene: Scene) -> list[_Surface]:
    """The surface table, indexed by surface id: room, wall rectangles, then objects."""
    wall = _Surface(WALL, scene.wall_colour, "stripes", scene.stripe)
    surfaces = [
        _Surface(FLOOR, scene.floor_colour, "tiles", scene.tile),
        _Surface(CEILING, scene.ceiling_colour, "plain"),
        *([wall] * 4),
    ]
    for rect in scene.rects:
        if rect.is_window:
            surfaces.append(_Surface(IGNORE_LABEL, (0.0, 0.0, 0.0), "sky"))
        else:
            surfaces.append(_Surface(PICTURE, rect.colour, "picture", rect))
    surfaces += [_Surface(BOX, b.colour, "wood", b) for b in scene.boxes]
    surfaces += [_Surface(SPHERE, s.colour, "bands", s.band) for s in scene.spheres]
    surfaces += [_Surface(CYLINDER, c.colour, "rings", c) for c in scene.cylinders]
    return surfaces


def _bounds(obj: Box | Sphere | Cylinder) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """World axis-aligned bounding box `(lo, hi)` of an object."""
    if isinstance(obj, Box):
        reach, top = math.hypot(obj.half_x, obj.half_z), obj.height
    elif isinstance(obj, Sphere):
        reach, top = obj.radius, 2.0 * obj.radius
    else:
        reach, top = obj.radius, obj.height
    return (obj.cx - reach, 0.0, obj.cz - reach), (obj.cx + reach, top, obj.cz + reach)


def _objects(scene: Scene) -> tuple[Box | Sphere | Cylinder, ...]:
    """All objects, in surface-id order."""
    return scene.boxes + scene.spheres + scene.cylinders


def _cast(scene: Scene, d: list[np.ndarray]) -> tuple[_Hits, list[_Surface]]:
    hits = _cast_room(scene, d)
    _cast_rects(scene, hits, d, _WALL0_ID + 4)
    height, width = d[0].shape
    casters = {Box: _cast_box, Sphere: _cast_sphere, Cylinder: _cast_cylinder}
    for k, obj in enumerate(_objects(scene)):
        win = _screen_window(scene, *_bounds(obj), height, width)
        if win is not None:
            sid = _WALL0_ID + 4 + len(scene.rects) + k  # as numbered by _surfaces
            casters[type(obj)](obj, hits, scene.camera, [c[win] for c in d], sid, win)
    return hits, _surfaces(scene)


def _parity(x: np.ndarray) -> np.ndarray:
    """1.0 where `floor(x)` is odd, else 0.0: the building block of all the patterns."""
    k = np.floor(x)
    return k - 2.0 * np.floor(0.5 * k)


def _triangle(x: np.ndarray) -> np.ndarray:
    """A triangle wave in [0, 1] with period 1."""
    return np.abs(2.0 * (x - np.floor(x)) - 1.0)


def _texture(surface: _Surface, p: list[np.ndarray], wall_u: np.ndarray) -> np.ndarray:
    """Multiplicative brightness pattern of one surface at world points `p`."""
    kind, q = surface.texture, surface.params
    if kind == "tiles":  # floor checkerboard in world x, z
        return 1.0 - 0.22 * _parity(np.floor(p[0] / q) + np.floor(p[2] / q))
    if kind == "stripes":  # vertical wall stripes
        return 1.0 - 0.08 * _parity(wall_u / q)
    if kind == "picture":  # diagonal stripes with a darker frame
        stripes = 1.0 - 0.45 * _parity((wall_u + p[1]) / q.period)
        border = 0.06
        frame = (
            (wall_u < q.u0 + border)
            | (wall_u > q.u1 - border)
            | (p[1] < q.y0 + border)
            | (p[1] > q.y1 - border)
        )
        return np.where(frame, 0.35, stripes)
    if kind == "wood":  # grain along the box's long axis, wobbling with height
        lx, lz = _box_local(q, p[0] - q.cx, p[2] - q.cz)
        along = lx if q.half_x >= q.half_z else lz
        return 0.8 + 0.2 * _triangle((along + 0.35 * p[1]) / q.grain + 0.5 * _triangle(p[1]))
    if kind == "bands":
        return 1.0 - 0.25 * _parity(p[1] / q)
    if kind == "rings":  # rings up the side, concentric rings on the cap
        dx, dz = p[0] - q.cx, p[2] - q.cz
        radial = np.sqrt(dx * dx + dz * dz)
        on_cap = p[1] >= q.height - 1e-9
        return 1.0 - 0.2 * _parity(np.where(on_cap, radial, p[1]) / q.ring)
    return np.ones_like(p[0])


def _bounding_sphere(obj: Box | Sphere | Cylinder) -> tuple[tuple[float, float, float], float]:
    lo, hi = _bounds(obj)
    centre = tuple(0.5 * (a + b) for a, b in zip(lo, hi, strict=True))
    return centre, 0.5 * math.dist(lo, hi)


def _in_shadow(scene: Scene, p: list[np.ndarray], n: list[np.ndarray]) -> np.ndarray:
    """Whether the segment from each point (1-D arrays) to the light is blocked by an object.

    Each object is only tested on the points whose line to the light passes within its
    bounding sphere, a cheap test that leaves out most points.
    """
    o = [p[i] + _SHADOW_OFFSET * n[i] for i in range(3)]
    d = [scene.light[i] - o[i] for i in range(3)]
    dd = d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
    blocked = np.zeros(p[0].shape, dtype=bool)
    hit_fns = {Box: lambda *a: _hit_box(*a)[0], Sphere: _hit_sphere}
    hit_fns[Cylinder] = lambda *a: _hit_cylinder(*a)[0]
    for obj in _objects(scene):
        centre, radius = _bounding_sphere(obj)
        w = [centre[i] - scene.light[i] for i in range(3)]  # light to object centre
        wd = w[0] * d[0] + w[1] * d[1] + w[2] * d[2]
        ww = w[0] * w[0] + w[1] * w[1] + w[2] * w[2]
        # Squared distance of the centre from the ray's line, times |d|^2.
        near = ww * dd - wd * wd <= radius * radius * dd
        if near.any():
            t = hit_fns[type(obj)](obj, [c[near] for c in o], [c[near] for c in d])
            blocked[near] |= t < 1.0
    return blocked


def _sky(d: list[np.ndarray]) -> list[np.ndarray]:
    """A bright sky gradient seen through windows, by the ray's elevation."""
    up = d[1] / np.sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2])
    s = np.clip(0.5 + 1.5 * up, 0.0, 1.0)
    return [_SKY_HORIZON[i] + s * (_SKY_ZENITH[i] - _SKY_HORIZON[i]) for i in range(3)]


def _shade(
    scene: Scene, hits: _Hits, surfaces: list[_Surface], d: list[np.ndarray]
) -> list[np.ndarray]:
    """Linear RGB in [0, 1]: albedo x texture x (ambient + Lambert x light x shadow)."""
    o = scene.camera
    p = [o[i] + hits.t * d[i] for i in range(3)]
    to_light = [scene.light[i] - p[i] for i in range(3)]
    dist2 = to_light[0] * to_light[0] + to_light[1] * to_light[1] + to_light[2] * to_light[2]
    n = hits.normal
    cosine = (n[0] * to_light[0] + n[1] * to_light[1] + n[2] * to_light[2]) / np.sqrt(dist2)
    lit = (cosine > 0.0) & ~_window_mask(hits, surfaces)
    lit[lit] = ~_in_shadow(scene, [c[lit] for c in p], [c[lit] for c in n])
    diffuse = np.where(lit, cosine, 0.0) * scene.light_power / (4.0 + dist2)
    # Position along a wall (or a picture on it): z on the walls x = const, else x.
    wall_u = np.where(np.abs(n[0]) > 0.5, p[2], p[0])
    texture = np.ones_like(hits.t)
    colour = [np.zeros_like(hits.t) for _ in range(3)]
    for sid, surface in enumerate(surfaces):
        mask = hits.surface == sid
        if not mask.any():
            continue
        texture[mask] = _texture(surface, [c[mask] for c in p], wall_u[mask])
        for i in range(3):
            colour[i][mask] = surface.colour[i]
    light_tint = (1.0, 0.96, 0.88)
    rgb = [colour[i] * texture * (scene.ambient + diffuse * light_tint[i]) for i in range(3)]
    window = _window_mask(hits, surfaces)
    sky = _sky(d)
    return [np.where(window, sky[i], rgb[i]) for i in range(3)]


def _window_mask(hits: _Hits, surfaces: list[_Surface]) -> np.ndarray:
    classes = np.array([s.cls for s in surfaces], dtype=np.int32)
    return classes[hits.surface] == IGNORE_LABEL


def _sensor(rgb: list[np.ndarray], sigma: float, rng: np.random.Generator) -> np.ndarray:
    """uint8 image: gamma-encoded linear RGB scaled to 0..255 plus noise, rounded.

    The noise of a pixel is the centred sum of the four 16-bit fields of one raw 64-bit PCG64
    output, scaled to unit variance (Irwin-Hall): nearly Gaussian, cheap, exact integer
    arithmetic up to one scaling, and the same whatever the byte order.
    """
    # A gamma of 2 (a square root, exact everywhere) stands in for the sRGB curve.
    image = np.sqrt(np.clip(np.stack(rgb, axis=-1), 0.0, 1.0)) * 255.0
    fields = rng.bit_generator.random_raw(image.size).view(np.uint16).reshape(-1, 4)
    total = fields[:, 0].astype(np.int32) + fields[:, 1] + fields[:, 2] + fields[:, 3]
    # Each field has mean 32767.5 and variance ~2^32 / 12, so the sum has std 2^16 / sqrt(3).
    noise = (total.reshape(image.shape) - 131070) * (sigma * math.sqrt(3.0) / 65536.0)
    return np.clip(np.rint(image + noise), 0.0, 255.0).astype(np.uint8)


def edge_map(semseg: np.ndarray, depth: np.ndarray, surface: np.ndarray) -> np.ndarray:
    """uint8 `[H, W]` boundaries of `semseg` and of depth jumps between different surfaces.

    For each 4-connected pixel pair that differs in class, or lies on two surfaces (`surface`,
    int ids) whose depths differ by more than `DEPTH_EDGE_RATIO` of the smaller one, the nearer
    pixel is marked (both on a tie); invalid depth (0) counts as infinitely far.
    """
    depth = depth.astype(np.float64)
    key = np.where(depth > 0, depth, np.inf)
    edge = np.zeros(semseg.shape, dtype=bool)
    for axis in (0, 1):
        a = [slice(None), slice(None)]
        b = [slice(None), slice(None)]
        a[axis], b[axis] = slice(None, -1), slice(1, None)
        a, b = tuple(a), tuple(b)
        ka, kb = key[a], key[b]
        da, db = depth[a], depth[b]
        jump = (da > 0) & (db > 0) & (np.abs(da - db) > DEPTH_EDGE_RATIO * np.minimum(da, db))
        differ = (semseg[a] != semseg[b]) | ((surface[a] != surface[b]) & jump)
        edge[a] |= differ & (ka <= kb)
        edge[b] |= differ & (kb <= ka)
    return edge.astype(np.uint8)


def render_scene(
    scene: Scene, height: int, width: int, noise_rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Render `scene` at `height` x `width`: the image and all label maps (see module doc)."""
    d = _camera_rays(scene, height, width)
    hits, surfaces = _cast(scene, d)
    window = _window_mask(hits, surfaces)
    rgb = _shade(scene, hits, surfaces, d)
    classes = np.array([s.cls for s in surfaces], dtype=np.uint8)
    semseg = classes[hits.surface]
    # Edges are computed from the stored float32 depth, so they can be re-derived from it.
    depth = np.where(window, 0.0, hits.t).astype(np.float32)
    r = scene.rotation
    n = hits.normal
    # World to camera frame is R^T; written out for the same reason as in _camera_rays.
    normals = [
        np.where(window, 0.0, r[0][i] * n[0] + r[1][i] * n[1] + r[2][i] * n[2]) for i in range(3)
    ]
    parts = np.where(window, IGNORE_LABEL, hits.part).astype(np.uint8)
    if not (hits.part > 0).any():
        parts[:] = IGNORE_LABEL  # no box in view: nothing to learn parts from
    return {
        "image": _sensor(rgb, scene.noise_sigma, noise_rng),
        "semseg": semseg,
        "depth": depth,
        "normals": np.stack(normals, axis=-1).astype(np.float32),
        "edge": edge_map(semseg, depth, hits.surface),
        "sal": np.isin(semseg, OBJECT_CLASSES).astype(np.uint8),
        "human_parts": parts,
    }


def _example_rngs(
    seed: int, split: str, index: int
) -> tuple[np.random.Generator, np.random.Generator]:
    """The scene and sensor-noise generators of one example.

    Each example has its own `SeedSequence([seed, split_index, index])`, so it does not depend
    on which others were made before it; the scene gets its first child and the noise its
    second, so the same scene comes out at every resolution.
    """
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; the splits are {', '.join(SPLITS)}.")
    children = np.random.SeedSequence([seed, SPLITS.index(split), index]).spawn(2)
    scene_rng, noise_rng = (np.random.Generator(np.random.PCG64(c)) for c in children)
    return scene_rng, noise_rng


def example_scene(seed: int, split: str, index: int) -> Scene:
    """The scene of example `index` of `split` ("train" or "validation") for seed `seed`."""
    return sample_scene(_example_rngs(seed, split, index)[0])


def render_example(
    seed: int, split: str, index: int, height: int, width: int
) -> dict[str, np.ndarray]:
    """Example `index` of `split` ("train" or "validation") for dataset seed `seed`, rendered
    at `height` x `width`: a dict of the arrays described in the module docstring."""
    scene_rng, noise_rng = _example_rngs(seed, split, index)
    return render_scene(sample_scene(scene_rng), height, width, noise_rng)
