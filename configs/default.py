"""The default experiment: all six tasks on the embedded synthetic-scenes dataset.

A shared-encoder baseline (a small ResNet and an HRNet-style head per task) trained for a few
minutes on a CPU. Variants: `--config=configs/default.py:batch_size=8,model.backbone=resnet18`
or flags such as `--config.num_train_steps=100`.
"""

import ml_collections

from mtnets.config_utils import apply_overrides


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0

    config.dataset = ml_collections.ConfigDict()
    config.dataset.name = "synthetic_scenes"
    config.dataset.config = "default"  # builder config: "default" (128x160) or "tiny" (32x40)
    config.dataset.data_dir = ml_collections.config_dict.placeholder(str)  # None: TFDS default
    config.dataset.train_split = "train"
    config.dataset.eval_split = "validation"
    config.dataset.shuffle_buffer = 1000
    # Joint augmentation: a random crop of 1/s of each side, s ~ U[scale_min, scale_max],
    # resized back (labels nearest, depth / s), then a horizontal flip with probability 1/2.
    config.dataset.scale_min = 1.0
    config.dataset.scale_max = 1.5
    config.dataset.flip = True

    config.tasks = ("semseg", "depth", "normals", "edge", "sal", "human_parts")
    config.aux_tasks = ()

    config.model = ml_collections.ConfigDict()
    config.model.name = "multi_task_baseline"
    config.model.backbone = "resnet_small"
    config.model.head = "hrnet"
    config.model.head_width = 48  # hidden channels of each head; 0: the reference's (sum)

    config.loss = ml_collections.ConfigDict()
    config.loss.edge_pos_weight = 0.95  # MTL's edge_w

    # Fixed loss weights; the PASCAL-Context ones of the MTL configs (REFERENCE.md §6).
    config.weighting = ml_collections.ConfigDict()
    config.weighting.name = "fixed"
    config.weighting.weights = ml_collections.ConfigDict(
        dict(semseg=1.0, depth=1.0, normals=10.0, edge=50.0, sal=5.0, human_parts=2.0)
    )

    config.optimizer = ml_collections.ConfigDict()
    config.optimizer.name = "adam"
    config.optimizer.learning_rate = 2e-3
    config.optimizer.weight_decay = 1e-4  # coupled L2, as torch.optim.Adam(weight_decay=...)
    config.optimizer.momentum = 0.9  # SGD only

    config.schedule = ml_collections.ConfigDict()
    config.schedule.name = "poly"  # lr * (1 - step / num_train_steps) ** power
    config.schedule.power = 0.9
    config.schedule.step_size = 0  # "step": multiply by gamma every step_size steps
    config.schedule.gamma = 0.5

    config.batch_size = 8  # global, over all devices and processes
    config.num_train_steps = 1000
    config.log_every_steps = 50
    config.eval_every_steps = 500
    config.checkpoint_every_steps = 500
    config.keep_checkpoints = 3
    config.num_eval_images = 4  # examples drawn in the predictions PNG and TensorBoard

    config.num_devices = -1  # devices on the data axis; -1: all
    config.dtype = "float32"
    return apply_overrides(config, arg)
