"""tf.data input pipelines that feed globally sharded batches to the train and eval steps.

Each process reads its own part of a split (`tfds.split_for_jax_process`), builds batches of its
share of the global batch, and the pieces become one global `jax.Array` per field, sharded over
the mesh's `data` axis (`jax.make_array_from_process_local_data`).

Batches are dicts: `image` float32 `[B, H, W, 3]` (normalized), one label per task in the
conventions of `mtnets.tasks`, and `mask` bool `[B]` that is False on padding examples (only
evaluation pads, so that every process runs the same number of equal batches).

The training stream is a pure function of (seed, process, step): epoch `e` visits the examples
in an order shuffled with a seed derived from `e`, and the augmentation of the `i`-th example of
epoch `e` draws from a seed derived from (e, i). Starting at step `s` therefore rebuilds the
exact stream an uninterrupted run would have seen from step `s` on, by skipping less than one
epoch; no iterator state needs to be saved with a checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import jax
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from jax.experimental import multihost_utils

import mtnets.data.builders  # noqa: F401  (registers the builders with TFDS)
from mtnets import sharding
from mtnets.data import augment

LABEL_MAPS = ("semseg", "human_parts", "edge", "sal")  # stored as [H, W, 1] integer images


class InputPipeline:
    """The train and eval streams of one experiment on one process."""

    def __init__(self, config, mesh: jax.sharding.Mesh):
        self.config = config
        self.tasks = tuple(dict.fromkeys((*config.tasks, *config.get("aux_tasks", ()))))
        self.local_batch_size = sharding.local_batch_size(config.batch_size, mesh)
        self.sharding = sharding.batch_sharding(mesh)
        self.builder = _prepared_builder(config.dataset)
        missing = [t for t in self.tasks if t not in self.builder.info.features]
        if missing:
            raise ValueError(
                f"Dataset {self.builder.info.full_name} has no labels for task(s) {missing}."
            )

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.builder.info.features["image"].shape)

    def num_examples(self, split: str) -> int:
        return self.builder.info.splits[split].num_examples

    # ---------------------------------------------------------------------------------------
    # Training.
    def train_batches(self, start_step: int = 0) -> Iterator[dict[str, jax.Array]]:
        """Global batches for steps `start_step + 1`, `start_step + 2`, ... (endless)."""
        return self._global(self.train_dataset(start_step))

    def train_dataset(self, start_step: int = 0) -> tf.data.Dataset:
        """This process's batches (NumPy-convertible) from step `start_step + 1` on."""
        split = tfds.split_for_jax_process(self.config.dataset.train_split, drop_remainder=True)
        examples = self.builder.as_dataset(split=split, shuffle_files=False)
        size = self.num_examples(split)
        buffer = max(1, min(self.config.dataset.shuffle_buffer, size))
        seed = tf.constant([self.config.seed, jax.process_index()], tf.int64)

        def epoch(e):
            epoch_seed = tf.random.experimental.stateless_fold_in(seed, e)
            order = examples.shuffle(buffer, seed=epoch_seed[0], reshuffle_each_iteration=False)
            return order.enumerate().map(lambda i, ex: (e, i, ex))

        def prepare(e, i, example):
            example_seed = tf.random.experimental.stateless_fold_in(
                tf.random.experimental.stateless_fold_in(seed, e), i
            )
            return self._train_example(example, example_seed)

        first_epoch, offset = divmod(start_step * self.local_batch_size, size)
        stream = tf.data.Dataset.range(first_epoch, 2**62).flat_map(epoch).skip(offset)
        stream = stream.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return stream.batch(self.local_batch_size, drop_remainder=True).prefetch(2)

    def _train_example(self, example, seed):
        fields = self._fields(example)
        scale_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        cfg = self.config.dataset
        if cfg.scale_max > cfg.scale_min or cfg.scale_min != 1.0:
            fields = augment.random_scale_crop(fields, scale_seed, cfg.scale_min, cfg.scale_max)
        if cfg.flip:
            fields = augment.random_flip(fields, flip_seed)
        return self._finish(fields, tf.constant(True))

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
        examples = self.builder.as_dataset(split=split, shuffle_files=False)
        examples = examples.map(
            lambda ex: self._finish(self._fields(ex), tf.constant(True)),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        padding = tf.data.Dataset.from_tensors(
            {k: tf.zeros(s.shape, s.dtype) for k, s in examples.element_spec.items()}
        ).repeat()
        examples = examples.concatenate(padding).take(num_batches * self.local_batch_size)
        return examples.batch(self.local_batch_size).prefetch(2)

    # ---------------------------------------------------------------------------------------
    def _fields(self, example) -> dict:
        """The image and this experiment's labels, each `[H, W, C]`."""
        fields = {"image": example["image"]}
        for task in self.tasks:
            value = example[task]
            fields[task] = value[..., None] if task == "depth" else value
        return fields

    def _finish(self, fields: dict, valid) -> dict:
        """`[H, W, C]` fields -> the batch conventions of `mtnets.tasks`."""
        out = {"image": augment.normalize_image(fields["image"]), "mask": valid}
        for task in self.tasks:
            value = fields[task]
            if task in LABEL_MAPS:
                value = tf.cast(value[..., 0], tf.int32)
            elif task == "depth":
                value = value[..., 0]
            out[task] = value
        return out

    def _global(self, dataset: tf.data.Dataset) -> Iterator[dict[str, jax.Array]]:
        for local in dataset.as_numpy_iterator():
            yield jax.tree.map(
                lambda x: jax.make_array_from_process_local_data(self.sharding, np.asarray(x)),
                local,
            )


def _prepared_builder(dataset_config) -> tfds.core.DatasetBuilder:
    """The TFDS builder, generated on first use (process 0 first; never downloads)."""
    name = dataset_config.name
    if dataset_config.get("config"):
        name = f"{name}/{dataset_config.config}"
    try:
        builder = tfds.builder(name, data_dir=dataset_config.get("data_dir"))
    except tfds.core.registered.DatasetNotFoundError as error:
        raise ValueError(f"Unknown config.dataset.name {dataset_config.name!r}: {error}") from None
    if jax.process_index() == 0:
        builder.download_and_prepare(download_config=_NO_DOWNLOADS)
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(f"prepared {name}")
        builder.download_and_prepare(download_config=_NO_DOWNLOADS)
    return builder


_NO_DOWNLOADS = tfds.download.DownloadConfig(try_download_gcs=False)
