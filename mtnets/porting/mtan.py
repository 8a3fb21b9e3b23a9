"""Reference state dicts -> Flax variables for the MTAN family (lorenmt/mtan and MTL names).

`variables_from_reference(config, state_dict)` reads:

- lorenmt/mtan SegNet models (`config.model.name` `segnet_*`, `MTAN:im2im_pred/model_segnet_*.py`):
  `encoder_block.0.0.weight`, `encoder_att.1.3.0.weight`, `pred_task2.1.bias`, ... Tasks map to
  the reference's by name: semseg = task 1 (index 0), depth = 2, normals = 3; single-task
  models (`segnet_single`, `segnet_stan`) use `pred_task` and attention index 0.
  `logsigma` (the uncertainty-weighting log-variances) belongs to the loss weighting, not the
  model: it is skipped here and `reference_logsigma` returns it as `{task: value}`.
- MTL models (`mtan`, `cross_stitch`, `nddr_cnn`; `MTL:models/{mtan,cross_stitch,nddr_cnn}.py`
  on `ResnetDilated`): `backbone.layer1.0.conv1.weight`, `heads.semseg.0.convs.1.0.weight`,
  `attention_2.depth.0.weight`, `cross_stitch.layer1.cross_stitch_unit.semseg.depth.param`,
  `nddr.conv.layer.semseg.0.weight`, ... A `module.` prefix (MTL saves DataParallel models) is
  stripped.

Every key must be used (else a ValueError lists the leftovers) and the result must have the
model's exact paths and shapes. Our models return logits and unnormalised normals;
`lorenmt_outputs` applies the reference heads' log-softmax and L2-normalisation for
comparisons with lorenmt's outputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mtnets import tasks as tasks_lib
from mtnets.porting.common import LEAF_NAMES, StateDict, check_shapes, conv_kernel, nest

# lorenmt's task order: pred_task1 / attention 0 = semantic, 2 = depth, 3 = normal.
LORENMT_TASKS = ("semseg", "depth", "normals")


class _Writer:
    """Collects flat `path -> array` params and batch stats from a `StateDict`."""

    def __init__(self, sd: StateDict):
        self.sd = sd
        self.params: dict[str, np.ndarray] = {}
        self.stats: dict[str, np.ndarray] = {}

    def conv(self, path: str, prefix: str) -> None:
        for k, v in self.sd.conv(prefix).items():
            self.params[f"{path}/{k}"] = v

    def bn(self, path: str, prefix: str) -> None:
        params, stats = self.sd.batch_norm(prefix)
        for k, v in params.items():
            self.params[f"{path}/{k}"] = v
        for k, v in stats.items():
            self.stats[f"{path}/{k}"] = v

    def stack(self, path: str, layers: Sequence[tuple[str, str]]) -> None:
        """A `ConvStack` (`conv_{n}`, `bn_{n}`) from (conv prefix, bn prefix) pairs."""
        for n, (c, b) in enumerate(layers):
            self.conv(f"{path}/conv_{n}", c)
            self.bn(f"{path}/bn_{n}", b)

    def variables(self) -> dict[str, Any]:
        out = {"params": nest(self.params)}
        if self.stats:
            out["batch_stats"] = nest(self.stats)
        return out


def _seq(prefix: str, convs: int) -> list[tuple[str, str]]:
    """The conv/BN pairs of an `nn.Sequential(conv, bn, relu, conv, bn, relu, ...)`."""
    return [(f"{prefix}.{3 * m}", f"{prefix}.{3 * m + 1}") for m in range(convs)]


def _conv_block(prefix: str, stage: int, rep: int) -> list[tuple[str, str]]:
    """`conv_block_enc/dec[stage]`: one `conv_layer` for stages 0, 1, two nested ones after."""
    if stage < 2:
        return _seq(prefix, rep)
    return _seq(f"{prefix}.0", rep) + _seq(f"{prefix}.1", rep)


def _shared_segnet(w: _Writer, rep: int, path: str = "segnet") -> None:
    for i in range(5):
        w.stack(f"{path}/encoder_{i}", _seq(f"encoder_block.{i}", rep))
        w.stack(f"{path}/encoder_conv_{i}", _conv_block(f"conv_block_enc.{i}", i, rep))
        w.stack(f"{path}/decoder_{i}", _seq(f"decoder_block.{i}", rep))
        w.stack(f"{path}/decoder_conv_{i}", _conv_block(f"conv_block_dec.{i}", i, rep))


def _head(w: _Writer, path: str, prefix: str) -> None:
    w.conv(f"{path}/conv_0", f"{prefix}.0")
    w.conv(f"{path}/conv_1", f"{prefix}.1")


def _attention(w: _Writer, path: str, prefix: str) -> None:
    w.conv(f"{path}/conv_0", f"{prefix}.0")
    w.bn(f"{path}/bn_0", f"{prefix}.1")
    w.conv(f"{path}/conv_1", f"{prefix}.3")
    w.bn(f"{path}/bn_1", f"{prefix}.4")


def _lorenmt_index(tasks: Sequence[str], single: bool) -> dict[str, tuple[int, str]]:
    """`{task: (attention index, head prefix)}` of lorenmt's names for our tasks."""
    unknown = [t for t in tasks if t not in LORENMT_TASKS]
    if unknown:
        raise ValueError(
            f"lorenmt/mtan models have the tasks {LORENMT_TASKS}; config.tasks has {unknown}."
        )
    if single:
        if len(tasks) != 1:
            raise ValueError(f"A single-task lorenmt model takes one task, got {list(tasks)}.")
        return {tasks[0]: (0, "pred_task")}
    return {t: (LORENMT_TASKS.index(t), f"pred_task{LORENMT_TASKS.index(t) + 1}") for t in tasks}


