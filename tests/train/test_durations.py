"""Durations in epochs resolved from the data a run reads; the start-up summary; a missing
ImageNet file stops the run before anything is built."""

import logging

import pytest
import tensorflow_datasets as tfds

from configs.default import get_config as default_config
from configs.synthetic.tiny import get_config
from mtnets import config_utils
from mtnets.train import loop


def epoch_config(data_dir, arg=None):
    """The tiny config with every duration in epochs."""
    config = get_config(arg)
    config.dataset.data_dir = data_dir
    config.num_train_steps, config.num_train_epochs = None, 2
    config.eval_every_steps, config.eval_every_epochs = None, 1
    config.checkpoint_every_steps, config.checkpoint_every_epochs = None, 0.5
    return config


def test_resolve_durations_counts_full_batches_per_epoch():
    config = default_config("batch_size=2,schedule.name=step,checkpoint_every_steps=200")
    config.num_train_steps, config.num_train_epochs = None, 200
    config.schedule.step_size_epochs = 100
    config.eval_every_steps, config.eval_every_epochs = None, 1
    resolved = config_utils.resolve_durations(config, 795)
    # 795 // 2 = 397 steps per epoch (lorenmt's NYUv2 at batch 2).
    assert resolved.num_train_steps == 200 * 397 and resolved.schedule.step_size == 100 * 397
    assert resolved.eval_every_steps == 397 and resolved.checkpoint_every_steps == 200
    assert resolved.num_train_epochs is None and config.num_train_epochs == 200  # a copy
    config_utils.validate(resolved)  # resolving twice changes nothing
    assert config_utils.resolve_durations(resolved, 10).num_train_steps == 200 * 397
    # Fewer examples than a batch: one step per epoch, not zero.
    assert config_utils.resolve_durations(config, 1).num_train_steps == 200


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(num_train_epochs=3), r"exactly one of config.num_train_steps and "
         r"config.num_train_epochs \(the other None\); got config.num_train_steps=\d+, "
         r"config.num_train_epochs=3.0"),
        (dict(num_train_steps=None), r"got config.num_train_steps=None, "
         r"config.num_train_epochs=None"),
        (dict(eval_every_steps=None, eval_every_epochs=-1), r"config.eval_every_epochs must be "
         r"positive, got -1"),
        (dict(num_train_steps=0), "config.num_train_steps must be positive, got 0"),
    ],
)  # fmt: skip
def test_validate_wants_one_positive_duration_of_each_pair(change, message):
    config = default_config()
    for key, value in change.items():
        config[key] = value
    with pytest.raises(ValueError, match=message):
        config_utils.validate(config)


def test_a_step_schedule_needs_its_step_size():
    config = default_config("schedule.name=step")
    with pytest.raises(ValueError, match="config.schedule.step_size and config.schedule.step_"):
        config_utils.validate(config)
    config_utils.validate(default_config("schedule.name=step,schedule.step_size=10"))


def test_the_experiment_resolves_epochs_from_the_split_and_dwa_reads_the_same_epoch(
    tfds_data_dir, monkeypatch, caplog
):
    config = epoch_config(tfds_data_dir, "weighting.name=dwa")
    seen = {}
    create_weighting = loop.create_weighting

    def spy(config, tasks, steps_per_epoch):
        seen["steps_per_epoch"] = steps_per_epoch
        return create_weighting(config, tasks, steps_per_epoch=steps_per_epoch)

    monkeypatch.setattr(loop, "create_weighting", spy)
    experiment = loop.Experiment(config)
    builder = tfds.builder("synthetic_scenes/tiny", data_dir=tfds_data_dir)
    per_epoch = builder.info.splits["train"].num_examples // 8
    resolved = experiment.config
    assert (resolved.num_train_steps, resolved.eval_every_steps) == (2 * per_epoch, per_epoch)
    assert resolved.checkpoint_every_steps == round(0.5 * per_epoch)
    assert seen["steps_per_epoch"] == experiment.steps_per_epoch == per_epoch
    with caplog.at_level(logging.INFO):
        loop._log_run_summary(experiment)
    summary = caplog.text
    assert f"training: {2 * per_epoch} steps = 2 epochs" in summary
    # DWA's own settings (update_every_steps 0: at every epoch boundary, the epoch above).
    assert "loss weights: dwa {'temperature': 2.0, 'update_every_steps': 0} over semseg" in summary
    assert "weights: from scratch" in summary and "schedule: poly, learning rate 0.002" in summary


def test_a_missing_imagenet_file_stops_the_run_before_anything_is_built(
    tfds_data_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv("MTNETS_WEIGHTS", str(tmp_path))

    def built(*args, **kwargs):
        raise AssertionError("the model was built")

    monkeypatch.setattr(loop, "create_model", built)
    monkeypatch.setattr(loop, "InputPipeline", built)
    config = get_config("model.backbone=resnet18,model.pretrained=imagenet")
    with pytest.raises(FileNotFoundError) as error:
        loop.train_and_evaluate(config, str(tmp_path / "run"))
    message = str(error.value)
    for part in ("resnet18-f37072fd.pth", str(tmp_path), "python -m mtnets.weights fetch resnet18",
                 "model.pretrained=none"):  # fmt: skip
        assert part in message
    assert not (tmp_path / "run").exists()


def test_evaluating_a_checkpoint_needs_no_initial_weights(tfds_data_dir, monkeypatch):
    config = get_config("model.pretrained=imagenet")  # resnet_small has no ImageNet file
    config.dataset.data_dir = tfds_data_dir
    with pytest.raises(ValueError, match="backbone 'resnet_small' has no ImageNet file"):
        loop.Experiment(config)
    assert loop.Experiment(config, initial_weights=False).weight_source == "checkpoint"
    seen = {}

    def spy(config, **kwargs):
        seen.update(kwargs)
        raise RuntimeError("stop")

    monkeypatch.setattr(loop, "Experiment", spy)
    with pytest.raises(RuntimeError, match="stop"):
        loop.evaluate_checkpoint(config, "/nowhere")
    assert seen == {"initial_weights": False}
