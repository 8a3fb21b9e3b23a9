"""Pictures of labels and predictions, with NumPy and Pillow only.

`colorize` turns one task's label map into RGB, `to_label` turns a raw head output into such a
map, and `prediction_grid` lays out, per example, the input image followed by ground truth and
prediction for each task. Nothing here touches JAX; pass `np.asarray(...)` of device arrays.
"""

from __future__ import annotations

import colorsys
import os
from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image

from mtnets.tasks import IGNORE_LABEL

GAP = 2  # Separator width in pixels.
GAP_COLOR = 255  # White separators.


def _make_palette(size: int = 256) -> np.ndarray:
    """uint8 `[size, 3]`: colours for class ids, none of them black (black marks ignore).

    Hues step by the golden ratio so neighbouring ids differ strongly; saturation and brightness
    cycle through a few levels so that ids whose hues nearly repeat still differ.
    """
    golden = (np.sqrt(5.0) - 1.0) / 2.0
    colours = []
    for c in range(size):
        hue = (0.03 + c * golden) % 1.0
        saturation = (0.9, 0.55)[c % 2]
        value = (0.95, 0.7, 0.5)[(c // 2) % 3]
        colours.append(colorsys.hsv_to_rgb(hue, saturation, value))
    return np.round(np.asarray(colours) * 255.0).astype(np.uint8)


PALETTE = _make_palette()

# A viridis-like perceptual colormap: anchor colours at even steps, linearly interpolated.
_DEPTH_ANCHORS = np.array(
    [
        [68, 1, 84],
        [65, 68, 135],
        [42, 120, 142],
        [34, 168, 132],
        [122, 209, 81],
        [253, 231, 37],
    ],
    dtype=np.float64,
)


def _depth_lut(size: int = 256) -> np.ndarray:
    """uint8 `[size, 3]` colormap from dark (near) to bright (far)."""
    anchor_pos = np.linspace(0.0, 1.0, len(_DEPTH_ANCHORS))
    x = np.linspace(0.0, 1.0, size)
    channels = [np.interp(x, anchor_pos, _DEPTH_ANCHORS[:, i]) for i in range(3)]
    return np.round(np.stack(channels, axis=-1)).astype(np.uint8)


DEPTH_LUT = _depth_lut()


def _squeeze_channel(array: np.ndarray) -> np.ndarray:
    """`[H, W, 1]` -> `[H, W]`; other shapes unchanged."""
    return array[..., 0] if array.ndim == 3 and array.shape[-1] == 1 else array


def colorize_labels(labels: np.ndarray, num_classes: int | None = None) -> np.ndarray:
    """uint8 `[H, W, 3]` from int class ids `[H, W]`; 255 (ignore) is black."""
    labels = np.asarray(_squeeze_channel(labels)).astype(np.int64)
    ignore = labels == IGNORE_LABEL
    limit = len(PALETTE) - 1 if num_classes is None else num_classes
    bad = ~ignore & ((labels < 0) | (labels >= limit))
    if np.any(bad):
        raise ValueError(f"Class ids must lie in [0, {limit}) or be {IGNORE_LABEL}.")
    rgb = PALETTE[np.where(ignore, 0, labels)]
    rgb[ignore] = 0
    return rgb


def depth_range(*arrays: np.ndarray) -> tuple[float, float]:
    """(min, max) of the valid (> 0, finite) values of all arrays; (0, 1) if there are none."""
    values = [a[np.isfinite(a) & (a > 0)] for a in map(np.asarray, arrays)]
    values = np.concatenate([v.ravel() for v in values]) if values else np.zeros(0)
    if values.size == 0:
        return 0.0, 1.0
    return float(values.min()), float(values.max())


def colorize_depth(
    depth: np.ndarray, vmin: float | None = None, vmax: float | None = None
) -> np.ndarray:
    """uint8 `[H, W, 3]` from depth `[H, W]`; invalid (<= 0 or not finite) is black.

    Values are mapped linearly from [vmin, vmax] (default: this map's valid range) onto the
    colormap and clipped, so pass one range to make several maps comparable.
    """
    depth = np.asarray(_squeeze_channel(depth), dtype=np.float64)
    valid = np.isfinite(depth) & (depth > 0)
    low, high = depth_range(depth)
    low = low if vmin is None else vmin
    high = high if vmax is None else vmax
    scaled = (np.where(valid, depth, low) - low) / max(high - low, 1e-12)
    index = np.round(np.clip(scaled, 0.0, 1.0) * (len(DEPTH_LUT) - 1)).astype(np.int64)
    rgb = DEPTH_LUT[index]
    rgb[~valid] = 0
    return rgb


def colorize_normals(normals: np.ndarray) -> np.ndarray:
    """uint8 `[H, W, 3]` as round(255 (n + 1) / 2) of the unit normal; zero vectors are black."""
    normals = np.asarray(normals, dtype=np.float64)
    norm = np.linalg.norm(normals, axis=-1, keepdims=True)
    valid = norm[..., 0] > 0
    unit = normals / np.maximum(norm, 1e-12)
    rgb = np.clip(np.floor((unit + 1.0) / 2.0 * 255.0 + 0.5), 0, 255).astype(np.uint8)
    rgb[~valid] = 0
    return rgb


def colorize_probability(prob: np.ndarray) -> np.ndarray:
    """uint8 `[H, W, 3]` grey levels of a probability (or {0, 1} label) `[H, W]`."""
    prob = np.asarray(_squeeze_channel(prob), dtype=np.float64)
    grey = np.clip(np.floor(prob * 255.0 + 0.5), 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


def colorize(
    task: str,
    array: np.ndarray,
    *,
    num_classes: int | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
) -> np.ndarray:
    """uint8 `[H, W, 3]` picture of one task's label map (a target, or `to_label` of an output).

    semseg/human_parts: int ids `[H, W]` in a fixed palette, ignore (255) black; `num_classes`
    only validates the ids. depth: `[H, W]` through a viridis-like map over [vmin, vmax],
    invalid black. normals: `[H, W, 3]` as (n + 1) / 2, zero black. edge/sal: `[H, W]` in
    [0, 1] as grey.
    """
    if task in ("semseg", "human_parts"):
        return colorize_labels(array, num_classes)
    if task == "depth":
        return colorize_depth(array, vmin, vmax)
    if task == "normals":
        return colorize_normals(array)
    if task in ("edge", "sal"):
        return colorize_probability(array)
    raise ValueError(f"Cannot colorize unknown task {task!r}.")


def to_label(task: str, prediction: np.ndarray) -> np.ndarray:
    """What `colorize` takes, from a raw head output `[H, W, C]`.

    Classification: argmax ids `[H, W]`; edge/sal: sigmoid probability `[H, W]`; depth: the
    channel `[H, W]`; normals: the unit vector `[H, W, 3]` (zero stays zero).
    """
    prediction = np.asarray(prediction, dtype=np.float64)
    if task in ("semseg", "human_parts"):
        return np.argmax(prediction, axis=-1).astype(np.int32)
    if task in ("edge", "sal"):
        # exp(-|x|) form: a sigmoid that does not overflow for large negative logits.
        x = prediction[..., 0]
        e = np.exp(-np.abs(x))
        return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    if task == "depth":
        return prediction[..., 0]
    if task == "normals":
        norm = np.linalg.norm(prediction, axis=-1, keepdims=True)
        return prediction / np.maximum(norm, 1e-12)
    raise ValueError(f"Cannot read a label from unknown task {task!r}.")


def _image_to_uint8(image: np.ndarray) -> np.ndarray:
    """uint8 `[H, W, 3]` from a uint8 image or a float one in [0, 1]."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    return np.clip(np.floor(image.astype(np.float64) * 255.0 + 0.5), 0, 255).astype(np.uint8)


def _hconcat(tiles: Sequence[np.ndarray], gap: int) -> np.ndarray:
    """Tiles `[H, W_i, 3]` side by side with `gap`-wide separators."""
    height = tiles[0].shape[0]
    separator = np.full((height, gap, 3), GAP_COLOR, np.uint8)
    parts: list[np.ndarray] = []
    for i, tile in enumerate(tiles):
        if i:
            parts.append(separator)
        parts.append(tile)
    return np.concatenate(parts, axis=1)


def _vconcat(rows: Sequence[np.ndarray], gap: int) -> np.ndarray:
    """Rows `[H_i, W, 3]` stacked with `gap`-high separators."""
    separator = np.full((gap, rows[0].shape[1], 3), GAP_COLOR, np.uint8)
    parts: list[np.ndarray] = []
    for i, row in enumerate(rows):
        if i:
            parts.append(separator)
        parts.append(row)
    return np.concatenate(parts, axis=0)


def _task_tiles(task: str, target: np.ndarray, prediction: np.ndarray) -> list[np.ndarray]:
    """[ground truth, prediction] pictures of one example; depth shares one value range."""
    label = to_label(task, prediction)
    if task == "depth":
        target = _squeeze_channel(np.asarray(target))
        low, high = depth_range(target, np.where(target > 0, label, 0.0))
        if not np.any(target > 0):
            low, high = depth_range(label)
        return [colorize_depth(target, low, high), colorize_depth(label, low, high)]
    return [colorize(task, target), colorize(task, label)]


def prediction_grid(
    images: np.ndarray,
    targets: Mapping[str, np.ndarray],
    predictions: Mapping[str, np.ndarray],
    tasks: Sequence[str],
    *,
    gap: int = GAP,
) -> np.ndarray:
    """uint8 `[N H + (N - 1) gap, (1 + 2 T) W + 2 T gap, 3]`: one row per example.

    Args:
      images: `[N, H, W, 3]`, uint8 or float in [0, 1].
      targets: task -> labels `[N, H, W, ...]` (as in `mtnets.tasks`).
      predictions: task -> raw head outputs `[N, H, W, C]` at the label resolution.
      tasks: the tasks to show, in order.

    Each row: the image, then for every task its ground truth and its prediction. The depth
    pair of a row shares one value range (that of the valid ground truth and the prediction at
    those pixels), so colours compare.
    """
    images = np.asarray(images)
    rows = []
    for n in range(images.shape[0]):
        tiles = [_image_to_uint8(images[n])]
        for task in tasks:
            tiles.extend(_task_tiles(task, np.asarray(targets[task][n]), predictions[task][n]))
        shapes = {tile.shape for tile in tiles}
        if len(shapes) != 1:
            raise ValueError(f"Images, targets and predictions differ in size: {sorted(shapes)}.")
        rows.append(_hconcat(tiles, gap))
    return _vconcat(rows, gap)


def save_png(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write a uint8 `[H, W, 3]` (or `[H, W]`) array as a PNG, creating parent folders."""
    directory = os.path.dirname(os.fspath(path))
    if directory:
        os.makedirs(directory, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path, format="PNG")
