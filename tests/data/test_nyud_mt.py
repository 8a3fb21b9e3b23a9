"""`nyud_mt` from a small fake NYUD_MT.tgz in the real layout: fields, mappings, splits, errors,
and the pipeline's NYUD transforms."""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from configs.default import get_config
from mtnets import sharding
from mtnets.data import pipeline as pipeline_lib
from mtnets.data.builders import nyud_mt
from tests.data import fake_archives

H, W = 24, 32
IDS = {"train": ["0003", "0012", "0101"], "val": ["0007", "0042"]}


def make_builder(data_dir):
    return nyud_mt.NyudMt(
        config=nyud_mt.NyudMtConfig(name="t", height=H, width=W), data_dir=data_dir
    )


def prepare(builder, manual_dir):
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir))
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("nyud")
    written = fake_archives.write_nyud_mt(str(root / "src"), IDS, H, W)
    os.makedirs(root / "manual")
    fake_archives.tar_gz(str(root / "src" / "NYUD_MT"), str(root / "manual" / "NYUD_MT.tgz"))
    builder = make_builder(str(root / "data"))
    prepare(builder, root / "manual")
    return builder, written, root


def examples(builder, split):
    ds = builder.as_dataset(split=split, decoders={"image": tfds.decode.SkipDecoding()})
    return {ex["id"].decode(): ex for ex in tfds.as_numpy(ds)}


def test_splits_follow_the_gt_sets_lists(built):
    builder, _, root = built
    assert set(examples(builder, "train")) == set(IDS["train"])
    assert set(examples(builder, "validation")) == set(IDS["val"])
    # The extraction was temporary.
    assert os.listdir(root / "manual") == ["NYUD_MT.tgz"]


def test_every_field_is_decoded_with_the_reference_mappings(built):
    builder, written, _ = built
    for split in ("train", "validation"):
        for example_id, ex in examples(builder, split).items():
            ref = written[example_id]
            image = tf.io.decode_jpeg(ex["image"], channels=3, dct_method="INTEGER_ACCURATE")
            np.testing.assert_array_equal(image.numpy(), ref["image"])  # PIL's pixels
            # MTL:data/nyud.py _load_semseg: 0 -> 256 -> 255 (ignore); c -> c - 1.
            expected = ref["seg"].astype(np.int64)
            expected = np.where(expected == 0, 255, expected - 1)
            np.testing.assert_array_equal(ex["semseg"][..., 0], expected)
            assert ex["semseg"].max() == 255 and ex["semseg"][ex["semseg"] != 255].max() <= 39
            np.testing.assert_array_equal(ex["depth"], ref["depth"])
            np.testing.assert_array_equal(ex["normals"], ref["normals"])
            np.testing.assert_array_equal(ex["edge"][..., 0], ref["edge"] >= 0.5)


def test_an_extracted_folder_is_accepted(built, tmp_path):
    _, written, root = built
    shutil.copytree(root / "src" / "NYUD_MT", tmp_path / "manual" / "NYUD_MT")
    builder = make_builder(str(tmp_path / "data"))
    prepare(builder, tmp_path / "manual")
    got = examples(builder, "validation")
    assert set(got) == set(IDS["val"])
    np.testing.assert_array_equal(got["0007"]["depth"], written["0007"]["depth"])


