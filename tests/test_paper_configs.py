"""The paper configs copy the reference's settings, except where docs/paper_differences.md says
otherwise.

The reference values below are transcribed from the reference files: the 33 YAML files of the
MTL repository (`configs/{nyud,pascal}/<backbone>/<name>.yml`, commit ed3d9ac) and the argument
defaults of lorenmt/mtan's `im2im_pred/model_segnet_*.py` (commit c36c30b). A config field that
differs from them must have a row in the table of docs/paper_differences.md (first column: the
field in backquotes; second: the configs it applies to); a row that no config needs any more
fails as well, so the table and the configs cannot drift apart.
"""

import fnmatch
import importlib
import math
import os
import re

import pytest

from mtnets import config_utils

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TABLE = os.path.join(ROOT, "docs", "paper_differences.md")
TRAIN_IMAGES = {"nyud": 795, "pascal": 4998, "nyuv2": 795}

# ---------------------------------------------------------------------------------------------
# The reference, transcribed.
ADAM = {"optimizer.name": "adam", "optimizer.learning_rate": 1e-4, "optimizer.weight_decay": 1e-4}


def sgd(lr):
    return {"optimizer.name": "sgd", "optimizer.learning_rate": lr,
            "optimizer.weight_decay": 1e-4, "optimizer.momentum": 0.9}  # fmt: skip


NYUD_WEIGHTS = {"semseg": 1.0, "depth": 1.0, "normals": 10.0, "edge": 50.0}
PASCAL_WEIGHTS = {"semseg": 1.0, "human_parts": 2.0, "sal": 5.0, "edge": 50.0, "normals": 10.0}
PASCAL_ALL = ("semseg", "human_parts", "sal", "normals", "edge")  # the reference's task order
PASCAL_SMALL = ("semseg", "human_parts", "sal")
NYUD = ("semseg", "depth")
NYUD_AUX = ("semseg", "normals", "edge", "depth")
BACKBONES = {  # the YAML's backbone (+ dilated) and head
    "hrnet18": ("hrnet_w18_small_v2", False, "hrnet"),
    "resnet50": ("resnet50", True, "deeplab"),
    "resnet18": ("resnet18", True, "deeplab"),
}

# (YAML, our config and launch string, tasks, aux tasks, hyper-parameters)
MTL_YAMLS = [
    *[(f"nyud/{d}/{t}.yml", f"nyud.{t}", f"backbone={d}", (t,), (), dict(ADAM, epochs=100, batch=8))
      for d in ("hrnet18", "resnet50") for t in ("semseg", "depth")],
    *[(f"nyud/{d}/multi_task_baseline.yml", "nyud.multi_task_baseline", f"backbone={d}", NYUD, (),
       dict(ADAM, epochs=100, batch=8)) for d in ("hrnet18", "resnet50")],
    *[(f"nyud/hrnet18/{m}{suffix}.yml", f"nyud.{m}", arg, NYUD, aux,
       dict(ADAM, epochs=100, batch=8)) for m in ("mti_net", "pad_net")
      for suffix, arg, aux in (("", "", NYUD), ("+edges_normals", "aux=edge+normals", NYUD_AUX))],
    ("nyud/resnet50/mtan.yml", "nyud.mtan", "", NYUD, (), dict(ADAM, epochs=100, batch=8)),
    *[(f"nyud/resnet50/{m}.yml", f"nyud.{m}", "", NYUD, (),
       dict(sgd(1e-3), epochs=50, batch=8, alpha=0.9, beta=0.1))
      for m in ("cross_stitch", "nddr_cnn")],
    *[(f"pascal/hrnet18/{t}.yml", f"pascal.{t}", "backbone=hrnet18", (t,), (),
       dict(sgd(1e-2), epochs=60, batch=8)) for t in PASCAL_ALL],
    *[(f"pascal/resnet18/{t}.yml", f"pascal.{t}", "backbone=resnet18", (t,), (),
       dict(ADAM, epochs=60, batch=12)) for t in PASCAL_ALL],
    ("pascal/hrnet18/multi_task_baseline.yml", "pascal.multi_task_baseline", "backbone=hrnet18",
     PASCAL_ALL, (), dict(ADAM, epochs=100, batch=8)),
    ("pascal/resnet18/multi_task_baseline.yml", "pascal.multi_task_baseline", "backbone=resnet18",
     PASCAL_ALL, (), dict(ADAM, epochs=100, batch=6)),
    *[(f"pascal/hrnet18/{m}.yml", f"pascal.{m}", "", PASCAL_ALL, PASCAL_ALL,
       dict(ADAM, epochs=100, batch=8)) for m in ("mti_net", "pad_net")],
    *[(f"pascal/hrnet18/{m}_small.yml", f"pascal.{m}_small", "", PASCAL_SMALL, PASCAL_SMALL,
       dict(ADAM, epochs=80, batch=8)) for m in ("mti_net", "pad_net")],
    ("pascal/hrnet18/multi_task_baseline_small.yml", "pascal.multi_task_baseline_small", "",
     PASCAL_SMALL, (), dict(ADAM, epochs=80, batch=8)),
    ("pascal/resnet18/mtan.yml", "pascal.mtan", "", PASCAL_ALL, (),
     dict(sgd(5e-3), epochs=100, batch=6)),
    *[(f"pascal/resnet18/{m}.yml", f"pascal.{m}", "", PASCAL_ALL, (),
       dict(sgd(5e-3), epochs=20, batch=12, alpha=0.8, beta=0.05))
      for m in ("cross_stitch", "nddr_cnn")],
]  # fmt: skip

