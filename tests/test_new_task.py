"""A task defined here, outside the library: inverse depth, read from the `depth` field of the
tiny synthetic dataset, registered, then trained and evaluated by the real trainer. Nothing
under `mtnets/` knows it (docs/extending.md#a-task shows the same example)."""

import json
import os

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow as tf
from clu import metrics as clu_metrics

from configs.synthetic.tiny import get_config
from mtnets import tasks
from mtnets.data import augment
from mtnets.data.pipeline import InputPipeline
from mtnets.metrics.delta_m import delta_m
from mtnets.models import create_model
from mtnets.sharding import create_mesh
from mtnets.train import loop


def masked_l1(prediction, target, mask):
    """Mean |prediction - target| over the valid pixels (0 for none)."""
    error = jnp.abs(prediction.astype(jnp.float32)[..., 0] - target)
    return jnp.sum(jnp.where(mask, error, 0.0)) / jnp.maximum(jnp.sum(mask), 1)


@flax.struct.dataclass
class RMSE(clu_metrics.Metric):
    """sqrt(mean squared error) pooled over the valid pixels of the evaluation set."""

    squared_error: jnp.ndarray
    count: jnp.ndarray

    @classmethod
    def from_model_output(cls, prediction, target, mask):
        error = prediction.astype(jnp.float32)[..., 0] - target
        return cls(jnp.sum(jnp.where(mask, error**2, 0.0)), jnp.sum(mask, dtype=jnp.int32))

    def merge(self, other):
        return jax.tree.map(jnp.add, self, other)

    def compute(self):
        return {"rmse": jnp.sqrt(self.squared_error / jnp.maximum(self.count, 1))}


class InverseDepthTask(tasks.DepthTask):
    """1 / depth (per metre), 0 where the depth is unknown. The depth kind gives the mask
    (> 0), the nearest-neighbour resampling and the pictures; this class changes the rest."""

    delta_m = ("rmse", -1)
    error_title = "abs. error (1/m)"
    error_unit = " 1/m"
    colour_bar = "inverse depth (1/m)"

    def decode(self, value):
        return tf.math.divide_no_nan(1.0, super().decode(value))

    def zoomed(self, value, scale):
        # A zoom-in by s brings the scene s times closer: depth / s, inverse depth * s.
        return value * tf.cast(scale, tf.float32)

    def losses(self, **options):
        return {"mtl": masked_l1, "lorenmt": masked_l1}

    def metric(self):
        return RMSE


@pytest.fixture
def inverse_depth():
    task = tasks.register_task(InverseDepthTask("inv_depth", field="depth"))
    yield task
    del tasks.TASKS["inv_depth"]


def test_augmentation_applies_the_new_tasks_zoom_rule(inverse_depth):
    depth = np.linspace(1.0, 4.0, 8 * 10, dtype=np.float32).reshape(8, 10, 1)
    depth[0, 0] = 0.0  # unknown stays unknown
    example = {
        "image": tf.zeros((8, 10, 3), tf.uint8),
        "depth": tf.constant(depth),
        "inv_depth": inverse_depth.decode(tf.constant(depth[..., 0])),
    }
    out = augment.random_scale_crop(example, tf.constant([3, 4]), 1.5, 1.5)
    zoomed_depth, zoomed_inverse = out["depth"].numpy(), out["inv_depth"].numpy()
    known = zoomed_depth > 0
    assert known.any() and (zoomed_inverse[~known] == 0).all()
    np.testing.assert_allclose(zoomed_inverse[known], 1.0 / zoomed_depth[known], rtol=1e-6)


def test_a_task_defined_in_a_test_trains_and_evaluates(inverse_depth, tfds_data_dir, tmp_path):
    config = get_config()
    config.dataset.data_dir = tfds_data_dir
    config.tasks = ("depth", "inv_depth")  # two tasks that read one stored field
    config.weighting.fixed.weights = {"depth": 1.0, "inv_depth": 1.0}
    config.num_train_steps = config.eval_every_steps = config.checkpoint_every_steps = 2
    workdir = str(tmp_path / "workdir")
    state = loop.train_and_evaluate(config, workdir)

    with open(os.path.join(workdir, "eval_2.json")) as f:
        results = json.load(f)
    assert os.path.getsize(os.path.join(workdir, "predictions_2.png")) > 0

    # The labels the pipeline built: 1 / depth where the depth is known, 0 elsewhere.
    data = InputPipeline(config, create_mesh(config.num_devices))
    batches = list(data.eval_dataset().as_numpy_iterator())
    for batch in batches:
        known = batch["depth"] > 0
        np.testing.assert_allclose(batch["inv_depth"][known], 1.0 / batch["depth"][known])
        assert (batch["inv_depth"][~known] == 0).all()

    # The reported metric is the RMSE of the trained model's predictions (NumPy, float64).
    model = create_model(config)
    squared, count = 0.0, 0
    for batch in batches:
        outputs = model.apply(state.variables(), jnp.asarray(batch["image"]), train=False)
        prediction = np.asarray(outputs["inv_depth"], np.float64)[..., 0]
        valid = (batch["inv_depth"] > 0) & batch["mask"][:, None, None]
        squared += np.sum((prediction - batch["inv_depth"])[valid] ** 2)
        count += int(valid.sum())
    assert count > 0
    np.testing.assert_allclose(results["inv_depth/rmse"], np.sqrt(squared / count), rtol=1e-4)
    assert results["inv_depth/rmse"] > 0
    # Delta_m reads the new task's metric and sign: 10 % worse rmse than a reference is -10.
    worse = {"inv_depth/rmse": 1.1 * results["inv_depth/rmse"]}
    assert delta_m(worse, results, ["inv_depth"]) == pytest.approx(-10.0)
