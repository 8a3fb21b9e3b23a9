"""A tiny variant of the default experiment for tests and smoke runs (32x40 images)."""

from configs.default import get_config as default_config
from mtnets.config_utils import apply_overrides


def get_config(arg: str | None = None):
    config = default_config()
    config.dataset.config = "tiny"
    config.dataset.shuffle_buffer = 16
    config.batch_size = 8
    config.num_train_steps = 6
    config.log_every_steps = 2
    config.eval_every_steps = 3
    config.checkpoint_every_steps = 3
    config.num_eval_images = 2
    return apply_overrides(config, arg)
