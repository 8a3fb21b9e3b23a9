"""Evaluates a checkpoint: `python eval.py --config CONFIG --workdir DIR [--step N]`.

Writes `DIR/eval_<step>.json` with every metric of every task and `DIR/predictions_<step>.png`.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

if __name__ == "__main__":  # before the heavy imports: this may restart the process once
    from mtnets import host_memory

    host_memory.restart_with_huge_pages()

import json  # noqa: E402

import tensorflow as tf  # noqa: E402
from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from mtnets import compilation_cache, distributed, plugins  # noqa: E402
from mtnets.train import loop  # noqa: E402

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Experiment config file.", lock_config=True)
flags.DEFINE_string("workdir", None, "The training run's directory.")
flags.DEFINE_integer("step", None, "Checkpoint step to evaluate (default: the latest).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    distributed.initialize_from_flags()
    compilation_cache.enable_from_flags()
    plugins.import_from_flags()
    tf.config.set_visible_devices([], "GPU")
    loop.quiet_library_logs()
    results = loop.evaluate_checkpoint(FLAGS.config, FLAGS.workdir, FLAGS.step)
    print(json.dumps(results, indent=2, sort_keys=True))


if __name__ == "__main__":
    logging.set_verbosity(logging.INFO)
    app.run(main)
