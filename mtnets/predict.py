"""Predictions of a trained model on your own images (JPEG/PNG of any size): `predict.py`.

`Predictor` restores the model variables of a training run's checkpoint (read-only, never
locking the workdir, so it runs while training goes on), and `predict_files` runs it over a
folder or a glob and writes, per image, a titled picture of every task's prediction and, on
request, the predictions as arrays (`.npz`).

Each image is resized to the input size the model was trained at (config.dataset.image_size,
else the dataset's stored size), normalised as the config's pipeline does, and predicted in
batches sharded over all local devices; the predictions are resized back to the image's own
size by the rules of the evaluation (`mtnets.data.resize`: nearest for class scores, linear
for the others), so every output has the image's height and width.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from collections.abc import Iterator, Sequence

import jax
import numpy as np
from absl import logging
from PIL import Image, ImageOps, UnidentifiedImageError

from mtnets import visualize
from mtnets.data import normalization
from mtnets.data import resize as resize_lib
from mtnets.models import create_model, input_divisor
from mtnets.progress import Progress
from mtnets.train import checkpointing

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


# -------------------------------------------------------------------------------------------
# Inputs.
def find_files(images: str) -> list[str]:
    """The files of folder `images` (not recursive, hidden ones left out), or those matching
    the glob `images`, sorted; a FileNotFoundError naming it when there are none."""
    if os.path.isdir(images):
        names = sorted(n for n in os.listdir(images) if not n.startswith("."))
        paths = [os.path.join(images, n) for n in names]
        paths = [p for p in paths if os.path.isfile(p)]
        if not paths:
            raise FileNotFoundError(f"The folder {images} holds no file to predict on.")
        return paths
    paths = sorted(p for p in glob.glob(os.path.expanduser(images)) if os.path.isfile(p))
    if not paths:
        raise FileNotFoundError(
            f"--images={images} is neither a folder nor a pattern that matches any file."
        )
    return paths


def read_image(path: str) -> np.ndarray:
    """uint8 RGB `[H, W, 3]` of a JPEG or PNG (EXIF rotation applied); a ValueError naming the
    file if it is not an image PIL can read."""
    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise ValueError(f"{path} is not a readable image ({error}).") from None


# -------------------------------------------------------------------------------------------
# The model.
def model_input_size(config) -> tuple[int, int]:
    """(height, width) the model of `config` was trained at; a ValueError if the model cannot
    take it (its input divisor)."""
    size = config.dataset.image_size
    if not size:
        import tensorflow_datasets as tfds

        import mtnets.data.builders  # noqa: F401  (registers the builders)

        name = config.dataset.name
        if config.dataset.config:
            name = f"{name}/{config.dataset.config}"
        builder = tfds.builder(name, data_dir=config.dataset.data_dir)
        size = builder.info.features["image"].shape[:2]
        if None in size:
            raise ValueError(
                f"{name} has images of varying size: set config.dataset.image_size to the size "
                "the model was trained at."
            )
    height, width = (int(s) for s in size)
    divisor = input_divisor(config)
    if height % divisor or width % divisor:
        raise ValueError(
            f"config.model.name={config.model.name!r} needs an input height and width divisible "
            f"by {divisor}, but the input size is {height}x{width}."
        )
    return height, width


def _latest_step(workdir: str) -> int:
    directory = os.path.join(os.path.abspath(workdir), "checkpoints")
    steps = [int(n) for n in os.listdir(directory) if n.isdigit()]
    return max(steps)


@dataclasses.dataclass
class Predictor:
    """The model of `config` with the variables of checkpoint `step` (default: the latest) of
    `workdir`; `predict(images)` gives each image's raw predictions at its own size."""

    config: object
    workdir: str
    step: int | None = None
    batch_size: int | None = None

    def __post_init__(self):
        self.tasks = tuple(self.config.tasks)
        self.input_size = model_input_size(self.config)
        self.model = create_model(self.config)
        devices = jax.local_devices()
        self.mesh = jax.sharding.Mesh(np.array(devices), ("data",))
        size = self.batch_size or len(devices)
        self.batch_size = -(-size // len(devices)) * len(devices)  # a multiple of the devices
        abstract = self._abstract_variables()
        restored = checkpointing.restore_variables(self.workdir, self.step)
        self.step = self.step if self.step is not None else _latest_step(self.workdir)
        path = os.path.join(os.path.abspath(self.workdir), "checkpoints", str(self.step))
        # Another model's checkpoint: an error naming the checkpoint and what differs.
        checkpointing._check_metadata(path, restored, abstract)
        replicated = jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec())
        self.variables = jax.device_put(restored, replicated)
        batch = jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec("data"))
        tasks = self.tasks

        def apply(variables, images):
            outputs = self.model.apply(variables, images, train=False)
            return {t: outputs[t].astype(np.float32) for t in tasks}

        self._apply = jax.jit(apply, in_shardings=(replicated, batch))

    def _abstract_variables(self) -> dict:
        images = jax.ShapeDtypeStruct((1, *self.input_size, 3), np.float32)
        key = jax.random.key(0)
        variables = jax.eval_shape(
            lambda x: self.model.init({"params": key, "dropout": key}, x, train=False), images
        )
        return {"params": variables["params"], "batch_stats": variables.get("batch_stats", {})}

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """float32 `[h, w, 3]` model input: resized to the input size, scaled to [0, 1] and
        normalised as `config.dataset.image_normalization` says."""
        height, width = self.input_size
        resized = Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR)
        x = np.asarray(resized, np.float32) / 255.0
        return normalization.normalize(x, self.config.dataset.image_normalization)

    def predict(self, images: Sequence[np.ndarray]) -> list[dict[str, np.ndarray]]:
        """Per uint8 image `[H, W, 3]`: `{task: raw prediction [H, W, C]}` at its own size
        (class scores, depth in metres, unit normals, edge/saliency logits)."""
        out = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            batch = np.zeros((self.batch_size, *self.input_size, 3), np.float32)
            for i, image in enumerate(chunk):
                batch[i] = self.prepare(image)
            predictions = jax.device_get(self._apply(self.variables, batch))
            for i, image in enumerate(chunk):
                size = np.asarray([image.shape[:2]], np.int32)
                one = {t: predictions[t][i : i + 1] for t in self.tasks}
                back = resize_lib.resize_predictions(one, size, tuple(image.shape[:2]))
                out.append({t: np.asarray(back[t][0], np.float32) for t in self.tasks})
        return out


