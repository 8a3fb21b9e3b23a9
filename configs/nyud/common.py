"""What the configs reproducing the MTL reference's YAML files share.

Every `configs/{nyud,pascal}/<name>.py` corresponds to the reference's `<name>.yml` in each of
its backbone directories (`configs/nyud/hrnet18/`, `configs/nyud/resnet50/`,
`configs/pascal/hrnet18/`, `configs/pascal/resnet18/`). `get_config(arg)` takes the launch
string `backbone=...,aux=...,<key>=<value>,...`:
- `backbone`: a reference directory, `hrnet18` (HRNet-W18-small-v2 + HRNet heads, what the
  reference calls `hrnet_w18`), `resnet50` / `resnet18` (dilated, output stride 8, + DeepLab
  heads), or one of our HRNets `hrnet_w18_small_v2`, `hrnet_w18` (full W18), `hrnet_w48`
  (the paper's best NYUD model), which take the `hrnet18` directory's hyper-parameters.
  Default: the first directory that has the file (`hrnet18`).
- `aux` (MTI-Net and PAD-Net on NYUD): `edge+normals` selects `<name>+edges_normals.yml`.
- anything else overrides a config field (`batch_size=4,optimizer.learning_rate=1e-3`).

Hyper-parameters are the YAML's. Durations are stated in epochs, as in the YAML, and become
steps at run time from the examples an epoch really reads (`mtnets.config_utils.
resolve_durations`): `epochs * (examples // batch)`, the step count of the reference's
`drop_last=True` loader; for human parts alone, the examples are the images that show a person.
The backbone starts from ImageNet, as the YAML's `pretrained: True`: `model.pretrained=
"imagenet"` reads the backbone's file from the weights directory (`python -m mtnets.weights
fetch resnet18`; the HRNet files must be downloaded by hand), and `model.pretrained=none`
trains from scratch. Every setting that differs from the reference is listed, with the reason,
in docs/paper_differences.md.
"""

from __future__ import annotations

import ml_collections

from configs.default import get_config as default_config
from mtnets.config_utils import apply_overrides

# Reference backbone directory -> (our backbone, head, dilated).
DIRECTORIES = {
    "hrnet18": ("hrnet_w18_small_v2", "hrnet", False),
    "resnet50": ("resnet50", "deeplab", True),
    "resnet18": ("resnet18", "deeplab", True),
}
HRNETS = ("hrnet_w18_small_v2", "hrnet_w18", "hrnet_w48")
# The reference's AUXILARY_TASKS order (`MTL:utils/config.py:15-86` appends in this order).
TASK_ORDER = ("semseg", "human_parts", "sal", "normals", "edge", "depth")


def split_arg(arg: str | None, selectors: tuple[str, ...]) -> tuple[dict[str, str], str]:
    """`"backbone=resnet50,batch_size=4"` -> `({"backbone": "resnet50"}, "batch_size=4")`."""
    chosen, rest = {}, []
    for item in filter(None, (arg or "").split(",")):
        key, _, value = item.partition("=")
        if key.strip() in selectors:
            chosen[key.strip()] = value.strip()
        else:
            rest.append(item)
    return chosen, ",".join(rest)


def resolve_backbone(choice: str | None, directories: dict[str, dict], file: str) -> tuple:
    """`(directory, backbone, head, dilated)` for a `backbone=` choice; a clear error naming
    the choices this file has."""
    choice = choice or next(iter(directories))
    if choice in HRNETS and "hrnet18" in directories:
        return "hrnet18", choice, "hrnet", False
    if choice in directories:
        return (choice, *DIRECTORIES[choice])
    options = list(directories) + (list(HRNETS) if "hrnet18" in directories else [])
    raise ValueError(f"{file}: unknown backbone={choice!r}; choose one of {', '.join(options)}.")


