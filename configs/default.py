"""The default experiment: MTI-Net for all six tasks on the embedded synthetic-scenes dataset.

MTI-Net (initial predictions at four scales with deep supervision, feature propagation between
scales, multi-modal distillation, HRNet heads) on `hrnet_tiny`, a narrow one-module-per-stage
HRNet (channels 8/16/32/64, see `mtnets/models/backbones/hrnet.py`), distilling at the finest
scale only (the paper's ablation; with six tasks the 30 spatial-attention blocks per scale are
half of the network's operations and dominate compile time on a CPU), so that the whole run,
dataset build included, takes a few minutes on a 2-core CPU. `model.mti_net.distill_all_scales
=True` is the full model. Variants:
`--config=configs/default.py:model.backbone=hrnet_w18_small_v2` (the reference's backbone),
`model.name=multi_task_baseline`, or flags such as `--config.num_train_steps=100`.
"""

import ml_collections

from mtnets.config_utils import apply_overrides
from mtnets.models.registry import model_defaults
from mtnets.weighting.registry import weighting_config


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
    # The augmentation of the dataset's reference: synthetic | nyud | pascal | lorenmt | none.
    config.dataset.augmentation = "synthetic"
    config.dataset.manual_dir = ml_collections.config_dict.placeholder(str)  # archives; None:
    # <data_dir>/downloads/manual
    config.dataset.image_size = ml_collections.config_dict.placeholder(tuple)  # None: stored
    config.dataset.eval_canvas = ml_collections.config_dict.placeholder(tuple)  # PASCAL eval
    config.dataset.image_normalization = "imagenet"  # or "none" (lorenmt's raw images)

    config.tasks = ("semseg", "depth", "normals", "edge", "sal", "human_parts")
    # Tasks with intermediate predictions (MTI-Net, PAD-Net), the reference's AUXILARY_TASKS:
    # they contain the main tasks, in the reference's order; () means the main tasks only.
    config.aux_tasks = ()

    config.model = ml_collections.ConfigDict()
    config.model.name = "mti_net"
    config.model.backbone = "hrnet_tiny"
    config.model.dilated = False  # ResNets only: output stride 8 (MTL's ResnetDilated)
    config.model.head = "hrnet"  # baselines: "hrnet" or "deeplab"
    config.model.head_width = 0  # hidden channels of each HRNet head; 0: the reference's (sum)
    # Backbone start: None / "none" (from scratch), "imagenet" (the backbone's ImageNet file in
    # the weights directory, $MTNETS_WEIGHTS; see `python -m mtnets.weights`) or a file path.
    config.model.pretrained = ml_collections.config_dict.placeholder(str)
    # The models' own fields, with the defaults their registry entries declare (docs/models.md):
    # `mti_net.*` (MTI-Net's ablation switches, the paper's Tables 2 and 3; default the full
    # model), `output_stride` (MTAN, cross-stitch, NDDR-CNN) and `alpha` / `beta` (the initial
    # self / cross weights of the cross-stitch and NDDR units).
    config.model.update(ml_collections.ConfigDict(model_defaults()))
    config.model.mti_net.distill_all_scales = False  # this experiment: the finest scale only

    config.loss = ml_collections.ConfigDict()
    config.loss.edge_pos_weight = 0.95  # MTL's edge_w
    config.loss.convention = "mtl"  # or "lorenmt" (NLL, masked L1, 1 - cosine)

    # Loss weighting (docs/weighting.md): `name` is a strategy or several joined by "+"
    # ("dwa+pcgrad"); `seed` (None: config.seed) feeds the random ones; each strategy has a
    # sub-section with the defaults its module registers, e.g. `weighting.dwa.temperature`.
    # Fixed weights: the PASCAL-Context ones of the MTL configs.
    config.weighting = weighting_config("fixed")
    config.weighting.fixed.weights = ml_collections.ConfigDict(
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
    # "step": multiply by gamma every step_size steps (or step_size_epochs epochs; one of them).
    config.schedule.step_size = ml_collections.config_dict.placeholder(int)
    config.schedule.step_size_epochs = ml_collections.config_dict.placeholder(float)
    config.schedule.gamma = 0.5

    config.batch_size = 8  # global, over all devices and processes
    # Durations in steps or in epochs (exactly one of each pair; the other None). Epochs become
    # steps at run time from the examples the training stream reads per epoch
    # (`mtnets.config_utils.resolve_durations`), so a config cannot disagree with its dataset.
    config.num_train_steps = _steps(200)
    config.num_train_epochs = ml_collections.config_dict.placeholder(float)
    config.log_every_steps = 25
    config.eval_every_steps = _steps(200)
    config.eval_every_epochs = ml_collections.config_dict.placeholder(float)
    config.checkpoint_every_steps = _steps(200)
    config.checkpoint_every_epochs = ml_collections.config_dict.placeholder(float)
    config.keep_checkpoints = 3
    config.num_eval_images = 4  # examples drawn in the predictions PNG and TensorBoard

    config.eval = ml_collections.ConfigDict()
    # Edge ODS/OIS/AP (host-side, ~1 s per 128x160 image): "off", "final" (the last train step
    # and eval.py) or "all" (every evaluation).
    config.eval.edge_benchmark = "final"
    config.eval.edge_max_dist = ml_collections.config_dict.placeholder(float)  # None: dataset's
    # Single-task eval JSON files for Delta_m: {task: path}, a path or a list of paths.
    config.eval.delta_m_references = ml_collections.config_dict.placeholder(object)

    config.num_devices = -1  # devices used; -1: all
    config.model_parallelism = 1  # devices of the mesh's `model` axis (large params split)
    config.dtype = "float32"
    return apply_overrides(config, arg)


def _steps(value: int) -> ml_collections.FieldReference:
    """An int field that may also be None (when its `*_epochs` twin is set)."""
    field = ml_collections.config_dict.placeholder(int)
    field.set(value)
    return field