def _segnet_variables(name: str, tasks: Sequence[str], sd: StateDict) -> dict[str, Any]:
    w = _Writer(sd)
    index = _lorenmt_index(tasks, single=name in ("segnet_single", "segnet_stan"))
    if name in ("segnet_mtan", "segnet_stan"):
        _shared_segnet(w, 1)
        for i in range(5):
            w.stack(f"encoder_block_att_{i}", _seq(f"encoder_block_att.{i}", 1))
            w.stack(f"decoder_block_att_{i}", _seq(f"decoder_block_att.{i}", 1))
        for task, (t, _) in index.items():
            for i in range(5):
                _attention(w, f"encoder_att_{task}_{i}", f"encoder_att.{t}.{i}")
                _attention(w, f"decoder_att_{task}_{i}", f"decoder_att.{t}.{i}")
    elif name in ("segnet_single", "segnet_split", "segnet_split_wide", "segnet_split_deep"):
        _shared_segnet(w, 2 if name == "segnet_split_deep" else 1)
    elif name == "segnet_dense":
        for i in range(5):
            convs = 2 if i < 2 else 3
            w.stack(f"encoder_{i}", _seq(f"encoder_block.{i}", convs))
            w.stack(f"decoder_{i}", _seq(f"decoder_block.{i}", convs))
    if name in ("segnet_dense", "segnet_cross"):
        for task, (t, _) in index.items():
            for i in range(5):
                convs = 2 if i < 2 else 3
                w.stack(f"encoder_{task}_{i}", _seq(f"encoder_block_t.{t}.{i}", convs))
                w.stack(f"decoder_{task}_{i}", _seq(f"decoder_block_t.{t}.{i}", convs))
    if name == "segnet_cross":
        columns = [t for _, (t, _) in index.items()]
        w.params["cs_encoder"] = sd.take("cs_unit_encoder")[:, columns]
        w.params["cs_decoder"] = sd.take("cs_unit_decoder")[:, columns]
    for task, (_, head) in index.items():
        _head(w, f"head_{task}", head)
    return w.variables()


# ---------------------------------------------------------------------------------------------
# MTL ResNet models: every leaf of our variable tree names its reference key.
# ---------------------------------------------------------------------------------------------

