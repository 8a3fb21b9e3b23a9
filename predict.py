"""Predicts every task on your own images with a trained model:

    python predict.py --config CONFIG --workdir DIR --images IN_DIR_OR_GLOB --out OUT_DIR
        [--step N] [--save_arrays]

Writes `OUT_DIR/<name>.png` per image (the input and each task's prediction, titled) and, with
`--save_arrays`, `OUT_DIR/<name>.npz` (class maps, depth in metres, unit normals, edge and
saliency probabilities), all at the image's own size. The checkpoint is only read: predict.py
runs while training goes on.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

if __name__ == "__main__":  # before the heavy imports: this may restart the process once
    from mtnets import host_memory

    host_memory.restart_with_huge_pages()

import tensorflow as tf  # noqa: E402
from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from mtnets import compilation_cache, plugins, predict  # noqa: E402
from mtnets.train import loop  # noqa: E402

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "The training run's config file.", lock_config=True)
flags.DEFINE_string("workdir", None, "The training run's directory (read only).")
flags.DEFINE_string("images", None, "A folder of JPEG/PNG images, or a glob ('photos/*.jpg').")
flags.DEFINE_string("out", None, "Folder for the pictures (and arrays) of the predictions.")
flags.DEFINE_integer("step", None, "Checkpoint step to use (default: the latest).")
flags.DEFINE_bool("save_arrays", False, "Also write the predictions as <name>.npz.")
flags.DEFINE_integer("batch_size", None, "Images per batch (default: one per local device).")
flags.mark_flags_as_required(["config", "workdir", "images", "out"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    compilation_cache.enable_from_flags()
    plugins.import_from_flags()
    tf.config.set_visible_devices([], "GPU")
    loop.quiet_library_logs()
    try:
        predict.predict_files(
            FLAGS.config,
            FLAGS.workdir,
            FLAGS.images,
            FLAGS.out,
            step=FLAGS.step,
            save_arrays=FLAGS.save_arrays,
            batch_size=FLAGS.batch_size,
        )
    except (FileNotFoundError, ValueError) as error:  # bad input: the message names it
        logging.error("%s", error)
        sys.exit(1)


if __name__ == "__main__":
    logging.set_verbosity(logging.INFO)
    app.run(main)