def test_a_missing_archive_says_where_to_put_it(tmp_path):
    (tmp_path / "manual").mkdir()
    (tmp_path / "manual" / "other.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match="NYUD_MT.tgz") as error:
        prepare(make_builder(str(tmp_path / "data")), tmp_path / "manual")
    assert str(tmp_path / "manual" / "NYUD_MT.tgz") in str(error.value)


def test_an_incomplete_archive_names_the_missing_file(tmp_path):
    fake_archives.write_nyud_mt(str(tmp_path / "src"), IDS, H, W)
    os.remove(tmp_path / "src" / "NYUD_MT" / "depth" / "0042.npy")
    (tmp_path / "manual").mkdir()
    fake_archives.tar_gz(
        str(tmp_path / "src" / "NYUD_MT"), str(tmp_path / "manual" / "NYUD_MT.tgz")
    )
    with pytest.raises(FileNotFoundError, match="NYUD_MT/depth/0042.npy"):
        prepare(make_builder(str(tmp_path / "data")), tmp_path / "manual")


def test_a_corrupt_member_is_named(tmp_path):
    fake_archives.write_nyud_mt(str(tmp_path / "manual"), IDS, H, W)
    bad = tmp_path / "manual" / "NYUD_MT" / "normals" / "0003.npy"
    bad.write_bytes(bad.read_bytes()[:60])
    with pytest.raises(ValueError, match="normals/0003.npy"):
        prepare(make_builder(str(tmp_path / "data")), tmp_path / "manual")


def test_a_truncated_archive_is_named(tmp_path):
    fake_archives.write_nyud_mt(str(tmp_path / "src"), IDS, H, W)
    (tmp_path / "manual").mkdir()
    archive = tmp_path / "manual" / "NYUD_MT.tgz"
    fake_archives.tar_gz(str(tmp_path / "src" / "NYUD_MT"), str(archive))
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(ValueError, match="NYUD_MT.tgz"):
        prepare(make_builder(str(tmp_path / "data")), tmp_path / "manual")


# ---------------------------------------------------------------------------------------------
# The pipeline with config.dataset.augmentation = "nyud".
@pytest.fixture(scope="module")
def nyud_pipeline(built):
    builder, written, _ = built
    config = get_config()
    config.dataset.name = "nyud_mt"
    config.dataset.augmentation = "nyud"
    config.dataset.shuffle_buffer = 4
    config.tasks = ("semseg", "depth")
    config.aux_tasks = ("normals", "edge")
    config.batch_size = 8
    original = pipeline_lib._prepared_builder
    pipeline_lib._prepared_builder = lambda _: builder
    try:
        yield pipeline_lib.InputPipeline(config, sharding.create_mesh(-1)), written
    finally:
        pipeline_lib._prepared_builder = original


def test_eval_batches_are_the_stored_labels(nyud_pipeline):
    pipeline, written = nyud_pipeline
    batch = next(iter(pipeline.eval_dataset().as_numpy_iterator()))
    assert batch["image"].shape == (8, H, W, 3) and batch["mask"].sum() == 2
    for row in range(2):
        # Find the example by its depth map (eval order is the TFDS order).
        ref = next(r for r in written.values() if np.array_equal(r["depth"], batch["depth"][row]))
        image = (ref["image"] / 255.0 - np.array([0.485, 0.456, 0.406])) / np.array(
            [0.229, 0.224, 0.225]
        )
        np.testing.assert_allclose(batch["image"][row], image, atol=1e-5)
        seg = ref["seg"].astype(int)
        np.testing.assert_array_equal(batch["semseg"][row], np.where(seg == 0, 255, seg - 1))
        n = ref["normals"]
        expected = n / (np.linalg.norm(n, axis=-1, keepdims=True) + np.finfo(np.float32).eps)
        np.testing.assert_allclose(batch["normals"][row], expected, atol=1e-6)
        np.testing.assert_array_equal(batch["edge"][row], ref["edge"] >= 0.5)


def test_train_batches_are_augmented_consistently(nyud_pipeline):
    pipeline, written = nyud_pipeline
    batch = next(iter(pipeline.train_dataset(0).as_numpy_iterator()))
    assert batch["semseg"].shape == (8, H, W) and batch["semseg"].dtype == np.int32
    assert set(np.unique(batch["semseg"])) <= set(range(40)) | {255}
    depths = [r["depth"] for r in written.values()]
    for row in range(8):
        depth = batch["depth"][row]
        # A centre zoom by s in {1, 1.2, 1.5} shows depth values of one source map divided by s.
        matches = []
        for src in depths:
            for s in (1.0, 1.2, 1.5):
                values = np.unique(src[src > 0] / np.float32(s))
                if np.all(np.isin(depth[depth > 0], values)):
                    matches.append(s)
        assert matches, f"row {row}: depth is no zoom of any source map"
        # Re-normalised as N / (|N| + eps): unit length unless blending left |N| ~ eps.
        valid = np.any(batch["normals"][row] != 0, axis=-1)
        norms = np.linalg.norm(batch["normals"][row][valid], axis=-1)
        assert np.all(norms <= 1 + 1e-6) and np.mean(np.abs(norms - 1) < 1e-5) > 0.95


def test_image_decoding_matches_pil(tmp_path):
    """The pipeline's JPEG decoding gives PIL's pixels (what the reference reads)."""
    rng = np.random.default_rng(3)
    path = str(tmp_path / "x.jpg")
    Image.fromarray(rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)).save(path, quality=75)
    with Image.open(path) as image:
        pil = np.array(image.convert("RGB"))
    with open(path, "rb") as f:
        tf_pixels = tf.io.decode_jpeg(f.read(), channels=3, dct_method="INTEGER_ACCURATE")
    np.testing.assert_array_equal(tf_pixels.numpy(), pil)


def test_the_nyud_train_stream_resumes_at_any_step(nyud_pipeline):
    pipeline, _ = nyud_pipeline
    straight = pipeline.train_dataset(0).as_numpy_iterator()
    next(straight)
    second = next(straight)
    resumed = next(pipeline.train_dataset(1).as_numpy_iterator())
    for key in second:
        np.testing.assert_array_equal(resumed[key], second[key], err_msg=key)
