"""Trains a multi-task model: `python train.py --config configs/default.py --workdir DIR`.

Config fields can be overridden as flags (`--config.batch_size=8`) or in the config argument
(`--config=configs/default.py:batch_size=8`). Restarting with the same workdir resumes. Ctrl-C
(or SIGTERM) saves the current step and stops; a second Ctrl-C stops at once. One trainer per
workdir: a second one on a workdir in use is refused.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

if __name__ == "__main__":  # before the heavy imports: this may restart the process once
    from mtnets import host_memory

    host_memory.restart_with_huge_pages()

import jax  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from mtnets import compilation_cache, distributed, plugins  # noqa: E402
from mtnets.train import loop, workdir_lock  # noqa: E402

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Experiment config file.", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, summaries and results.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    distributed.initialize_from_flags()
    compilation_cache.enable_from_flags()
    plugins.import_from_flags()
    tf.config.set_visible_devices([], "GPU")  # tf.data only; the accelerators are JAX's
    loop.quiet_library_logs()
    logging.info(
        "JAX process %d of %d, devices: %s", jax.process_index(), jax.process_count(), jax.devices()
    )
    try:
        loop.train_and_evaluate(FLAGS.config, FLAGS.workdir)
    except workdir_lock.WorkdirLockedError as error:
        logging.error("%s", error)
        sys.exit(1)
    except KeyboardInterrupt:  # a second Ctrl-C: stopped without saving the current step
        logging.warning("Interrupted; the checkpoints already in %s are kept.", FLAGS.workdir)
        sys.exit(130)


if __name__ == "__main__":
    logging.set_verbosity(logging.INFO)
    app.run(main)