# MTL's order of TASKS.NAMES, which fixes the concatenation order of NDDR-CNN's input blocks.
MTL_TASK_ORDER = tasks_lib.MTL_TASK_ORDER
_NDDR_STAGES = {"stem": "conv", "layer1": "layer1_without_conv"}
_SEQ_CONV_BN = {"conv": "0", "bn": "1"}


def _resnet_key(parts: Sequence[str]) -> str:
    """torchvision names: `conv1`, `bn1`, `layer<s>.<i>.{conv1..bn3,downsample.0/1}`."""
    if len(parts) == 1:
        return parts[0]
    stage, index = parts[0].removeprefix("layer").split("_")
    return f"layer{stage}.{index}.{_block_key(parts[1])}"


def _block_key(name: str) -> str:
    return {"downsample_conv": "downsample.0", "downsample_bn": "downsample.1"}.get(name, name)


def _deeplab_key(parts: Sequence[str]) -> str:
    """`DeepLabHead` = Sequential(ASPP, Conv2d, BN, ReLU, Conv2d) (`MTL:models/aspp.py`)."""
    if parts[0] == "aspp":
        branch, layer = parts[1], parts[2]
        if branch.startswith("branch_"):
            return f"0.convs.{branch[-1]}.{_SEQ_CONV_BN[layer]}"
        if branch == "pool":  # Sequential(AdaptiveAvgPool2d, Conv2d, BatchNorm2d, ReLU)
            return f"0.convs.4.{ {'conv': '1', 'bn': '2'}[layer] }"
        return f"0.project.{_SEQ_CONV_BN[layer]}"
    if parts[0] == "conv_bn":
        return {"conv": "1", "bn": "2"}[parts[1]]
    return "4"  # predict


def _resnet_model_key(modules: Sequence[str]) -> str:
    """The reference's module prefix of our module path in the ResNet MTAN family."""
    head, rest = modules[0], modules[1:]
    if head == "backbone":
        return f"backbone.{_resnet_key(rest)}"
    if head.startswith("backbone_"):
        return f"backbone.{head.removeprefix('backbone_')}.{_resnet_key(rest)}"
    if head.startswith("head_"):
        return f"heads.{head.removeprefix('head_')}.{_deeplab_key(rest)}"
    if head.startswith("attention_"):
        stage, task = head.removeprefix("attention_").split("_", 1)
        layer = {"conv_0": "0", "bn_0": "1", "conv_1": "3", "bn_1": "4"}[rest[0]]
        return f"attention_{stage}.{task}.{layer}"
    if head.startswith("refine_"):
        return f"{head}.0.{_block_key(rest[0])}"
    raise KeyError(f"no reference name for module {'/'.join(modules)}")


def _resnet_variables(config, tasks: Sequence[str], sd: StateDict) -> dict[str, Any]:
    from flax.traverse_util import flatten_dict

    from mtnets.models import create_model

    model = create_model(config)
    images = jnp.zeros((1, 64, 64, 3), jnp.float32)
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), images))
    flat = {}
    reference_order = sorted(tasks, key=MTL_TASK_ORDER.index)
    for path, leaf in flatten_dict(shapes).items():
        collection, *modules, name = path
        if collection == "params" and not modules and name.startswith("cross_stitch_layer"):
            stage = name.removeprefix("cross_stitch_")
            flat[path] = np.stack(
                [
                    np.stack(
                        [
                            sd.take(f"cross_stitch.{stage}.cross_stitch_unit.{i}.{j}.param")
                            for j in tasks
                        ]
                    )
                    for i in tasks
                ]
            )
            continue
        if modules[0].startswith("nddr_"):
            stage = modules[0].removeprefix("nddr_")
            layer, t = modules[1].split("_")
            task = tasks[int(t)]
            key = f"nddr.{_NDDR_STAGES.get(stage, stage)}.layer.{task}.{_SEQ_CONV_BN[layer]}"
            array = sd.take(f"{key}.{LEAF_NAMES[collection, name]}")
            if name == "kernel":  # input blocks: the reference's task order -> ours
                c = array.shape[0]
                blocks = {t: array[:, n * c : (n + 1) * c] for n, t in enumerate(reference_order)}
                array = conv_kernel(np.concatenate([blocks[t] for t in tasks], axis=1))
            flat[path] = array
            continue
        key = f"{_resnet_model_key(modules)}.{LEAF_NAMES[collection, name]}"
        array = sd.take(key)
        flat[path] = conv_kernel(array) if name == "kernel" else array
        if flat[path].shape != leaf.shape:
            raise ValueError(f"{key}: shape {flat[path].shape}, the model has {leaf.shape}")
    return nest({"/".join(k): v for k, v in flat.items()})


