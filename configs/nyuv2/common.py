"""What lorenmt/mtan's NYUv2 experiments share (`MTAN:im2im_pred/model_segnet_*.py`).

Every `configs/nyuv2/segnet_<model>.py` is one of the reference's training scripts. The
recipe (docs/reference_notes.md#mtan, #datasets): the preprocessed 13-class NYUv2 at 288x384
(`nyuv2_mtan`),
images fed unnormalised, batch 2, Adam lr 1e-4 (no weight decay), the learning rate halved
every 100 epochs (`StepLR(100, 0.5)`), 200 epochs, lorenmt's losses (NLL, masked L1 depth,
1 - cosine normals), no augmentation unless asked (`--apply_augmentation`).

Launch string (`--config=configs/nyuv2/segnet_mtan.py:weighting=dwa,aug=True`):
- `weighting`: `equal` (the default; a sum of the losses), `dwa` (T = 2, updated every epoch
  from the epoch-mean losses) or `uncertainty` (log-variances initialised to -0.5), the
  reference's `--weight equal|dwa|uncert` (multi-task scripts only);
- `task` (single-task scripts, `--task semantic|depth|normal`): `semseg`, `depth`, `normals`;
- `aug=True`: lorenmt's random scale-crop {1, 1.2, 1.5} and flip (`--apply_augmentation`);
- anything else overrides a config field.

Durations are stated in epochs and become steps at run time from the training split's size
(`mtnets.config_utils.resolve_durations`). The reference's loader keeps the last, incomplete
batch (795 images -> 398 batches, the last of 1 image); our stream runs the epochs end to end
and batches across their boundary, and an epoch counts the full batches, 795 // 2 = 397 steps:
200 epochs are 79,400 steps, the rate halves at step 39,700, DWA updates every 397 steps, and
evaluation runs every epoch (the published number is the mean of the last 10 epochs). See
docs/paper_differences.md.
"""

from __future__ import annotations

from configs.default import get_config as default_config
from configs.nyud.common import split_arg
from mtnets.config_utils import apply_overrides

BATCH_SIZE = 2
EPOCHS = 200
WEIGHTINGS = ("equal", "dwa", "uncertainty")
TASKS = ("semseg", "depth", "normals")


def lorenmt_config(model: str, arg: str | None, *, single_task: bool = False):
    """The config of lorenmt's script for `model` (a `segnet_*` model,
    `mtnets/models/segnet_models.py`)."""
    selectors = ("task", "aug") if single_task else ("weighting", "aug")
    chosen, overrides = split_arg(arg, selectors)
    config = default_config()  # fields not set here keep their defaults
    config.dataset.name = "nyuv2_mtan"
    config.dataset.config = None  # the builder's only config
    # config.dataset.manual_dir: the extracted nyuv2/ directory or its .zip.
    aug = chosen.get("aug", "False")
    if aug not in ("True", "False"):
        raise ValueError(f"aug must be True or False, got {aug!r}.")
    config.dataset.augmentation = "lorenmt" if aug == "True" else "none"
    config.dataset.image_size = (288, 384)
    config.dataset.image_normalization = "none"  # lorenmt feeds the stored images as they are

    if single_task:
        task = chosen.get("task", "semseg")
        if task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}.")
        config.tasks = (task,)
    else:
        config.tasks = TASKS
    config.aux_tasks = ()
    config.model.name = model  # a SegNet: backbone, head and mti_net do not apply
    config.model.pretrained = None  # lorenmt: from scratch

    config.loss.convention = "lorenmt"
    config.weighting.name = chosen.get("weighting", "equal")
    if config.weighting.name not in WEIGHTINGS:
        raise ValueError(
            f"weighting must be one of {', '.join(WEIGHTINGS)}, got {config.weighting.name!r}."
        )
    config.weighting.dwa.temperature = 2.0  # DWA's T (`--temp`)
    config.weighting.dwa.update_every_steps = 0  # DWA: once per epoch (the run's epoch length)
    config.weighting.uncertainty.init = -0.5  # lorenmt's logsigma initial value

    config.optimizer.name = "adam"
    config.optimizer.learning_rate = 1e-4
    config.optimizer.weight_decay = 0.0
    config.schedule.name = "step"  # StepLR(step_size=100 epochs, gamma=0.5)
    config.schedule.step_size = None
    config.schedule.step_size_epochs = 100
    config.schedule.gamma = 0.5
    config.batch_size = BATCH_SIZE
    config.num_train_steps = None
    config.num_train_epochs = EPOCHS
    config.log_every_steps = 100
    config.eval_every_steps = None
    config.eval_every_epochs = 1
    config.checkpoint_every_steps = None
    config.checkpoint_every_epochs = 1
    config.num_eval_images = 4
    return apply_overrides(config, overrides)
