"""The input pipeline on the tiny synthetic dataset: conventions, sharding, padding, resume."""

import itertools

import jax
import numpy as np
import pytest

from configs.synthetic.tiny import get_config
from mtnets import sharding
from mtnets.data.pipeline import InputPipeline


@pytest.fixture(scope="module")
def pipeline(tfds_data_dir):
    config = get_config()
    config.dataset.data_dir = tfds_data_dir
    return InputPipeline(config, sharding.create_mesh(-1))


def test_train_batches_follow_the_task_conventions(pipeline):
    batch = next(pipeline.train_batches())
    b, (h, w, _) = 8, pipeline.image_shape
    expected = {
        "image": ((b, h, w, 3), np.float32),
        "mask": ((b,), np.bool_),
        "semseg": ((b, h, w), np.int32),
        "depth": ((b, h, w), np.float32),
        "normals": ((b, h, w, 3), np.float32),
        "edge": ((b, h, w), np.int32),
        "sal": ((b, h, w), np.int32),
        "human_parts": ((b, h, w), np.int32),
    }
    assert {k: (v.shape, v.dtype) for k, v in batch.items()} == expected
    assert np.all(np.asarray(batch["mask"]))
    semseg = np.asarray(batch["semseg"])
    assert set(np.unique(semseg)) <= set(range(7)) | {255}
    depth, normals = np.asarray(batch["depth"]), np.asarray(batch["normals"])
    assert depth.min() >= 0 and depth.max() > 0
    valid = np.any(normals != 0, axis=-1)
    np.testing.assert_allclose(np.linalg.norm(normals[valid], axis=-1), 1.0, atol=1e-4)
    # Normalized with ImageNet statistics: roughly zero-centred, not in [0, 255].
    assert -3 < float(np.mean(np.asarray(batch["image"]))) < 3


def test_global_batch_is_sharded_over_data(pipeline):
    batch = next(pipeline.train_batches())
    for value in jax.tree.leaves(batch):
        assert value.sharding.spec == jax.sharding.PartitionSpec("data")
        assert len(value.addressable_shards) == jax.device_count()


def test_train_stream_resumes_at_any_step(pipeline):
    """Batches from step k on equal those an uninterrupted stream gives after k batches,
    across an epoch boundary (24 training examples = 3 batches per epoch)."""
    straight = list(itertools.islice(pipeline.train_dataset(0).as_numpy_iterator(), 6))
    for start in (1, 3, 4):
        resumed = list(itertools.islice(pipeline.train_dataset(start).as_numpy_iterator(), 2))
        for a, b in zip(resumed, straight[start : start + 2], strict=True):
            for key in a:
                np.testing.assert_array_equal(a[key], b[key], err_msg=f"start {start} {key}")


def test_processes_feed_their_rows_of_the_same_global_batches(pipeline, monkeypatch):
    """Whatever rows a process holds, it gets exactly those rows of the global stream (so 2
    processes build the batches 1 process builds), from any start step."""
    whole = list(itertools.islice(pipeline.train_dataset(2).as_numpy_iterator(), 3))
    for rows in (range(0, 4), range(4, 8), range(2, 6)):
        monkeypatch.setattr(pipeline, "rows", rows)
        part = list(itertools.islice(pipeline.train_dataset(2).as_numpy_iterator(), 3))
        for a, b in zip(part, whole, strict=True):
            for key in a:
                np.testing.assert_array_equal(a[key], b[key][rows.start : rows.stop], key)


def test_epochs_are_reshuffled_and_augmented_differently(pipeline):
    batches = list(itertools.islice(pipeline.train_dataset(0).as_numpy_iterator(), 6))
    first = np.concatenate([b["image"] for b in batches[:3]])
    second = np.concatenate([b["image"] for b in batches[3:]])
    assert not np.array_equal(first, second)


def test_eval_pass_covers_the_split_once_with_padding(tfds_data_dir):
    config = get_config("batch_size=24")  # 8 validation examples: 16 padding rows
    config.dataset.data_dir = tfds_data_dir
    pipeline = InputPipeline(config, sharding.create_mesh(-1))
    batches = list(pipeline.eval_dataset().as_numpy_iterator())
    masks = np.concatenate([b["mask"] for b in batches])
    assert len(masks) == 24 and masks.sum() == pipeline.num_examples("validation") == 8
    images = np.concatenate([b["image"] for b in batches])
    assert np.all(images[~masks] == 0) and np.all(np.any(images[masks] != 0, axis=(1, 2, 3)))
    ids = np.concatenate([b["semseg"] for b in batches])[masks]
    assert len({arr.tobytes() for arr in ids}) == 8  # every example once


def test_an_unknown_dataset_is_a_clear_error(tfds_data_dir):
    config = get_config()
    config.dataset.data_dir = tfds_data_dir
    config.dataset.name = "nyud_mtt"
    with pytest.raises(ValueError, match="nyud_mtt"):
        InputPipeline(config, sharding.create_mesh(-1))


def test_denormalized_inputs_are_the_stored_images(pipeline):
    """The ImageNet-normalised inputs of the tiny config, de-normalised as the pictures do,
    are the stored uint8 images / 255 (to float32 rounding, far within 1/255)."""
    from mtnets.train.evaluate import denormalize

    assert pipeline.config.dataset.image_normalization == "imagenet"
    batch = next(pipeline.eval_dataset().as_numpy_iterator())
    split = pipeline.config.dataset.eval_split
    stored = pipeline.builder.as_dataset(split=split, shuffle_files=False).take(len(batch["mask"]))
    stored = np.stack([ex["image"] for ex in stored.as_numpy_iterator()])
    shown = denormalize(batch["image"], "imagenet")
    assert not np.allclose(batch["image"], stored / 255.0, atol=0.1)  # normalised indeed
    np.testing.assert_allclose(shown, stored / 255.0, atol=1e-5)
    np.testing.assert_array_equal(np.round(shown * 255.0), stored)
