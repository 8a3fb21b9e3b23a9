"""ImageNet checkpoints: key names of torchvision and HRNet-Image-Classification / timm, .npz
reading, dropped classifiers, clear errors, and replacing only the model's backbone."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.traverse_util import flatten_dict

from mtnets.models import create_model
from mtnets.porting.common import LEAF_NAMES
from mtnets.porting.imagenet import (
    backbone_shapes,
    backbone_variables,
    load_pretrained,
    read_checkpoint,
)
from mtnets.porting.mtl import _hrnet, _resnet
from tests.experiment_configs import experiment_config, model_config


def checkpoint(name, seed=0):
    """A random state dict with the checkpoint's key names, PyTorch layouts and a classifier."""
    translate = _hrnet if name.startswith("hrnet") else _resnet
    rng = np.random.default_rng(seed)
    sd = {}
    for path, leaf in flatten_dict(backbone_shapes(name)).items():
        collection, *modules, last = path
        shape = leaf.shape
        if last == "kernel":
            shape = tuple(shape[i] for i in (3, 2, 0, 1))
        sd[f"{translate(tuple(modules))}.{LEAF_NAMES[collection, last]}"] = rng.normal(size=shape)
    if name.startswith("hrnet"):
        sd.update({"incre_modules.0.0.conv1.weight": np.zeros(1), "classifier.bias": np.zeros(1)})
    else:
        sd.update({"fc.weight": np.zeros((1000, 512)), "fc.bias": np.zeros(1000)})
    return sd


@pytest.mark.parametrize(
    "name, samples",
    # Keys and shapes of torchvision's resnet18 and of HRNet-Image-Classification's
    # hrnet_w18_small_model_v2.pth (the same names as timm's hrnet_w18_small_v2).
    [
        ("resnet18", {"layer2.0.downsample.0.weight": (128, 64, 1, 1), "bn1.running_var": (64,)}),
        ("hrnet_w18_small_v2", {
            "stage4.1.fuse_layers.3.0.2.0.weight": (144, 18, 3, 3),
            "transition1.1.0.0.weight": (36, 256, 3, 3),
            "layer1.0.downsample.1.running_mean": (256,),
        }),
    ],
)  # fmt: skip
def test_checkpoint_keys_map_to_the_backbone(tmp_path, name, samples):
    sd = checkpoint(name)
    for key, shape in samples.items():
        assert sd[key].shape == shape, key
    path = tmp_path / "weights.npz"
    np.savez(path, **sd)
    variables = backbone_variables(name, read_checkpoint(str(path)))
    if name == "resnet18":
        w = sd["layer2.0.downsample.0.weight"]
        got = variables["params"]["layer2_0"]["downsample_conv"]["kernel"]
        np.testing.assert_array_equal(got, w.transpose(2, 3, 1, 0))
        np.testing.assert_array_equal(variables["batch_stats"]["bn1"]["var"], sd["bn1.running_var"])


def test_wrong_checkpoint_lists_missing_and_unmatched_keys():
    sd = checkpoint("resnet18")
    del sd["layer1.0.conv1.weight"]
    sd["layer9.weight"] = np.zeros(1)
    with pytest.raises(ValueError) as error:
        backbone_variables("resnet18", sd)
    assert "missing key(s): layer1.0.conv1.weight" in str(error.value)
    assert "unmatched key(s): layer9.weight" in str(error.value)
    with pytest.raises(ValueError, match="transition1"):  # a ResNet file for an HRNet
        backbone_variables("hrnet_tiny", sd)


def test_load_pretrained_replaces_only_the_backbone(tmp_path):
    path = tmp_path / "resnet18.npz"
    np.savez(path, **checkpoint("resnet18"))
    c = model_config("single_task_baseline", ("semseg",), "nyud_mt", backbone="resnet18",
                     head="hrnet", head_width=8, dilated=True, pretrained=str(path))  # fmt: skip
    model = create_model(c)
    variables = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
    loaded = load_pretrained(c, variables)
    expected = backbone_variables("resnet18", checkpoint("resnet18"))
    for a, b in zip(jax.tree.leaves(loaded["params"]["backbone"]),
                    jax.tree.leaves(expected["params"]), strict=True):  # fmt: skip
        np.testing.assert_allclose(a, b, rtol=1e-6)
    heads = "heads_semseg"
    for a, b in zip(jax.tree.leaves(loaded["params"][heads]),
                    jax.tree.leaves(variables["params"][heads]), strict=True):  # fmt: skip
        np.testing.assert_array_equal(a, b)
    with pytest.raises(FileNotFoundError, match="nothere"):
        load_pretrained(
            experiment_config({"model.pretrained": "nothere.pth", "model.backbone": "resnet18"}),
            variables,
        )


def test_imagenet_fills_every_task_network_of_a_cross_stitch_model(tmp_path, monkeypatch):
    # model.pretrained="imagenet" reads <stem>.npz from the weights directory.
    monkeypatch.setenv("MTNETS_WEIGHTS", str(tmp_path))
    np.savez(tmp_path / "resnet18-f37072fd.npz", **checkpoint("resnet18"))
    c = model_config("cross_stitch", ("semseg", "depth"), "nyud_mt", backbone="resnet18",
                     head="deeplab", head_width=0, dilated=True, output_stride=8, alpha=0.9,
                     beta=0.1, pretrained="imagenet")  # fmt: skip
    variables = jax.eval_shape(
        lambda: create_model(c).init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
    )
    loaded = load_pretrained(c, variables)
    expected = backbone_variables("resnet18", checkpoint("resnet18"))
    for task in c.tasks:
        for collection in ("params", "batch_stats"):
            for a, b in zip(jax.tree.leaves(loaded[collection][f"backbone_{task}"]),
                            jax.tree.leaves(expected[collection]), strict=True):  # fmt: skip
                np.testing.assert_allclose(a, b, rtol=1e-6)
    assert loaded["params"]["cross_stitch_layer1"] is variables["params"]["cross_stitch_layer1"]
