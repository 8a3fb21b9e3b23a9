"""The configs of the MTL reference's experiments: they build, name the reference's settings,
and give models with the reference's parameter counts (docs/reference_notes.md#hyper-parameters,
#parameter-counts)."""

import glob
import importlib
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtnets import config_utils
from mtnets.models import create_model

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MINE = sorted(
    os.path.splitext(os.path.relpath(p, ROOT))[0].replace(os.sep, ".")
    for p in glob.glob(os.path.join(ROOT, "configs", "*", "*.py"))
    if os.path.basename(os.path.dirname(p)) in ("nyud", "pascal")
    and os.path.basename(p) not in ("__init__.py", "common.py")
    and not os.path.basename(p).startswith(("mtan", "cross_stitch", "nddr_cnn"))
)


def get(module: str, arg=None):
    return importlib.import_module(module).get_config(arg)


def params(config, size=(64, 64)) -> int:
    model = create_model(config)
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, *size, 3))))
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes["params"]))


def test_there_is_a_config_per_reference_yaml():
    names = {m.split(".", 1)[1] for m in MINE}
    assert names == {
        "nyud.semseg", "nyud.depth", "nyud.multi_task_baseline", "nyud.mti_net", "nyud.pad_net",
        "pascal.semseg", "pascal.human_parts", "pascal.sal", "pascal.normals", "pascal.edge",
        "pascal.multi_task_baseline", "pascal.multi_task_baseline_small", "pascal.mti_net",
        "pascal.mti_net_small", "pascal.pad_net", "pascal.pad_net_small",
    }  # fmt: skip


@pytest.mark.parametrize("module", MINE)
def test_every_config_validates_and_builds_its_model(module):
    config = get(module)
    config_utils.validate(config)
    assert config.model.backbone == "hrnet_w18_small_v2" and config.model.head == "hrnet"
    create_model(config)  # names are checked at construction


@pytest.mark.parametrize(
    "arg, aux, expected",
    # docs/reference_notes.md#parameter-counts, counted on the reference code.
    [(None, ("semseg", "depth"), 8_578_179),
     ("aux=edge+normals", ("semseg", "normals", "edge", "depth"), 14_838_121)],
)  # fmt: skip
def test_nyud_mti_net_variants(arg, aux, expected):
    config = get("configs.nyud.mti_net", arg)
    assert config.tasks == ("semseg", "depth") and config.aux_tasks == aux
    assert dict(config.weighting.fixed.weights) == {
        t: w
        for t, w in {"semseg": 1.0, "depth": 1.0, "normals": 10.0, "edge": 50.0}.items()
        if t in aux
    }
    assert params(config) == expected


def test_nyud_pad_net_and_baseline_parameter_counts():
    assert params(get("configs.nyud.pad_net")) == 7_019_056
    assert params(get("configs.nyud.multi_task_baseline")) == 4_019_251


def test_hyper_parameters_follow_the_reference_yaml():
    # nyud/hrnet18/mti_net.yml: Adam 1e-4, wd 1e-4, poly, 100 epochs of 795 // 8 batches.
    c = get("configs.nyud.mti_net")
    assert (c.optimizer.name, c.optimizer.learning_rate, c.optimizer.weight_decay) == (
        "adam", 1e-4, 1e-4)  # fmt: skip
    assert (c.batch_size, c.num_train_epochs, c.schedule.name) == (8, 100, "poly")
    # 100 epochs of 795 // 8 batches (the reference's drop_last loader).
    assert config_utils.resolve_durations(c, 795).num_train_steps == 100 * 99
    # pascal/hrnet18/semseg.yml: SGD 1e-2, momentum 0.9, 60 epochs of 4998 // 8.
    c = get("configs.pascal.semseg")
    assert (c.optimizer.name, c.optimizer.learning_rate, c.optimizer.momentum) == ("sgd", 1e-2, 0.9)
    assert (c.batch_size, c.num_train_epochs) == (8, 60)
    assert config_utils.resolve_durations(c, 4998).num_train_steps == 60 * 624
    # pascal/resnet18/semseg.yml: dilated ResNet-18 + DeepLab, Adam 1e-4, batch 12.
    c = get("configs.pascal.semseg", "backbone=resnet18")
    assert (c.model.backbone, c.model.dilated, c.model.head) == ("resnet18", True, "deeplab")
    assert (c.optimizer.name, c.batch_size, c.num_train_epochs) == ("adam", 12, 60)
    assert config_utils.resolve_durations(c, 4998).num_train_steps == 60 * 416
    # pascal/hrnet18/mti_net.yml: the loss weights and the five tasks in the reference's order.
    c = get("configs.pascal.mti_net")
    assert c.tasks == ("semseg", "human_parts", "sal", "normals", "edge") == c.aux_tasks
    assert dict(c.weighting.fixed.weights) == dict(
        semseg=1.0, human_parts=2.0, sal=5.0, normals=10.0, edge=50.0
    )


def test_backbone_choices_and_overrides():
    c = get("configs.nyud.semseg", "backbone=resnet50,batch_size=4")
    assert (c.model.backbone, c.model.dilated, c.model.head, c.batch_size) == (
        "resnet50", True, "deeplab", 4)  # fmt: skip
    c = get("configs.nyud.mti_net", "backbone=hrnet_w48,aux=edge+normals")
    assert c.model.backbone == "hrnet_w48" and c.optimizer.learning_rate == 1e-4
    with pytest.raises(ValueError, match="resnet50"):
        get("configs.nyud.mti_net", "backbone=resnet50")
    with pytest.raises(ValueError, match="edges"):
        get("configs.nyud.mti_net", "aux=edges")
