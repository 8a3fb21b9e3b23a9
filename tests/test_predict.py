"""predict.py: a trained model on your own images, of any size, with clear errors."""

import functools
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image

from configs.synthetic.tiny import get_config
from mtnets import predict
from mtnets.train import checkpointing

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_config(data_dir, arg=None):
    config = get_config(arg)
    config.dataset.data_dir = data_dir
    return config


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Odd-sized PNG and JPEG images, and a file that is not an image."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (37, 53, 3), np.uint8)).save(folder / "a.png")
    Image.fromarray(rng.integers(0, 256, (50, 41, 3), np.uint8)).save(folder / "b.jpg")
    (folder / "notes.txt").write_text("not an image")
    return str(folder)


def test_predict_py_writes_pictures_and_arrays_at_each_images_size(
    tmp_path, images, straight_run, tfds_data_dir
):
    out = str(tmp_path / "out")
    command = [
        sys.executable,
        "predict.py",
        "--config=configs/synthetic/tiny.py",
        f"--config.dataset.data_dir={tfds_data_dir}",
        f"--workdir={straight_run[0]}",
        f"--images={images}",
        f"--out={out}",
        "--save_arrays",
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(os.listdir(out)) == ["a.npz", "a.png", "b.npz", "b.png"]
    assert "notes.txt is not a readable image" in result.stderr  # skipped, with a warning
    assert "1 file(s) were not readable images and were skipped" in result.stderr
    for name, size in (("a", (37, 53)), ("b", (50, 41))):
        arrays = np.load(os.path.join(out, f"{name}.npz"))
        assert sorted(arrays) == sorted(get_config().tasks)
        assert arrays["semseg"].shape == size and arrays["semseg"].max() < 7
        assert arrays["human_parts"].shape == size and arrays["human_parts"].max() < 4
        assert arrays["depth"].shape == size and arrays["depth"].dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(arrays["normals"], axis=-1), 1.0, rtol=1e-5)
        for task in ("edge", "sal"):
            assert arrays[task].shape == size
            assert np.all((arrays[task] >= 0) & (arrays[task] <= 1))
        with Image.open(os.path.join(out, f"{name}.png")) as picture:
            assert picture.width > 2 * picture.height  # the input and six predictions in a row


def test_predictions_are_the_models_at_the_input_size(straight_run, tfds_data_dir):
    """An image of the model's input size is the model's own output (resizing is identity)."""
    workdir, state = straight_run
    config = tiny_config(tfds_data_dir)
    predictor = predict.Predictor(config, workdir)
    assert predictor.step == 6 and predictor.input_size == (32, 40)
    image = np.random.default_rng(1).integers(0, 256, (32, 40, 3), np.uint8)
    (got,) = predictor.predict([image])
    # torchvision's ImageNet statistics, as the MTL reference normalises.
    x = (image / 255.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    from mtnets.models import create_model

    apply = jax.jit(functools.partial(create_model(config).apply, train=False))
    want = apply(jax.device_get(state.variables()), x[None].astype(np.float32))
    for task in ("semseg", "depth", "human_parts"):
        np.testing.assert_allclose(got[task], np.asarray(want[task][0]), rtol=1e-4, atol=1e-4)
    normals = np.asarray(want["normals"][0])
    unit = normals / np.linalg.norm(normals, axis=-1, keepdims=True)
    np.testing.assert_allclose(got["normals"], unit, rtol=1e-4, atol=1e-4)
    sigmoid = 1 / (1 + np.exp(-np.asarray(want["sal"][0])))
    np.testing.assert_allclose(1 / (1 + np.exp(-got["sal"])), sigmoid, atol=1e-5)


def test_bad_input_names_it(tmp_path, straight_run, tfds_data_dir):
    config = tiny_config(tfds_data_dir)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=f"The folder {empty} holds no file"):
        predict.find_files(str(empty))
    with pytest.raises(FileNotFoundError, match="nothing/\\*.jpg is neither a folder nor"):
        predict.find_files(str(tmp_path / "nothing" / "*.jpg"))
    with pytest.raises(ValueError, match="x.png is not a readable image"):
        (tmp_path / "x.png").write_bytes(b"\x89PNG but truncated")
        predict.read_image(str(tmp_path / "x.png"))
    with pytest.raises(FileNotFoundError, match="not the workdir of a training run"):
        predict.Predictor(config, str(tmp_path))
    with pytest.raises(checkpointing.CheckpointMismatchError, match="another model"):
        predict.Predictor(tiny_config(tfds_data_dir, "model.head_width=16"), straight_run[0])