# -------------------------------------------------------------------------------------------
# Outputs.
def arrays_of(prediction: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What `--save_arrays` stores per task: class maps (uint8 ids), depth in metres (float32),
    unit normals (float32 `[H, W, 3]`), edge and saliency probabilities (float32)."""
    out = {}
    for task, raw in prediction.items():
        label = visualize.to_label(task, raw)
        if task in visualize.CLASSIFICATION_TASKS:
            out[task] = label.astype(np.uint8 if raw.shape[-1] <= 256 else np.int32)
        else:
            out[task] = np.asarray(label, np.float32)
    return out


def _output_names(paths: Sequence[str]) -> dict[str, str]:
    """path -> a unique file stem for its outputs (`photo`, `photo_2`, ... for equal names)."""
    names, used = {}, set()
    for path in paths:
        stem = os.path.splitext(os.path.basename(path))[0]
        name, n = stem, 1
        while name in used:
            n += 1
            name = f"{stem}_{n}"
        used.add(name)
        names[path] = name
    return names


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def predict_files(
    config,
    workdir: str,
    images: str,
    out_dir: str,
    *,
    step: int | None = None,
    save_arrays: bool = False,
    batch_size: int | None = None,
) -> dict[str, list]:
    """Predicts every image of `images` (a folder or a glob) with checkpoint `step` of
    `workdir` and writes `<out_dir>/<name>.png` (input and each task's prediction, titled) and,
    with `save_arrays`, `<out_dir>/<name>.npz` (`arrays_of`).

    Files that are not readable images are skipped with a warning and listed at the end.
    Returns `{"written": [png paths], "skipped": [(path, reason)]}`.
    """
    from mtnets.data.builders.class_names import class_names

    paths = find_files(images)
    predictor = Predictor(config, workdir, step, batch_size)
    names = class_names(config.dataset.name)
    logging.info(
        "Predicting %s for %d file(s) with step %d of %s, at input size %dx%d.",
        "+".join(predictor.tasks),
        len(paths),
        predictor.step,
        workdir,
        *predictor.input_size,
    )
    os.makedirs(out_dir, exist_ok=True)
    outputs = _output_names(paths)
    progress = Progress("Prediction", len(paths), unit="files", every_secs=30).start()
    written, skipped, done = [], [], 0
    for chunk in _chunks(paths, predictor.batch_size):
        readable = []
        for path in chunk:
            try:
                readable.append((path, read_image(path)))
            except ValueError as error:
                logging.warning("Skipped: %s", error)
                skipped.append((path, str(error)))
        predictions = predictor.predict([image for _, image in readable])
        for (path, image), prediction in zip(readable, predictions, strict=True):
            written.append(_write(out_dir, outputs[path], image, prediction, names, save_arrays))
        done += len(chunk)
        progress(done)
    if skipped:
        logging.warning(
            "%d file(s) were not readable images and were skipped: %s",
            len(skipped),
            ", ".join(p for p, _ in skipped),
        )
    if not written:
        raise ValueError(f"None of the {len(paths)} file(s) of {images} is a readable image.")
    logging.info("Wrote %d picture(s) to %s.", len(written), out_dir)
    return {"written": written, "skipped": skipped}


def _write(out_dir, name, image, prediction, names, save_arrays) -> str:
    tasks = list(prediction)
    figure = visualize.prediction_figure(
        image[None],
        None,
        {t: v[None] for t, v in prediction.items()},
        tasks,
        class_names=names,
        tile_inches=3.0,
    )
    path = os.path.join(out_dir, f"{name}.png")
    visualize.save_png(path, visualize.figure_to_array(figure))
    if save_arrays:
        np.savez_compressed(os.path.join(out_dir, f"{name}.npz"), **arrays_of(prediction))
    return path
