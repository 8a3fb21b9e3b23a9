"""tf.data input pipelines that feed globally sharded batches to the train and eval steps.

Each process builds the rows of every global batch that its devices hold, and the pieces become
one global `jax.Array` per field, sharded over the mesh's `data` axis
(`jax.make_array_from_process_local_data`).

Batches are dicts: `image` float32 `[B, H, W, 3]` (normalized), one label per task in the
conventions of `mtnets.tasks`, and `mask` bool `[B]` that is False on padding examples (only
evaluation pads, so that every process runs the same number of equal batches).

The training stream is a pure function of (seed, step): epoch `e` visits the examples of the
whole split in an order shuffled with a seed derived from `e`, and the augmentation of the
`i`-th example of epoch `e` draws from a seed derived from (e, i). Every process walks that same
global stream and keeps only its rows of each global batch (it reads every record but decodes
and augments only its own), so the global batches do not depend on how many processes share
them: 2 processes of 2 devices train exactly as 1 process of 4. Starting at step `s` rebuilds
the stream an uninterrupted run would have seen from step `s` on, by skipping less than one
epoch of undecoded records; no iterator state needs to be saved with a checkpoint.

Evaluation reads a disjoint part of the split per process (`tfds.split_for_jax_process`): the
metrics are sums over examples, so they do not depend on the order either.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator

import jax
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from jax.experimental import multihost_utils

import mtnets.data.builders  # noqa: F401  (registers the builders with TFDS)
from mtnets import sharding
from mtnets.data import normalization, ops
from mtnets.tasks import task_specs


class InputPipeline:
    """The train and eval streams of one experiment on one process."""

    def __init__(self, config, mesh: jax.sharding.Mesh):
        self.config = config
        self.tasks = tuple(dict.fromkeys((*config.tasks, *config.aux_tasks)))
        self.specs = task_specs(self.tasks, config.dataset.name)  # name -> Task
        self.rows = sharding.process_rows(config.batch_size, mesh)  # this process's rows
        self.sharding = sharding.batch_sharding(mesh)
        self.builder = _prepared_builder(config.dataset)
        # config.dataset.augmentation: the recipe of the training transform and the matching
        # evaluation transform (`mtnets.data.ops`).
        self.recipe = ops.get_recipe(config.dataset.augmentation)
        features = self.builder.info.features
        self._jpeg_image = getattr(features["image"], "encoding_format", None) == "jpeg"
        self._uint8_image = features["image"].np_dtype == np.uint8
        size = config.dataset.image_size
        self.input_size = tuple(size) if size else tuple(features["image"].shape[:2])
        if None in self.input_size:
            raise ValueError(
                f"Dataset {self.builder.info.full_name} has images of varying size: set "
                "config.dataset.image_size, e.g. (512, 512) for pascal_context_mt."
            )
        stored = tuple(features["image"].shape[:2])
        if not self.recipe.resizes and self.input_size != stored:
            resizing = [name for name, recipe in ops.RECIPES.items() if recipe.resizes]
            raise ValueError(
                f"config.dataset.image_size {self.input_size} differs from the stored size "
                f"{stored}; only augmentation {' or '.join(map(repr, resizing))} resizes "
                "(FixedResize)."
            )
        self._epoch_size = None  # examples_per_epoch(), counted on first use
        canvas = config.dataset.eval_canvas
        self.eval_canvas = tuple(canvas) if canvas else None
        context = ops.RecipeContext(self.input_size, config.dataset)
        self._train_steps = ops.parse(self.recipe.train(context))
        evaluation = self.recipe.eval if self.eval_canvas is None else self.recipe.canvas_eval
        self._eval_steps = ops.parse(evaluation(context))
        missing = [t.field for t in self.specs.values() if t.field not in features]
        if missing:
            raise ValueError(
                f"Dataset {self.builder.info.full_name} has no labels for task(s) {missing}."
            )

    @property
    def local_batch_size(self) -> int:
        """This process's share of each global batch."""
        return len(self.rows)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """The model's input `[H, W, 3]`: config.dataset.image_size, else the stored size."""
        return (*self.input_size, 3)

    def num_examples(self, split: str) -> int:
        return self.builder.info.splits[split].num_examples

    def examples_per_epoch(self) -> int:
        """The examples one training epoch visits: the train split, or, when human parts is the
        only task, its images that show a person (counted once, by reading the split)."""
        if self._epoch_size is None:
            examples, size = self._train_examples()
            self._epoch_size = size if size is not None else _count(examples)
        return self._epoch_size

    # ---------------------------------------------------------------------------------------
    # Training.
    def train_batches(self, start_step: int = 0) -> Iterator[dict[str, jax.Array]]:
        """Global batches for steps `start_step + 1`, `start_step + 2`, ... (endless)."""
        return self._global(self.train_dataset(start_step))

    def train_dataset(self, start_step: int = 0) -> tf.data.Dataset:
        """This process's rows of the global batches from step `start_step + 1` on."""
        examples, _ = self._train_examples()
        size = self.examples_per_epoch()
        buffer = max(1, min(self.config.dataset.shuffle_buffer, size))
        seed = tf.constant([self.config.seed, 0], tf.int64)

        def epoch(e):
            epoch_seed = tf.random.experimental.stateless_fold_in(seed, e)
            order = examples.shuffle(buffer, seed=epoch_seed[0], reshuffle_each_iteration=False)
            return order.enumerate().map(lambda i, ex: (e, i, ex))

        global_batch, rows = self.config.batch_size, self.rows

        def in_my_rows(n, _):
            return (n % global_batch >= rows.start) & (n % global_batch < rows.stop)

        def prepare(_, item):
            e, i, example = item
            example_seed = tf.random.experimental.stateless_fold_in(
                tf.random.experimental.stateless_fold_in(seed, e), i
            )
            return self._train_example(example, example_seed)

        first_epoch, offset = divmod(start_step * global_batch, size)
        stream = tf.data.Dataset.range(first_epoch, 2**62).flat_map(epoch).skip(offset)
        stream = stream.enumerate().filter(in_my_rows)
        stream = stream.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        stream = stream.batch(self.local_batch_size, drop_remainder=True).prefetch(2)
        # Without the autotuner: with it, dropping this endless iterator at the end of a run
        # waited up to half a minute in about half of the measured runs (TensorFlow 2.x,
        # `RootDataset::Iterator` destructor), and the stream is far faster than any train
        # step here (a 64x96 epoch of 2000 examples in 1 s on 2 cores), so it gains nothing.
        options = tf.data.Options()
        options.autotune.enabled = False
        return stream.with_options(options)

    def _train_examples(self) -> tuple[tf.data.Dataset, int | None]:
        """The examples of a training epoch, and their number when it is known without
        reading them (None when a filter decides)."""
        split = self.config.dataset.train_split
        examples = self._read(split)
        only = next(iter(self.specs.values()))
        if len(self.specs) == 1 and only.unlabelled_when_empty:
            # As the reference when human parts is the only task: train on the images that
            # have parts only (`MTL:data/pascal_context.py`); evaluation ignores the others.
            # The stored maps of the other images are all ignore.
            return examples.filter(
                lambda ex: tf.reduce_any(self._decoded(ex, only.field) != only.ignore_value)
            ), None
        return examples, self.num_examples(split)

    def _train_example(self, example, seed):
        fields = ops.run(self._train_steps, self._fields(self._decode(example)), seed)
        return self._finish(self._fixed_size(fields), tf.constant(True))

    # ---------------------------------------------------------------------------------------
    # Evaluation.
    def eval_batches(self) -> Iterator[dict[str, jax.Array]]:
        """One pass over the eval split in global batches; the last ones padded (mask False)."""
        return self._global(self.eval_dataset())

    def eval_dataset(self) -> tf.data.Dataset:
        name = self.config.dataset.eval_split
        split = tfds.split_for_jax_process(name, drop_remainder=False)
        per_process = math.ceil(self.num_examples(name) / jax.process_count())
        num_batches = math.ceil(per_process / self.local_batch_size)
        examples = self._read(split)
        examples = examples.map(self._eval_example, num_parallel_calls=tf.data.AUTOTUNE)
        padding = tf.data.Dataset.from_tensors(
            {k: tf.zeros(s.shape, s.dtype) for k, s in examples.element_spec.items()}
        ).repeat()
        examples = examples.concatenate(padding).take(num_batches * self.local_batch_size)
        return examples.batch(self.local_batch_size).prefetch(2)

    def _eval_example(self, example):
        """The reference's test transform (the recipe's `eval`). With `eval_canvas` (PASCAL),
        the recipe's `canvas_eval` resizes the image to the input size while the labels keep
        their original size, padded here to the canvas (with each task's `fill`), with
        `orig_size` `[2]` int32 = (h, w); the eval step resizes its predictions back to that
        size (`mtnets.data.resize`)."""
        fields = self._fields(self._decode(example))
        orig_size = tf.shape(fields["image"])[:2]
        fields = ops.run(self._eval_steps, fields)
        if self.eval_canvas is None:
            return self._finish(self._fixed_size(fields), tf.constant(True))
        image = tf.ensure_shape(fields["image"], (*self.input_size, 3))
        fields = {**fields, "image": image}
        out = self._finish(self._pad_to_canvas(fields, orig_size, example["id"]), True)
        out["orig_size"] = tf.cast(orig_size, tf.int32)
        return out

    def _pad_to_canvas(self, fields: dict, orig_size, example_id) -> dict:
        canvas_h, canvas_w = self.eval_canvas
        check = tf.debugging.Assert(
            tf.reduce_all(orig_size <= tf.constant([canvas_h, canvas_w])),
            [
                f"An image is larger than config.dataset.eval_canvas {self.eval_canvas}:",
                example_id,
                orig_size,
            ],
        )
        out = {"image": fields["image"]}
        with tf.control_dependencies([check]):
            for key, value in fields.items():
                if key == "image":
                    continue
                fill = tf.cast(self.specs[key].fill, value.dtype)
                pad = [[0, canvas_h - orig_size[0]], [0, canvas_w - orig_size[1]], [0, 0]]
                value = tf.pad(value, pad, constant_values=fill)
                out[key] = tf.ensure_shape(value, (canvas_h, canvas_w, value.shape[-1]))
        return out

    # ---------------------------------------------------------------------------------------
    def _read(self, split) -> tf.data.Dataset:
        """The stored examples, undecoded but for their id: `_fields` decodes what it uses, so
        records that another process keeps, and unused labels, cost no decoding."""
        features = self.builder.info.features
        decoders = {key: tfds.decode.SkipDecoding() for key in features if key != "id"}
        return self.builder.as_dataset(split=split, shuffle_files=False, decoders=decoders)

    def _decode(self, example) -> dict:
        """The id, image and the fields of this experiment's labels of a `_read` example,
        decoded (each field once, however many tasks read it)."""
        keys = dict.fromkeys(("image", *(t.field for t in self.specs.values())))
        decoded = {key: self._decoded(example, key) for key in keys}
        return {"id": example["id"], **decoded} if "id" in example else decoded

    def _decoded(self, example, key: str) -> tf.Tensor:
        """Field `key` of a `_read` example, decoded. JPEGs are decoded with libjpeg's accurate
        integer DCT, the one PIL uses, so the pixels are those the reference reads."""
        if key == "image" and self._jpeg_image:
            return tf.io.decode_jpeg(example[key], channels=3, dct_method="INTEGER_ACCURATE")
        return self.builder.info.features[key].decode_example(example[key])

    def _fields(self, example) -> dict:
        """The image and this experiment's labels of a decoded example, each `[H, W, C]`, as
        each task decodes its stored field (`Task.decode`)."""
        fields = {"image": example["image"]}
        for name, task in self.specs.items():
            fields[name] = task.decode(example[task.field])
        return self._checked(fields, example.get("id", tf.constant("(no id)")))

    def _checked(self, fields: dict, example_id) -> dict:
        """`fields`, once every label has the image's height and width and values the losses
        can take; otherwise an InvalidArgumentError that names the task and the example."""
        image_size = tf.shape(fields["image"])[:2]
        checks = []
        for task, spec in self.specs.items():
            value = fields[task]
            same_size = tf.reduce_all(tf.shape(value)[:2] == image_size)
            checks.append(
                tf.debugging.Assert(
                    same_size,
                    [
                        "Example",
                        example_id,
                        f"has a {task} label of size",
                        tf.shape(value)[:2],
                        "but an image of size",
                        image_size,
                    ],
                )
            )
            allowed, words = spec.check_values(value)
            checks.append(
                tf.debugging.Assert(
                    allowed,
                    [
                        "Example",
                        example_id,
                        f"has {task} values outside {words}",
                        tf.reduce_min(value),
                        tf.reduce_max(value),
                    ],
                    summarize=2,
                )
            )
        with tf.control_dependencies(checks):
            return {k: tf.identity(v) for k, v in fields.items()}

    def _fixed_size(self, fields: dict) -> dict:
        """Fields at the input size; a clear error if a transform left another size."""
        h, w = self.input_size
        return {k: tf.ensure_shape(v, (h, w, v.shape[-1])) for k, v in fields.items()}

    def _finish(self, fields: dict, valid) -> dict:
        """`[H, W, C]` fields -> the batch conventions of `mtnets.tasks`."""
        image = tf.cast(fields["image"], tf.float32)
        if self._uint8_image:
            image = image / 255.0
        image = normalization.normalize(image, self.config.dataset.image_normalization)
        out = {"image": image, "mask": tf.convert_to_tensor(valid)}
        for name, task in self.specs.items():
            out[name] = task.to_batch(fields[name])
        return out

    def _global(self, dataset: tf.data.Dataset) -> Iterator[dict[str, jax.Array]]:
        local_batches = dataset.as_numpy_iterator()
        while True:
            try:
                local = next(local_batches)
            except StopIteration:
                return
            except tf.errors.InvalidArgumentError as error:
                name = self.builder.info.full_name
                raise ValueError(f"Bad data in {name}: {_assertion_text(error)}") from None
            yield jax.tree.map(
                lambda x: jax.make_array_from_process_local_data(self.sharding, np.asarray(x)),
                local,
            )


