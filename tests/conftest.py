"""Test-wide set-up: 8 simulated CPU devices and JAX's persistent compilation cache.

Both must be configured before JAX initialises its backends, so they happen at import time.
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

from mtnets import compilation_cache  # noqa: E402

compilation_cache.enable()

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tfds_data_dir(tmp_path_factory) -> str:
    """A TFDS data dir shared by the tests; builders generate into it on first use."""
    return str(tmp_path_factory.mktemp("tensorflow_datasets"))


@pytest.fixture(scope="session")
def straight_run(tmp_path_factory, tfds_data_dir):
    """An uninterrupted 6-step run of `configs/synthetic/tiny.py` (checkpoints at 3 and 6):
    the reference that interrupted and resumed runs must reproduce exactly."""
    from configs.synthetic.tiny import get_config
    from mtnets.train import loop

    config = get_config()
    config.dataset.data_dir = tfds_data_dir
    workdir = str(tmp_path_factory.mktemp("straight"))
    return workdir, loop.train_and_evaluate(config, workdir)
