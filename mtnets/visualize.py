"""Pictures of labels and predictions.

`colorize` turns one task's label map into RGB and `to_label` turns a raw head output into such
a map. `prediction_figure` lays them out with matplotlib as people read them: a title over
every column, a legend of the class colours of segmentation tasks, a colour bar with the range
of depth, and an error map per task; `figure_to_array` and `save_figure` render it (Agg, no
display). `prediction_grid` is the bare pixel grid (NumPy and Pillow only). Nothing here
touches JAX; pass `np.asarray(...)` of device arrays.
"""

from __future__ import annotations

import colorsys
import io
import os
from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image

from mtnets import tasks as tasks_lib
from mtnets.tasks import IGNORE_LABEL, Task
from mtnets.tasks.base import squeeze_channel as _squeeze_channel

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


def _task(task: str | Task) -> Task:
    """A task object from a task or the name of a registered one."""
    return task if isinstance(task, Task) else tasks_lib.get_task(task)


def colorize(
    task: str | Task,
    array: np.ndarray,
    *,
    num_classes: int | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
) -> np.ndarray:
    """uint8 `[H, W, 3]` picture of one task's label map (a target, or `to_label` of an output),
    as the task draws it (`Task.picture`).

    semseg/human_parts: int ids `[H, W]` in a fixed palette, ignore (255) black; `num_classes`
    only validates the ids. depth: `[H, W]` through a viridis-like map over [vmin, vmax],
    invalid black. normals: `[H, W, 3]` as (n + 1) / 2, zero black. edge/sal: `[H, W]` in
    [0, 1] as grey.
    """
    return _task(task).picture(array, num_classes=num_classes, vmin=vmin, vmax=vmax)


def to_label(task: str | Task, prediction: np.ndarray) -> np.ndarray:
    """What `colorize` takes, from a raw head output `[H, W, C]` (`Task.label_from_prediction`).

    Classification: argmax ids `[H, W]`; edge/sal: sigmoid probability `[H, W]`; depth: the
    channel `[H, W]`; normals: the unit vector `[H, W, 3]` (zero stays zero).
    """
    return _task(task).label_from_prediction(prediction)


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
    """[ground truth, prediction] pictures of one example; value maps (depth) share one
    value range."""
    spec = _task(task)
    label = spec.label_from_prediction(prediction)
    if spec.colour_bar is not None:
        low, high = _shared_range(target, label)
        return [spec.picture(target, vmin=low, vmax=high), spec.picture(label, vmin=low, vmax=high)]
    return [spec.picture(target), spec.picture(label)]


def _shared_range(target: np.ndarray | None, label: np.ndarray) -> tuple[float, float]:
    """The value range of a value map's picture: that of the valid target and the prediction
    at its pixels, or the prediction's alone without a valid target."""
    if target is None:
        return depth_range(label)
    target = _squeeze_channel(np.asarray(target))
    if not np.any(target > 0):
        return depth_range(label)
    return depth_range(target, np.where(target > 0, label, 0.0))


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


# ===========================================================================================
# Figures people can read (matplotlib, drawn off-screen with Agg: no display is needed).
TILE_INCHES = 1.8  # height of one picture in a figure


class _ErrorTitles(Mapping):
    """task name -> the title over its error maps (`Task.error_title`), for every registered
    task."""

    def __getitem__(self, task: str) -> str:
        return tasks_lib.get_task(task).error_title

    def __iter__(self):
        return iter(tasks_lib.TASKS)

    def __len__(self) -> int:
        return len(tasks_lib.TASKS)


ERROR_TITLES = _ErrorTitles()


def error_map(task: str | Task, target: np.ndarray, label: np.ndarray) -> np.ndarray:
    """float `[H, W]` error of a prediction `label` (from `to_label`) against `target`; NaN where
    the target is invalid (`Task.error_map`). depth: |prediction - target| in metres; normals:
    the angle between the unit vectors in degrees; semseg/human_parts: 1 on wrong pixels, 0 on
    right ones; edge/sal: |probability - label|."""
    return _task(task).error_map(target, label)