LORENMT_SCRIPTS = [  # (script, our config, launch string, model)
    ("model_segnet_mtan.py", "nyuv2.segnet_mtan", "", "segnet_mtan"),
    ("model_segnet_split.py", "nyuv2.segnet_split", "", "segnet_split"),
    ("model_segnet_dense.py", "nyuv2.segnet_dense", "", "segnet_dense"),
    ("model_segnet_cross.py", "nyuv2.segnet_cross", "", "segnet_cross"),
    ("model_segnet_single.py", "nyuv2.segnet_single", "", "segnet_single"),
    ("model_segnet_stan.py", "nyuv2.segnet_stan", "", "segnet_stan"),
]


def mtl_reference(yaml, tasks, aux, hyper) -> dict:
    """Every setting of one MTL YAML (and of the MTL code that runs it) that a config sets."""
    dataset, directory = yaml.split("/")[:2]
    backbone, dilated, head = BACKBONES[directory]
    table = NYUD_WEIGHTS if dataset == "nyud" else PASCAL_WEIGHTS
    trained = aux or tasks
    ref = {
        "dataset.name": {"nyud": "nyud_mt", "pascal": "pascal_context_mt"}[dataset],
        "dataset.image_size": {"nyud": (480, 640), "pascal": (512, 512)}[dataset],
        "dataset.augmentation": dataset,  # the nyud and pascal transforms of the MTL code
        "tasks": tasks,
        "aux_tasks": aux,
        "model.backbone": backbone,
        "model.dilated": dilated,
        "model.head": head,
        "model.pretrained": "imagenet",  # backbone_kwargs: pretrained: True
        "weighting.name": "fixed",
        "weighting.fixed.weights": (
            {t: table[t] for t in trained} if len(tasks) > 1 else {tasks[0]: 1.0}
        ),
        "schedule.name": "poly, set once per epoch",  # utils/common_config.py, main.py
        "schedule.power": 0.9,
        "num_train_epochs": hyper["epochs"],
        "batch_size": hyper["batch"],
        "steps_per_epoch": TRAIN_IMAGES[dataset] // hyper["batch"],  # drop_last=True
        "last_batch": "dropped",
        "evaluation": "every epoch of the last 10",  # eval_final_10_epochs_only: True
        **{k: v for k, v in hyper.items() if k.startswith("optimizer.")},
    }
    if "edge" in trained:
        ref["loss.edge_pos_weight"] = 0.95  # edge_w
    if "alpha" in hyper:  # cross-stitch / NDDR-CNN
        ref.update({"model.alpha": hyper["alpha"], "model.beta": hyper["beta"]})
        ref["unit learning rate"] = "100x"  # utils/common_config.py (lost: see the table)
        ref["model.single_task_checkpoints"] = "required"  # utils/common_config.py:86-119
    return ref


def lorenmt_reference(model) -> dict:
    """The argument defaults and fixed settings of one lorenmt NYUv2 script."""
    return {
        "dataset.name": "nyuv2_mtan",
        "dataset.image_size": (288, 384),
        "dataset.augmentation": "none",  # --apply_augmentation off
        "dataset.image_normalization": "none",
        "model.name": model,
        "model.pretrained": None,  # SegNet from scratch
        "loss.convention": "lorenmt",
        "weighting.name": "equal",  # --weight equal
        "weighting.dwa.temperature": 2.0,  # --temp
        "optimizer.name": "adam",
        "optimizer.learning_rate": 1e-4,
        "optimizer.weight_decay": 0.0,
        "schedule.name": "step",  # StepLR(step_size=100, gamma=0.5), per epoch
        "schedule.step_size_epochs": 100,
        "schedule.gamma": 0.5,
        "num_train_epochs": 200,
        "batch_size": 2,
        "steps_per_epoch": math.ceil(795 / 2),  # the loader keeps the last batch of 1 image
        "last_batch": "kept",
        "evaluation": "every epoch",
    }


