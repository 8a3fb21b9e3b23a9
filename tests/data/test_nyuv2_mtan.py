"""`nyuv2_mtan` from small fake copies of lorenmt's npy folders: fields, mappings, splits, errors,
and the pipeline with lorenmt's augmentation."""

import os
import shutil
import zipfile

import numpy as np
import pytest
import tensorflow_datasets as tfds

from configs.default import get_config
from mtnets import sharding
from mtnets.data import pipeline as pipeline_lib
from mtnets.data.builders import nyuv2_mtan
from tests.data import fake_archives

H, W = 24, 32
COUNTS = {"train": 3, "val": 2}


def make_builder(data_dir):
    config = nyuv2_mtan.Nyuv2MtanConfig(name="t", height=H, width=W)
    return nyuv2_mtan.Nyuv2Mtan(config=config, data_dir=data_dir)


def prepare(builder, manual_dir):
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir))
    )


def zip_folder(folder, archive, nested: bool):
    with zipfile.ZipFile(archive, "w") as zf:
        for dirpath, _, files in os.walk(folder):
            for name in files:
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, os.path.dirname(folder) if nested else folder)
                zf.write(path, rel)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("nyuv2")
    written = fake_archives.write_nyuv2_mtan(str(root / "manual"), COUNTS, H, W)
    builder = make_builder(str(root / "data"))
    prepare(builder, root / "manual")
    return builder, written, root


def examples(builder, split):
    return {ex["id"].decode(): ex for ex in tfds.as_numpy(builder.as_dataset(split=split))}


def test_every_field_and_split(built):
    builder, written, _ = built
    for split, name in (("train", "train"), ("validation", "val")):
        got = examples(builder, split)
        assert set(got) == {f"{name}/{i}" for i in range(COUNTS[name])}
        for i in range(COUNTS[name]):
            ex, ref = got[f"{name}/{i}"], written[(name, i)]
            np.testing.assert_array_equal(ex["image"], ref["image"])
            label = ref["label"].astype(int)
            np.testing.assert_array_equal(ex["semseg"][..., 0], np.where(label < 0, 255, label))
            np.testing.assert_array_equal(ex["depth"], ref["depth"][..., 0])
            np.testing.assert_array_equal(ex["normals"], ref["normal"])


@pytest.mark.parametrize("nested", [True, False])
def test_a_zip_is_accepted(built, tmp_path, nested):
    _, written, root = built
    (tmp_path / "manual").mkdir()
    zip_folder(str(root / "manual" / "nyuv2"), str(tmp_path / "manual" / "nyuv2.zip"), nested)
    builder = make_builder(str(tmp_path / "data"))
    prepare(builder, tmp_path / "manual")
    got = examples(builder, "validation")
    np.testing.assert_array_equal(got["val/1"]["normals"], written[("val", 1)]["normal"])


def test_missing_incomplete_and_bad_files_are_named(built, tmp_path):
    _, _, root = built
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme").write_text("x")
    with pytest.raises(FileNotFoundError, match="nyuv2.zip"):
        prepare(make_builder(str(tmp_path / "d0")), tmp_path / "empty")

    shutil.copytree(root / "manual" / "nyuv2", tmp_path / "m1" / "nyuv2")
    os.remove(tmp_path / "m1" / "nyuv2" / "train" / "depth" / "2.npy")
    with pytest.raises(FileNotFoundError, match="nyuv2/train/depth/2.npy"):
        prepare(make_builder(str(tmp_path / "d1")), tmp_path / "m1")

    shutil.copytree(root / "manual" / "nyuv2", tmp_path / "m2" / "nyuv2")
    label = np.full((H, W), 13.0, np.float32)  # outside -1..12
    np.save(tmp_path / "m2" / "nyuv2" / "val" / "label" / "0.npy", label)
    with pytest.raises(ValueError, match="val/label/0.npy"):
        prepare(make_builder(str(tmp_path / "d2")), tmp_path / "m2")


@pytest.fixture(scope="module")
def lorenmt_pipeline(built):
    builder, written, _ = built
    config = get_config()
    config.dataset.name = "nyuv2_mtan"
    config.dataset.augmentation = "lorenmt"
    config.dataset.image_normalization = "none"
    config.dataset.shuffle_buffer = 4
    config.tasks = ("semseg", "depth", "normals")
    config.batch_size = 8
    original = pipeline_lib._prepared_builder
    pipeline_lib._prepared_builder = lambda _: builder
    try:
        yield pipeline_lib.InputPipeline(config, sharding.create_mesh(-1)), written
    finally:
        pipeline_lib._prepared_builder = original


def test_lorenmt_eval_is_the_raw_data(lorenmt_pipeline):
    pipeline, written = lorenmt_pipeline
    batch = next(iter(pipeline.eval_dataset().as_numpy_iterator()))
    assert batch["mask"].sum() == 2
    for row in range(2):
        ref = next(
            r for r in written.values() if np.array_equal(r["depth"][..., 0], batch["depth"][row])
        )
        np.testing.assert_array_equal(batch["image"][row], ref["image"])  # unnormalised
        np.testing.assert_array_equal(batch["normals"][row], ref["normal"])


def test_lorenmt_train_batches(lorenmt_pipeline):
    pipeline, written = lorenmt_pipeline
    batch = next(iter(pipeline.train_dataset(0).as_numpy_iterator()))
    assert batch["image"].shape == (8, H, W, 3)
    assert set(np.unique(batch["semseg"])) <= set(range(13)) | {255}
    sources = [r["depth"][..., 0] for (split, _), r in written.items() if split == "train"]
    for row in range(8):
        depth = batch["depth"][row]
        ok = any(
            np.all(np.isin(depth[depth > 0], src[src > 0] / np.float32(s)))
            for src in sources
            for s in (1.0, 1.2, 1.5)
        )
        assert ok, f"row {row}"


def test_pictures_of_a_nyuv2_config_show_the_stored_images(lorenmt_pipeline, monkeypatch):
    """A `configs/nyuv2` config feeds the stored images as they are: the evaluation picture's
    input row is the stored image itself, not the image de-normalised with ImageNet
    statistics."""
    from configs.nyuv2.segnet_mtan import get_config as nyuv2_config
    from mtnets.train import evaluate

    pipeline, written = lorenmt_pipeline
    config = nyuv2_config()
    assert config.dataset.image_normalization == pipeline.config.dataset.image_normalization
    batch = next(iter(pipeline.eval_dataset().as_numpy_iterator()))
    shown = {}

    def figure(images, targets, predictions, tasks, class_names=None):
        shown["images"] = images
        return None

    monkeypatch.setattr(evaluate.visualize, "prediction_figure", figure)
    monkeypatch.setattr(evaluate.visualize, "figure_to_array", lambda fig: None)
    samples = {**batch, "predictions": {t: batch[t] for t in config.tasks}}
    evaluate.prediction_picture(samples, config.tasks, config.dataset.image_normalization)
    for row in range(int(batch["mask"].sum())):
        ref = next(
            r for r in written.values() if np.array_equal(r["depth"][..., 0], batch["depth"][row])
        )
        np.testing.assert_array_equal(shown["images"][row], ref["image"])
