"""`pascal_context_mt` from a small fake PASCAL_MT.tgz in the real layout (variable sizes,
Pascal-Part `.mat` structs, Context `LabelMap`s): fields, mappings, splits, errors, and the
pipeline's PASCAL transforms with original-size evaluation labels."""

import importlib
import os
import shutil

import numpy as np
import pytest
import scipy.ndimage
import tensorflow as tf
import tensorflow_datasets as tfds

from configs.default import get_config
from mtnets import config_utils, sharding
from mtnets.data import pipeline as pipeline_lib
from mtnets.data.builders import pascal_context_mt
from tests.data import fake_archives

IDS = fake_archives.PASCAL_IDS


def make_builder(data_dir):
    return pascal_context_mt.PascalContextMt(data_dir=data_dir)


def prepare(builder, manual_dir):
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir))
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("pascal")
    written = fake_archives.write_pascal_mt(str(root / "src"))
    os.makedirs(root / "manual")
    fake_archives.tar_gz(str(root / "src" / "PASCAL_MT"), str(root / "manual" / "PASCAL_MT.tgz"))
    builder = make_builder(str(root / "data"))
    prepare(builder, root / "manual")
    return builder, written, root


def examples(builder, split):
    ds = builder.as_dataset(split=split, decoders={"image": tfds.decode.SkipDecoding()})
    return {ex["id"].decode(): ex for ex in tfds.as_numpy(ds)}


def test_splits(built):
    builder, _, _ = built
    assert set(examples(builder, "train")) == set(IDS["train"])
    assert set(examples(builder, "validation")) == set(IDS["val"])


def test_every_field_is_decoded_with_the_reference_mappings(built):
    builder, written, _ = built
    valid_classes = {440, 158, 284}  # of the fake LabelMaps, those shared with NYU
    for split in ("train", "validation"):
        for example_id, ex in examples(builder, split).items():
            ref = written[example_id]
            image = tf.io.decode_jpeg(ex["image"], channels=3, dct_method="INTEGER_ACCURATE")
            np.testing.assert_array_equal(image.numpy(), ref["image"])
            np.testing.assert_array_equal(ex["semseg"][..., 0], ref["seg"])
            # AddIgnoreRegions: no part pixel -> all 255.
            parts = ref["parts"] if ref["parts"].any() else np.full_like(ref["parts"], 255)
            np.testing.assert_array_equal(ex["human_parts"][..., 0], parts)
            np.testing.assert_array_equal(ex["sal"][..., 0], ref["sal"] / 255.0 > 0.5)
            valid = np.isin(ref["label_map"], list(valid_classes))
            np.testing.assert_array_equal(ex["normals"][valid], ref["codes"][valid])
            np.testing.assert_array_equal(ex["normals"][~valid], 0)
            # Edges: the thinned set of |Laplacian| > 0 pixels (3x3 cross, mirrored border).
            lap = scipy.ndimage.convolve(
                ref["label_map"].astype(float), [[0, 1, 0], [1, -4, 1], [0, 1, 0]], mode="mirror"
            )
            edge = ex["edge"][..., 0].astype(bool)
            assert edge.any() and not np.any(edge & (lap == 0))


def test_human_parts_follow_the_reference_grouping(built):
    builder, written, _ = built
    ex = examples(builder, "train")["2008_000002"]  # two people with parts
    parts = ex["human_parts"][..., 0]
    assert set(np.unique(parts)) == {0, 1, 2, 3, 4, 5, 6}
    assert parts[2, 5] == 1  # hair over head: both map to 1 (head)
    assert parts[11, 8] == 2  # neck of the second person, drawn after the torso of the first
    no_person = examples(builder, "train")["2008_000007"]
    assert np.all(no_person["human_parts"] == 255)


def test_thin_reproduces_the_documented_guo_hall_example():
    """skimage.morphology.thin's documented example (a 5x3 block with a stray pixel)."""
    square = np.zeros((7, 7), bool)
    square[1:-1, 2:-2] = True
    square[0, 1] = True
    expected = np.zeros((7, 7), bool)
    expected[0, 1] = expected[1, 2] = True
    expected[2:5, 3] = True
    np.testing.assert_array_equal(pascal_context_mt.thin(square), expected)
    line = np.zeros((5, 9), bool)
    line[2, 1:8] = True  # already one pixel wide: kept (its end points too)
    np.testing.assert_array_equal(pascal_context_mt.thin(line), line)


def test_missing_semseg_and_corrupt_mat_are_named(tmp_path):
    fake_archives.write_pascal_mt(str(tmp_path / "m1"))
    os.remove(tmp_path / "m1" / "PASCAL_MT" / "semseg" / "VOC12" / "2008_000015.png")
    with pytest.raises(FileNotFoundError, match="semseg/VOC12/2008_000015.png"):
        prepare(make_builder(str(tmp_path / "d1")), tmp_path / "m1")
    fake_archives.write_pascal_mt(str(tmp_path / "m2"))
    (tmp_path / "m2" / "PASCAL_MT" / "human_parts" / "2008_000003.mat").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="human_parts/2008_000003.mat"):
        prepare(make_builder(str(tmp_path / "d2")), tmp_path / "m2")


def test_a_missing_archive_says_where_to_put_it(tmp_path):
    (tmp_path / "manual").mkdir()
    (tmp_path / "manual" / "x").write_text("x")
    with pytest.raises(FileNotFoundError, match="PASCAL_MT.tgz"):
        prepare(make_builder(str(tmp_path / "data")), tmp_path / "manual")