# ---------------------------------------------------------------------------------------------
# Ours.
def ours(config, field: str, family: str):
    """Our value of a reference setting: a config field, or what the code does for the few
    settings that are not fields."""
    if field == "steps_per_epoch":
        return config_utils.steps_per_epoch(TRAIN_IMAGES[family], config.batch_size)
    if field == "last_batch":  # mtnets/data/pipeline.py: epochs run end to end
        return "carried into the next epoch"
    if field == "evaluation":
        every = config.eval_every_epochs
        return "every epoch" if every == 1 else f"every {every:g} epochs"
    if field == "schedule.name" and config.schedule.name == "poly":
        return "poly, set every step"  # optax.polynomial_schedule
    if field == "unit learning rate":
        return "1x"
    if field == "model.single_task_checkpoints":
        return "optional (ImageNet start without them)"
    value = config
    for part in field.split("."):
        value = value[part]
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    return tuple(value) if isinstance(value, list) else value


def differences_table() -> list[tuple[str, str]]:
    """(field, configs pattern) of each row of the table in docs/paper_differences.md."""
    rows = []
    with open(TABLE) as f:
        for line in f:
            match = re.match(r"\|\s*`([^`]+)`\s*\|\s*([^|]+?)\s*\|", line)
            if match:
                for pattern in match.group(2).replace("`", "").split(","):
                    rows.append((match.group(1), pattern.strip()))
    return rows


def cases():
    for yaml, module, arg, tasks, aux, hyper in MTL_YAMLS:
        yield yaml, module, arg, mtl_reference(yaml, tasks, aux, hyper)
    for script, module, arg, model in LORENMT_SCRIPTS:
        yield script, module, arg, lorenmt_reference(model)


CASES = list(cases())


def found_differences():
    out = []
    for source, module, arg, reference in CASES:
        config = importlib.import_module(f"configs.{module}").get_config(arg or None)
        family = module.split(".")[0]
        for field, expected in reference.items():
            value = ours(config, field, family)
            if value != expected:
                out.append((source, module, field, expected, value))
    return out


def test_every_reference_yaml_and_script_is_transcribed():
    assert len(MTL_YAMLS) == 33 and len({c[0] for c in CASES}) == 39


def test_every_difference_from_the_reference_is_in_the_table():
    table = differences_table()
    undocumented = [
        f"{module} ({source}): {field} = {value!r}, the reference has {expected!r}"
        for source, module, field, expected, value in found_differences()
        if not any(f == field and fnmatch.fnmatch(module.replace(".", "/"), p) for f, p in table)
    ]
    assert not undocumented, (
        "Settings that differ from the reference and are not in docs/paper_differences.md "
        "(restore the reference value, or add a row that says why):\n" + "\n".join(undocumented)
    )


def test_every_row_of_the_table_is_still_a_difference():
    found = {(field, module.replace(".", "/")) for _, module, field, _, _ in found_differences()}
    stale = [
        (field, pattern)
        for field, pattern in differences_table()
        if not any(f == field and fnmatch.fnmatch(m, pattern) for f, m in found)
    ]
    assert not stale, f"Rows of docs/paper_differences.md that no config needs: {stale}"


@pytest.mark.parametrize("field, value", [("optimizer.learning_rate", 0.5), ("batch_size", 3)])
def test_a_changed_field_is_caught(field, value, monkeypatch):
    """The check can fail: a config that changes a field the table does not cover."""
    module = importlib.import_module("configs.nyud.common")
    original = module.mtl_config

    def changed(**kwargs):
        config = original(**kwargs)
        parent, _, leaf = field.rpartition(".")
        (config[parent] if parent else config)[leaf] = value
        return config

    monkeypatch.setattr(module, "mtl_config", changed)
    for name in ("configs.nyud.mti_net",):
        monkeypatch.setattr(importlib.import_module(name), "mtl_config", changed)
    with pytest.raises(AssertionError, match=f"nyud.mti_net .*{field} = {value}"):
        test_every_difference_from_the_reference_is_in_the_table()
