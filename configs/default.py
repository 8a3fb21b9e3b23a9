"""The default experiment: MTI-Net for all six tasks on the embedded synthetic-scenes dataset.

MTI-Net (initial predictions at four scales with deep supervision, feature propagation between
scales, multi-modal distillation, HRNet heads) on `hrnet_tiny`, a narrow one-module-per-stage
HRNet (channels 8/16/32/64, see `mtnets/models/backbones/hrnet.py`), distilling at the finest
scale only (the paper's ablation; with six tasks the 30 spatial-attention blocks per scale are
half of the network's operations and dominate compile time on a CPU).
`model.mti_net.distill_all_scales=True` is the full model.

The budget is sized so that the whole run (training, then one evaluation on the 300
validation images with every task's metrics and the edge ODS/OIS/AP) fits in 4 minutes on 2
idle CPU cores once compiled, and ends with a model that has visibly learned:
- `synthetic_scenes/small`, the default scenes rendered at 64x96 (both sides divide by 32, as
  HRNet needs): a step costs a third to a quarter of one at the stored 128x160, so the same
  minutes buy 3.2 epochs instead of 0.8 (200 steps at 128x160 ended at semseg mIoU 0.32 with
  depth maps that looked like noise);
- 800 steps of batch 8 (3.2 epochs), Adam 2e-3 with poly decay to 0 at the last step (MTL's
  schedule, no warm-up: training from scratch with batch norm is stable at this rate);
- evaluation and checkpoint at the last step only: an intermediate evaluation would cost the
  run time without changing its result.
CHANGELOG.md (2026-12-03) has the measured times and results. Variants:
`--config=configs/default.py:model.backbone=hrnet_w18_small_v2` (the reference's backbone),
`model.name=multi_task_baseline`, `dataset.config=default` (128x160), or flags such as
`--config.num_train_steps=100`.
"""

import ml_collections

from mtnets.config_utils import apply_overrides, checkpoints_field
from mtnets.models.registry import model_defaults
from mtnets.weighting.registry import weighting_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0

    config.dataset = ml_collections.ConfigDict()
    config.dataset.name = "synthetic_scenes"
    # Builder config: "small" (64x96), "default" (128x160) or "tiny" (32x40, for tests);
    # None: the builder's default.
    config.dataset.config = _optional(str, "small")
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
    # (h, w): evaluate at the labels' own size, padded to this canvas (PASCAL's variable sizes);
    # None: labels transformed with the images, as in training.
    config.dataset.eval_canvas = ml_collections.config_dict.placeholder(tuple)
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
    # model), `output_stride` (MTAN, cross-stitch, NDDR-CNN: the trunk's output stride, 8 as
    # MTL's ResnetDilated) and `alpha` / `beta` (the initial self / cross weights of the
    # cross-stitch and NDDR units).
    config.model.update(ml_collections.ConfigDict(model_defaults()))
    config.model.mti_net.distill_all_scales = False  # this experiment: the finest scale only
    # Cross-stitch / NDDR-CNN: {task: path} of each task's trained single-task run (workdir,
    # checkpoint directory or MTL file); all None: every task network starts from
    # model.pretrained. See mtnets/train/warm_start.py.
    config.model.single_task_checkpoints = checkpoints_field()

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
    # The budget of the default run (module docstring): 800 steps = 3.2 epochs at 64x96, with
    # one evaluation and one checkpoint, at the end.
    config.num_train_steps = _steps(800)
    config.num_train_epochs = ml_collections.config_dict.placeholder(float)
    config.log_every_steps = 50
    config.eval_every_steps = _steps(800)
    config.eval_every_epochs = ml_collections.config_dict.placeholder(float)
    config.checkpoint_every_steps = _steps(800)
    config.checkpoint_every_epochs = ml_collections.config_dict.placeholder(float)
    config.keep_checkpoints = 3
    config.num_eval_images = 4  # examples drawn in the predictions PNG and TensorBoard

    config.eval = ml_collections.ConfigDict()
    # Edge ODS/OIS/AP (host-side, ~1 s per 128x160 image): "off", "final" (the last train step
    # and eval.py) or "all" (every evaluation).
    config.eval.edge_benchmark = "final"
    config.eval.edge_max_dist = ml_collections.config_dict.placeholder(float)  # None: dataset's
    # Single-task eval JSON files for Delta_m: {task: path}, a path or a list of paths; None:
    # no Delta_m.
    config.eval.delta_m_references = ml_collections.config_dict.placeholder(object)

    config.num_devices = -1  # devices used; -1: all
    config.model_parallelism = 1  # devices of the mesh's `model` axis (large params split)
    config.dtype = "float32"
    return apply_overrides(config, arg)


def _steps(value: int) -> ml_collections.FieldReference:
    """An int field that may also be None (when its `*_epochs` twin is set)."""
    return _optional(int, value)


def _optional(kind: type, value) -> ml_collections.FieldReference:
    """A field of type `kind` that configs may also set to None (a `*_steps` field whose
    `*_epochs` twin is set, a builder config left to the builder). A plain field set to None
    loses its type, and the command line could not set it again."""
    field = ml_collections.config_dict.placeholder(kind)
    field.set(value)
    return field