def test_an_extracted_folder_is_accepted(built, tmp_path):
    _, _, root = built
    shutil.copytree(root / "src" / "PASCAL_MT", tmp_path / "manual" / "PASCAL_MT")
    builder = make_builder(str(tmp_path / "data"))
    prepare(builder, tmp_path / "manual")
    assert set(examples(builder, "validation")) == set(IDS["val"])


# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pascal_pipeline(built):
    builder, written, _ = built
    config = get_config()
    config.dataset.name = "pascal_context_mt"
    config.dataset.augmentation = "pascal"
    config.dataset.image_size = (32, 32)
    config.dataset.eval_canvas = (32, 32)
    config.dataset.shuffle_buffer = 4
    config.tasks = ("semseg", "human_parts", "sal", "normals", "edge")
    config.batch_size = 8
    original = pipeline_lib._prepared_builder
    pipeline_lib._prepared_builder = lambda _: builder
    try:
        yield pipeline_lib.InputPipeline(config, sharding.create_mesh(-1)), written
    finally:
        pipeline_lib._prepared_builder = original


def test_eval_labels_keep_the_original_size_in_a_padded_canvas(pascal_pipeline):
    pipeline, written = pascal_pipeline
    assert pipeline.image_shape == (32, 32, 3)
    batch = next(iter(pipeline.eval_dataset().as_numpy_iterator()))
    assert batch["image"].shape == (8, 32, 32, 3) and batch["semseg"].shape == (8, 32, 32)
    for row in range(2):
        h, w = batch["orig_size"][row]
        ref = next(
            r
            for r in written.values()
            if r["seg"].shape == (h, w) and np.array_equal(r["seg"], batch["semseg"][row, :h, :w])
        )
        assert np.all(batch["semseg"][row, h:] == 255) and np.all(
            batch["semseg"][row, :, w:] == 255
        )
        parts = ref["parts"] if ref["parts"].any() else np.full_like(ref["parts"], 255)
        np.testing.assert_array_equal(batch["human_parts"][row, :h, :w], parts)
        normals = batch["normals"][row, :h, :w]
        valid = np.isin(ref["label_map"], [440, 158, 284])
        n = 2.0 * ref["codes"][valid] / 255.0 - 1.0
        n = n / (np.linalg.norm(n, axis=-1, keepdims=True) + np.finfo(np.float32).eps)
        np.testing.assert_allclose(normals[valid], n, atol=1e-5)
        assert np.all(normals[~valid] == 0) and np.all(batch["normals"][row, h:] == 0)
    assert np.all(batch["orig_size"][2:] == 0)


def test_train_batches_are_fixed_size_with_the_reference_label_values(pascal_pipeline):
    pipeline, _ = pascal_pipeline
    batch = next(iter(pipeline.train_dataset(0).as_numpy_iterator()))
    assert batch["image"].shape == (8, 32, 32, 3) and batch["human_parts"].shape == (8, 32, 32)
    assert set(np.unique(batch["semseg"])) <= set(range(21)) | {255}
    assert set(np.unique(batch["human_parts"])) <= set(range(7)) | {255}
    assert set(np.unique(batch["sal"])) <= {0, 1} and set(np.unique(batch["edge"])) <= {0, 1}
    for row in range(8):
        parts = batch["human_parts"][row]
        assert np.all(parts == 255) or not np.any(parts == 255)  # ignore is all or nothing


def test_human_parts_alone_trains_on_images_with_people_only(built):
    builder, _, _ = built
    config = get_config()
    config.dataset.name = "pascal_context_mt"
    config.dataset.augmentation = "pascal"
    config.dataset.image_size = (32, 32)
    config.tasks = ("human_parts",)
    config.batch_size = 8
    original = pipeline_lib._prepared_builder
    pipeline_lib._prepared_builder = lambda _: builder
    try:
        pipeline = pipeline_lib.InputPipeline(config, sharding.create_mesh(-1))
    finally:
        pipeline_lib._prepared_builder = original
    batch = next(iter(pipeline.train_dataset(0).as_numpy_iterator()))
    # One of the three training images has people with parts; the scale-and-rotate may still
    # push every part out of the frame (then all ignore, as in the reference).
    has_parts = [np.any((b != 255) & (b != 0)) for b in batch["human_parts"]]
    assert sum(has_parts) >= 6


@pytest.mark.parametrize(
    "config_module, examples",
    # fake_archives gives the training images people with parts, a person without parts and no
    # person: the reference keeps only the first when human parts is the only task.
    [("configs.pascal.human_parts", 1), ("configs.pascal.semseg", len(IDS["train"]))],
)
def test_epochs_of_the_paper_configs_count_the_images_the_stream_reads(
    built, config_module, examples
):
    builder, _, _ = built
    config = importlib.import_module(config_module).get_config("batch_size=1")
    original = pipeline_lib._prepared_builder
    pipeline_lib._prepared_builder = lambda _: builder
    try:
        pipeline = pipeline_lib.InputPipeline(config, sharding.create_mesh(1))
    finally:
        pipeline_lib._prepared_builder = original
    assert pipeline.examples_per_epoch() == examples
    resolved = config_utils.resolve_durations(config, pipeline.examples_per_epoch())
    assert resolved.num_train_steps == 60 * examples  # the YAML's 60 epochs of batch 1
    assert resolved.eval_every_steps == 10 * examples
    assert resolved.checkpoint_every_steps == examples