def single_task_state_dicts(
    config, state_dicts: Mapping[str, Mapping[str, Any]]
) -> dict[str, np.ndarray]:
    """A cross-stitch / NDDR-CNN state dict assembled as MTL does it (`MTL:utils/
    common_config.py:86-119`): each task's backbone and head from its trained single-task
    model (`{task: SingleTaskModel state dict}`, keys `backbone.*`, `decoder.*`, optionally
    `module.`-prefixed), and the units at their initial values (`config.model.alpha` on the
    own task, `config.model.beta` across; NDDR BatchNorm at identity).
    Pass the result to `variables_from_reference`."""
    name, tasks = config.model.name, tuple(config.tasks)
    if name not in ("cross_stitch", "nddr_cnn"):
        raise ValueError(
            f"Single-task initialisation is for cross_stitch / nddr_cnn, not {name!r}."
        )
    missing = [t for t in tasks if t not in state_dicts]
    if missing:
        raise ValueError(f"No single-task state dict for task(s) {missing}.")
    out: dict[str, np.ndarray] = {}
    for task in tasks:
        for key, value in _strip_module(state_dicts[task]).items():
            part, _, rest = key.partition(".")
            if part not in ("backbone", "decoder"):
                raise ValueError(f"Unexpected key {key!r} in the single-task state dict of {task}.")
            out[f"{'backbone' if part == 'backbone' else 'heads'}.{task}.{rest}"] = np.asarray(
                value
            )
    alpha, beta = config.model.alpha, config.model.beta
    stage_channels = _trunk_channels(config)
    if name == "cross_stitch":
        for s, c in enumerate(stage_channels[1:], start=1):
            for i in tasks:
                for j in tasks:
                    value = np.full((c,), alpha if i == j else beta, np.float32)
                    out[f"cross_stitch.layer{s}.cross_stitch_unit.{i}.{j}.param"] = value
        return out
    reference_order = sorted(tasks, key=MTL_TASK_ORDER.index)
    for stage, c in zip(
        ("conv", "layer1_without_conv", "layer2", "layer3", "layer4"), stage_channels, strict=True
    ):
        for n, task in enumerate(reference_order):
            weights = np.full(len(tasks), beta, np.float32)
            weights[n] = alpha
            kernel = np.concatenate([w * np.eye(c, dtype=np.float32) for w in weights], axis=1)
            prefix = f"nddr.{stage}.layer.{task}"
            out[f"{prefix}.0.weight"] = kernel[:, :, None, None]
            out[f"{prefix}.1.weight"] = np.ones(c, np.float32)
            out[f"{prefix}.1.bias"] = np.zeros(c, np.float32)
            out[f"{prefix}.1.running_mean"] = np.zeros(c, np.float32)
            out[f"{prefix}.1.running_var"] = np.ones(c, np.float32)
    return out


def _trunk_channels(config) -> list[int]:
    """Channels after the stem and after stages 1-4 of `config.model.backbone`."""
    from mtnets.models.backbones.resnet import RESNETS

    spec = RESNETS[config.model.backbone]
    return [spec["width"]] + [spec["width"] * 2**s * spec["block"].expansion for s in range(4)]