def mtl_config(
    *,
    file: str,
    dataset: str,
    model: str,
    tasks: tuple[str, ...],
    directories: dict[str, dict],
    arg: str | None,
    aux_variants: dict[str, tuple[str, ...]] | None = None,
    weights: dict[str, float] | None = None,
) -> ml_collections.ConfigDict:
    """The config of one reference YAML. `directories` maps each backbone directory that has
    the file to its hyper-parameters (`epochs`, `batch`, `optimizer`, `lr`); `aux_variants`
    maps `aux=` values to the auxiliary tasks (the key "" is the plain YAML)."""
    chosen, overrides = split_arg(arg, ("backbone", "aux"))
    directory, backbone, head, dilated = resolve_backbone(chosen.get("backbone"), directories, file)
    hyper = directories[directory]
    aux_variants = aux_variants or {"": ()}
    if chosen.get("aux", "") not in aux_variants:
        raise ValueError(
            f"{file}: unknown aux={chosen['aux']!r}; choose one of "
            f"{', '.join(repr(k) for k in aux_variants)}."
        )
    aux = aux_variants[chosen.get("aux", "")]

    config = default_config()
    set_dataset(config.dataset, dataset)
    config.tasks = tuple(tasks)
    config.aux_tasks = tuple(aux)
    config.model.name = model
    config.model.backbone = backbone
    config.model.dilated = dilated
    config.model.head = head
    config.model.head_width = 0
    config.model.pretrained = "imagenet"  # the YAML's backbone_kwargs.pretrained: True
    # The full MTI-Net (the default experiment distils at the finest scale only).
    config.model.mti_net.num_scales = 4
    config.model.mti_net.use_fpm = True
    config.model.mti_net.distill_all_scales = True
    config.model.mti_net.fpm_softmax = "reference"
    config.weighting.name = "fixed"
    weights = weights or {tasks[0]: 1.0}
    used = {t: w for t, w in weights.items() if t in tasks or t in aux}
    config.weighting.fixed.weights = ml_collections.ConfigDict(used)
    config.loss.edge_pos_weight = 0.95
    config.optimizer.name = hyper["optimizer"]
    config.optimizer.learning_rate = hyper["lr"]
    config.optimizer.weight_decay = 1e-4
    config.optimizer.momentum = 0.9
    config.schedule.name = "poly"
    config.schedule.power = 0.9
    config.batch_size = hyper["batch"]
    config.num_train_steps = None
    config.num_train_epochs = hyper["epochs"]
    config.log_every_steps = 50
    # The reference evaluates in its last 10 epochs only (`eval_final_10_epochs_only`).
    config.eval_every_steps = None
    config.eval_every_epochs = 10
    config.checkpoint_every_steps = None
    config.checkpoint_every_epochs = 1
    config.num_eval_images = 4
    return apply_overrides(config, overrides)


def resnet_mtl_config(
    *,
    file: str,
    dataset: str,
    model: str,
    tasks: tuple[str, ...],
    directories: dict[str, dict],
    weights: dict[str, float],
    arg: str | None,
    alpha_beta: tuple[float, float] | None = None,
) -> ml_collections.ConfigDict:
    """The config of a YAML of the ResNet family (MTAN, cross-stitch, NDDR-CNN): `mtl_config`
    with the dilated trunk's output stride 8 and, for the networks of per-task ResNets
    (`alpha_beta` given), the units' initial self / cross weights and
    `model.single_task_checkpoints`. The launch string's other items apply last."""
    chosen, overrides = split_arg(arg, ("backbone",))
    config = mtl_config(
        file=file,
        dataset=dataset,
        model=model,
        tasks=tasks,
        directories=directories,
        arg=",".join(f"{k}={v}" for k, v in chosen.items()),
        weights=weights,
    )
    config.model.output_stride = 8  # MTL ResnetDilated(dilate_scale=8)
    if alpha_beta is not None:
        config.model.alpha, config.model.beta = alpha_beta
        # `model.single_task_checkpoints` (a field of configs/default.py, all None) is {task:
        # path}: every task's trained single-task network, which the reference starts from
        # (all tasks or none; None: every task's ResNet starts from model.pretrained, ImageNet
        # by default; docs/paper_differences.md). A path is the workdir of our single-task run
        # (`configs/<dataset>/<task>.py:backbone=<the same ResNet>`; its latest checkpoint, or
        # give `<workdir>/checkpoints/<step>`) or an MTL single-task `best_model.pth.tar` /
        # `.npz`, e.g. `--config.model.single_task_checkpoints.semseg=/runs/semseg` or
        # `model.single_task_checkpoints.semseg=/runs/semseg` in the launch string. See
        # `mtnets.train.warm_start`.
    return apply_overrides(config, overrides)


def set_dataset(section: ml_collections.ConfigDict, dataset: str) -> ml_collections.ConfigDict:
    """Sets the data section of configs/default.py to the reference's dataset, image size and
    augmentation for `dataset`; the other fields keep their defaults."""
    section.name = dataset
    section.config = None  # the builder's only config
    if dataset == "nyud_mt":
        section.augmentation = "nyud"  # flip, centre zoom {1, 1.2, 1.5} (depth / s)
        section.image_size = (480, 640)
    else:
        section.augmentation = "pascal"  # flip, rotation ±20°, scale 0.75-1.25, resize to 512²
        section.image_size = (512, 512)
    return section


def ordered(tasks) -> tuple[str, ...]:
    """`tasks` in the reference's task order."""
    return tuple(t for t in TASK_ORDER if t in tasks)
