"""A tiny variant of the default experiment for tests and smoke runs (32x40 images).

It keeps the shared-encoder baseline on a quarter-width ResNet-10: MTI-Net needs image sides
divisible by 32, and the tests that use this config must stay fast.
"""

from configs.default import get_config as default_config
from mtnets.config_utils import apply_overrides


def get_config(arg: str | None = None):
    config = default_config()
    config.dataset.config = "tiny"
    config.model.name = "multi_task_baseline"
    config.model.backbone = "resnet_small"
    config.model.head_width = 48
    config.dataset.shuffle_buffer = 16
    config.batch_size = 8
    config.num_train_steps = 6
    config.log_every_steps = 2
    config.eval_every_steps = 3
    config.checkpoint_every_steps = 3
    config.num_eval_images = 2
    return apply_overrides(config, arg)