def _error_summary(task: str, error: np.ndarray) -> str:
    """One line under an error map: the mean error over the valid pixels."""
    valid = error[np.isfinite(error)]
    if valid.size == 0:
        return "no valid pixel"
    spec = _task(task)
    if spec.is_classification:
        return f"{100.0 * valid.mean():.1f}% wrong"
    return f"mean {valid.mean():.3g}{spec.error_unit}"


def _columns(tasks: Sequence[str], with_truth: bool) -> list[tuple[str | None, str]]:
    """(task, kind) of every column; the first is the input image."""
    kinds = ("ground truth", "prediction", "error") if with_truth else ("prediction",)
    return [(None, "input")] + [(task, kind) for task in tasks for kind in kinds]


def _column_title(task: str | None, kind: str) -> str:
    if task is None:
        return "input"
    return f"{task}\n{ERROR_TITLES[task] if kind == 'error' else kind}"


def prediction_figure(
    images: np.ndarray,
    targets: Mapping[str, np.ndarray] | None,
    predictions: Mapping[str, np.ndarray],
    tasks: Sequence[str],
    *,
    class_names: Mapping[str, Sequence[str]] | None = None,
    dpi: int = 100,
    tile_inches: float = TILE_INCHES,
):
    """A matplotlib `Figure`: one row per example, a titled column per picture.

    Args:
      images: `[N, H, W, 3]`, uint8 or float in [0, 1].
      targets: task -> labels `[N, H, W, ...]`; None for images without labels (predict.py).
      predictions: task -> raw head outputs `[N, H, W, C]` at the size of the images.
      tasks: the tasks to show, in order.
      class_names: task -> the names of its class ids, for the legend (ids without a name are
        shown as numbers).
      dpi, tile_inches: the resolution, and the height of one picture in inches.

    Each row holds the input, then per task the ground truth, the prediction and the error map
    (`error_map`, with its mean under it), or only the prediction without targets. Depth maps
    share one value range per row with a colour bar; under the last row, a legend names the
    colours of the classes that appear in the pictures of each segmentation task.
    """
    from matplotlib.figure import Figure

    images = np.asarray(images)
    count, height, width = images.shape[:3]
    columns = _columns(tasks, targets is not None)
    legend_tasks = [t for t in tasks if _task(t).is_classification]
    labels = [{t: to_label(t, predictions[t][row]) for t in tasks} for row in range(count)]
    truth = [
        {t: np.asarray(targets[t][row]) for t in tasks} if targets is not None else {}
        for row in range(count)
    ]
    seen = {t: _shown_ids(t, labels, truth) for t in legend_tasks}  # the legend names only these
    rows = count + (1 if legend_tasks else 0)
    # A legend line is about 0.15 inch high (font size 7), plus its title.
    lines = max((-(-len(ids) // _legend_columns(len(ids))) for ids in seen.values()), default=0)
    ratios = [1.0] * count + ([(0.35 + 0.15 * lines) / tile_inches] if legend_tasks else [])
    tile_w = tile_inches * width / height
    figure = Figure(
        figsize=(len(columns) * tile_w * 1.2, sum(ratios) * tile_inches * 1.25),
        dpi=dpi,
        layout="constrained",
    )
    grid = figure.add_gridspec(rows, len(columns), height_ratios=ratios)
    for row in range(count):
        for col, (task, kind) in enumerate(columns):
            ax = figure.add_subplot(grid[row, col])
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(_column_title(task, kind), fontsize=8)
            if task is None:
                ax.imshow(_image_to_uint8(images[row]), interpolation="antialiased")
            elif kind == "error":
                error = error_map(task, truth[row][task], labels[row][task])
                _draw_error(figure, ax, task, error)
            else:
                shown = truth[row][task] if kind == "ground truth" else labels[row][task]
                _draw_label(figure, ax, task, kind, shown, truth[row].get(task), labels[row][task])
    for task in legend_tasks:
        span = [c for c, (t, _) in enumerate(columns) if t == task]
        ax = figure.add_subplot(grid[count, span[0] : span[-1] + 1])
        ax.axis("off")
        _draw_legend(ax, task, seen[task], (class_names or {}).get(task))
    return figure


def _shown_ids(task: str, labels: list[dict], truth: list[dict]) -> list[int]:
    """The class ids in the predictions and ground truths of `task`, sorted."""
    maps = [row[task] for row in labels] + [_squeeze_channel(row[task]) for row in truth if row]
    return sorted(set().union(*(np.unique(m).astype(int).tolist() for m in maps)))


def _legend_columns(entries: int) -> int:
    return max(1, min(3, (entries + 3) // 4))


def _draw_label(figure, ax, task, kind, shown, target, label) -> None:
    """A ground truth or a prediction; value maps (depth) with a colour bar over the row's
    shared range."""
    spec = _task(task)
    if spec.colour_bar is None:
        ax.imshow(spec.picture(shown), interpolation="nearest")
        return
    import matplotlib

    low, high = _shared_range(target, label)
    shown = _squeeze_channel(np.asarray(shown, np.float64))
    masked = np.ma.masked_where(~(np.isfinite(shown) & (shown > 0)), shown)
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="black")
    image = ax.imshow(masked, cmap=cmap, vmin=low, vmax=high, interpolation="nearest")
    if kind == "prediction":
        bar = figure.colorbar(image, ax=ax, shrink=0.9)
        bar.set_label(spec.colour_bar, fontsize=7)
        bar.ax.tick_params(labelsize=7)


def _draw_error(figure, ax, task, error) -> None:
    """An error map: wrong pixels in red for classes, a colour bar from 0 otherwise."""
    import matplotlib

    masked = np.ma.masked_invalid(error)
    spec = _task(task)
    if spec.is_classification:
        cmap = matplotlib.colors.ListedColormap(["#d9d9d9", "#d62728"]).with_extremes(bad="black")
        ax.imshow(masked, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
    else:
        cmap = matplotlib.colormaps["magma"].with_extremes(bad="black")
        top = spec.error_max
        if top is None:
            top = float(np.nanmax(error)) if masked.count() else 1
        image = ax.imshow(masked, cmap=cmap, vmin=0, vmax=max(top, 1e-6), interpolation="nearest")
        figure.colorbar(image, ax=ax, shrink=0.9).ax.tick_params(labelsize=7)
    ax.set_xlabel(_error_summary(task, error), fontsize=7)


def _draw_legend(ax, task: str, ids: Sequence[int], names: Sequence[str] | None) -> None:
    """The colours of `ids` with their names (ignore in black)."""
    from matplotlib.patches import Patch

    handles = []
    for i in ids:
        if i == IGNORE_LABEL:
            handles.append(Patch(facecolor="black", edgecolor="grey", label="ignore"))
            continue
        name = names[i] if names is not None and i < len(names) else f"class {i}"
        handles.append(Patch(facecolor=PALETTE[i] / 255.0, edgecolor="grey", label=name))
    ax.legend(
        handles=handles,
        loc="upper center",
        title=f"{task} classes",
        fontsize=7,
        title_fontsize=8,
        ncol=_legend_columns(len(handles)),
        frameon=False,
    )


def figure_to_array(figure) -> np.ndarray:
    """uint8 `[H, W, 3]`: the figure rendered to PNG on a white background, and read back (so
    the PNG file and the TensorBoard image are the same picture)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=figure.dpi, bbox_inches="tight", facecolor="white")
    buffer.seek(0)
    with Image.open(buffer) as image:
        return np.asarray(image.convert("RGB"))