def _assertion_text(error: tf.errors.InvalidArgumentError) -> str:
    """The words of a failed `tf.debugging.Assert`, without TensorFlow's graph decorations."""
    message = error.message
    if "assertion failed: " not in message:
        return message
    failed = message.split("assertion failed: ", 1)[1].split("\n", 1)[0]
    return " ".join(re.findall(r"\[([^\[\]]*)\]", failed)).replace("( ", "(").replace(" )", ")")


def _count(dataset: tf.data.Dataset) -> int:
    count = int(dataset.reduce(np.int64(0), lambda n, _: n + 1).numpy())
    if count == 0:
        raise ValueError("No training example has labels for the configured tasks.")
    return count


def _prepared_builder(dataset_config) -> tfds.core.DatasetBuilder:
    """The TFDS builder, generated on first use (process 0 first; never downloads)."""
    name = dataset_config.name
    if dataset_config.config:
        name = f"{name}/{dataset_config.config}"
    try:
        builder = tfds.builder(name, data_dir=dataset_config.data_dir)
    except tfds.core.registered.DatasetNotFoundError as error:
        raise ValueError(f"Unknown config.dataset.name {dataset_config.name!r}: {error}") from None
    # Never downloads; the real datasets read their archive from the manual dir
    # (config.dataset.manual_dir, default <data_dir>/downloads/manual).
    download_config = tfds.download.DownloadConfig(
        try_download_gcs=False, manual_dir=dataset_config.manual_dir
    )
    if jax.process_index() == 0:
        builder.download_and_prepare(download_config=download_config)
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(f"prepared {name}")
        builder.download_and_prepare(download_config=download_config)
    return builder