def variables_from_single_task_variables(
    variables: Mapping[str, Any], singles: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """Our own cross-stitch / NDDR-CNN variables initialised from our trained single-task
    models: `variables` a fresh `init` of the network, `singles` `{task: variables of a
    single_task_baseline}` with the same ResNet (`backbone`) and a DeepLab head
    (`heads_<task>`); their subtrees replace `backbone_<task>` and `head_<task>`, and the units
    keep their initial values."""
    out = {c: dict(tree) for c, tree in variables.items()}
    for task, single in singles.items():
        for collection, tree in single.items():
            if collection not in out:
                continue
            for src, dst in (("backbone", f"backbone_{task}"), (f"heads_{task}", f"head_{task}")):
                if dst not in out[collection]:
                    raise ValueError(f"The multi-task variables have no {collection}/{dst}.")
                if src not in tree:
                    raise ValueError(
                        f"The single-task variables of {task} have no {collection}/{src}."
                    )
                out[collection][dst] = tree[src]
    return out


def reference_logsigma(state_dict: Mapping[str, Any], tasks: Sequence[str] = LORENMT_TASKS):
    """lorenmt's uncertainty-weighting parameters `logsigma` (log variances, init -0.5) as
    `{task: float}` for `tasks`, or None when the state dict has none. They seed the state of
    the uncertainty weighting strategy, which owns them in mtnets."""
    if "logsigma" not in state_dict:
        return None
    values = np.asarray(state_dict["logsigma"]).reshape(-1)
    return {t: float(values[LORENMT_TASKS.index(t)]) for t in tasks}


def lorenmt_outputs(predictions: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
    """Our predictions as lorenmt's heads return them: log-softmax over the classes of
    `semseg`, L2-normalised `normals` (`MTAN:im2im_pred/model_segnet_mtan.py:174-177`; the
    normals task's own rule, `Task.output`, which differs only for a zero vector: lorenmt's
    has no epsilon), other tasks unchanged."""
    out = dict(predictions)
    if "semseg" in out:
        out["semseg"] = jax.nn.log_softmax(out["semseg"], axis=-1)
    if "normals" in out:
        out["normals"] = tasks_lib.get_task("normals").output(out["normals"])
    return out


def _strip_module(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Drops the `module.` prefix of DataParallel checkpoints (MTL saves those)."""
    if state_dict and all(k.startswith("module.") for k in state_dict):
        return {k[len("module.") :]: v for k, v in state_dict.items()}
    return dict(state_dict)


def _segnet_family(config, sd: StateDict) -> dict[str, Any]:
    return _segnet_variables(config.model.name, tuple(config.tasks), sd)


def _resnet_family(config, sd: StateDict) -> dict[str, Any]:
    return _resnet_variables(config, tuple(config.tasks), sd)


class MTANConversion:
    """The conversion of one family's reference state dicts (`read(config, sd)` collects the
    variables). A model's registry entry names one of the instances below
    (`weights="mtnets.porting.mtan:SEGNET_FAMILY"`); calling it converts."""

    def __init__(self, read):
        self.read = read

    def __call__(self, config, state_dict: Mapping[str, Any]) -> dict[str, Any]:
        return variables_from_reference(config, state_dict)


SEGNET_FAMILY = MTANConversion(_segnet_family)  # lorenmt/mtan's SegNet models
RESNET_FAMILY = MTANConversion(_resnet_family)  # MTL's MTAN, cross-stitch, NDDR-CNN


def variables_from_reference(config, state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Flax variables of `create_model(config)` from the reference's state dict.

    `state_dict` maps PyTorch names to arrays (e.g. `{k: v.numpy() for k, v in
    model.state_dict().items()}`). Raises if a key is left over or a shape differs.
    """
    from mtnets.models import create_model
    from mtnets.models.registry import converted_by, reference_weights

    name = config.model.name
    conversion = reference_weights(name)
    if not isinstance(conversion, MTANConversion):
        raise ValueError(
            f"variables_from_reference (MTAN family) does not know config.model.name {name!r}; "
            f"it reads {', '.join(converted_by(__name__))}."
        )
    sd = StateDict(_strip_module(state_dict), ignore=("logsigma",))
    variables = conversion.read(config, sd)
    sd.finish()
    model = create_model(config)
    images = jnp.zeros((1, 64, 64, 3), jnp.float32)
    expected = jax.eval_shape(lambda: model.init(jax.random.key(0), images))
    check_shapes(variables, expected)
    return jax.tree.map(jnp.asarray, variables)
