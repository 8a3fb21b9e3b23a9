"""Conversion of MTL reference state dicts: key names, counts and shapes as the reference
writes them, layout transposes, the BatchNorm mapping, and errors on unmatched keys.

The numbers (key counts, sample keys and their PyTorch shapes) were read off the reference's
`model.state_dict()` (`MTL:models/{mti_net,padnet,models,seg_hrnet,aspp}.py`, NYUD outputs);
the numerical equality of outputs is checked against the reference code itself by the
verification described in docs/porting.md (the reference is not part of this repository).
"""

import jax
import numpy as np
import pytest
from flax.traverse_util import flatten_dict

from mtnets.porting import variables_from_reference
from mtnets.porting.mtl import model_shapes, torch_key, variables_from_mtl
from tests.experiment_configs import model_config


def config(name, tasks, backbone="hrnet_w18_small_v2", head="hrnet", aux=()):
    dilated = backbone.startswith("resnet")
    c = model_config(name, tasks, "nyud_mt", aux, backbone=backbone, head=head, dilated=dilated)
    c.model.mti_net.distill_all_scales = True  # the full MTI-Net, as the reference's
    return c


MTI = config("mti_net", ("semseg", "depth"))
PAD = config("pad_net", ("semseg", "depth"))
BASE = config("multi_task_baseline", ("semseg", "depth"))
SINGLE = config("single_task_baseline", ("semseg",), backbone="resnet18", head="deeplab")


def torch_layout(path, shape):
    """The PyTorch shape of our variable: conv HWIO -> OIHW, dense [in, out] -> [out, in]."""
    if path[-1] == "kernel":
        return tuple(shape[i] for i in ((3, 2, 0, 1) if len(shape) == 4 else (1, 0)))
    return tuple(shape)


def reference_layout(cfg):
    """`{reference key: PyTorch shape}` that our converter expects for `cfg`."""
    return {
        torch_key(cfg, path): torch_layout(path, leaf.shape)
        for path, leaf in flatten_dict(model_shapes(cfg)).items()
    }


@pytest.fixture(scope="module")
def layouts():
    return {name: reference_layout(c) for name, c in
            dict(mti=MTI, pad=PAD, base=BASE, single=SINGLE).items()}  # fmt: skip


@pytest.mark.parametrize(
    "model, count, samples",
    [
        ("mti", 1108, {
            "backbone.stage4.1.fuse_layers.3.0.2.0.weight": (144, 18, 3, 3),
            "backbone.transition3.3.0.0.weight": (144, 72, 3, 3),
            "backbone.stage3.2.branches.2.1.bn2.running_mean": (72,),
            "fpm_scale_3.se.semseg.squeeze.0.weight": (9, 144),
            "fpm_scale_1.non_linear.2.bias": (72,),
            "scale_2.refinement.depth.0.downsample.0.weight": (72, 216, 1, 1),
            "distillation_scale_0.self_attention.semseg.depth.attention.0.weight": (18, 18, 3, 3),
            "heads.depth.last_layer.3.weight": (1, 270, 1, 1),
        }),
        ("pad", 868, {
            "backbone.1.last_layer.1.running_var": (270,),
            "initial_task_prediction_heads.layers.depth.0.downsample.0.weight": (256, 270, 1, 1),
            "multi_modal_distillation.self_attention.depth.semseg.conv.weight": (256, 256, 3, 3),
            "heads.semseg.2.weight": (40, 256, 1, 1),
        }),
        ("base", 736, {"decoders.semseg.last_layer.0.weight": (270, 270, 1, 1)}),
        ("single", 137, {
            "decoder.0.convs.4.1.weight": (256, 512, 1, 1),
            "decoder.0.project.0.weight": (256, 1280, 1, 1),
            "backbone.layer4.1.conv2.weight": (512, 512, 3, 3),
        }),
    ],
)  # fmt: skip
def test_reference_keys_and_shapes(layouts, model, count, samples):
    """Every variable maps to a distinct reference key (num_batches_tracked excluded)."""
    layout = layouts[model]
    assert len(layout) == count
    for key, shape in samples.items():
        assert layout[key] == shape, key


def fake_state_dict(layout, seed=0):
    rng = np.random.default_rng(seed)
    sd = {k: rng.normal(size=s).astype(np.float32) for k, s in layout.items()}
    sd.update({k.replace("running_mean", "num_batches_tracked"): np.array(3)
               for k in layout if k.endswith("running_mean")})  # fmt: skip
    return sd


def test_round_trip_transposes_and_batch_norm(layouts):
    sd = fake_state_dict(layouts["mti"])
    variables = variables_from_reference(MTI, {"module." + k: v for k, v in sd.items()})
    params, stats = variables["params"], variables["batch_stats"]
    # Conv OIHW -> HWIO.
    w = sd["scale_2.refinement.depth.0.downsample.0.weight"]
    np.testing.assert_array_equal(
        params["scale_2"]["depth_refine_0"]["downsample_conv"]["kernel"], w.transpose(2, 3, 1, 0)
    )
    # Linear [out, in] -> [in, out].
    se = params["fpm_scale_3"]["se_semseg"]["fc1"]
    np.testing.assert_array_equal(se["kernel"], sd["fpm_scale_3.se.semseg.squeeze.0.weight"].T)
    np.testing.assert_array_equal(se["bias"], sd["fpm_scale_3.se.semseg.squeeze.0.bias"])
    # BatchNorm: weight -> scale, running statistics -> batch_stats.
    bn = "backbone.stage3.2.branches.2.1.bn2"
    ours_bn = ("backbone", "stage3_2", "branch2_1", "bn2")
    np.testing.assert_array_equal(_get(params, ours_bn)["scale"], sd[f"{bn}.weight"])
    np.testing.assert_array_equal(_get(stats, ours_bn)["mean"], sd[f"{bn}.running_mean"])
    np.testing.assert_array_equal(_get(stats, ours_bn)["var"], sd[f"{bn}.running_var"])
    assert len(jax.tree.leaves(variables)) == len(layouts["mti"])


def _get(tree, path):
    for p in path:
        tree = tree[p]
    return tree


def test_unmatched_missing_and_misshapen_keys_are_errors(layouts):
    sd = fake_state_dict(layouts["single"])
    with pytest.raises(ValueError, match=r"decoder\.9\.weight"):
        variables_from_reference(SINGLE, {**sd, "decoder.9.weight": np.zeros(3)})
    missing = {k: v for k, v in sd.items() if k != "decoder.0.project.1.running_var"}
    with pytest.raises(ValueError, match=r"decoder\.0\.project\.1\.running_var"):
        variables_from_reference(SINGLE, missing)
    bad = {**sd, "decoder.4.bias": np.zeros(41, np.float32)}
    with pytest.raises(ValueError, match="predict/bias"):
        variables_from_reference(SINGLE, bad)
    with pytest.raises(ValueError, match="segnet_mtan"):
        variables_from_mtl(config("segnet_mtan", ("semseg",)), sd)
