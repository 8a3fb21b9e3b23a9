"""Backbones, heads, MTI-Net and PAD-Net: shapes, parameter counts of the reference, the FPM
softmax grouping, the ablation switches and the dilated ResNet."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtnets.config_utils import set_fields
from mtnets.models import create_backbone, create_model
from mtnets.models.heads import DeepLabHead
from mtnets.models.mti_net import fpm_attention
from tests.experiment_configs import model_config


def count(tree) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def shapes(module, size=(64, 64)):
    x = jnp.zeros((1, *size, 3))
    return jax.eval_shape(lambda: module.init(jax.random.key(0), x))


# The full MTI-Net (every scale distils; configs/default.py distils at the finest only).
FULL_MTI_NET = dict(num_scales=4, use_fpm=True, distill_all_scales=True, fpm_softmax="reference")


def config(name, tasks=("semseg", "depth"), aux=(), backbone="hrnet_tiny", **mti):
    c = model_config(name, tasks, "nyud_mt", aux, backbone=backbone, head="hrnet")
    return set_fields(c, {f"model.mti_net.{k}": v for k, v in {**FULL_MTI_NET, **mti}.items()})


@pytest.mark.parametrize(
    "name, expected",
    # `sum(p.numel())` of the reference's HighResolutionNet (MTL:models/seg_hrnet.py) with
    # model_info/hrnet_w18.yml (small v2), hrnet_w48.yml, and hrnet_w48.yml at width 18.
    [("hrnet_w18_small_v2", 3_860_720), ("hrnet_w18", 9_562_260), ("hrnet_w48", 65_325_120)],
)
def test_hrnet_parameter_counts_match_the_reference(name, expected):
    assert count(shapes(create_backbone(name))["params"]) == expected


def test_hrnet_features_at_strides_4_to_32():
    backbone = create_backbone("hrnet_tiny")
    out = jax.eval_shape(backbone.apply, shapes(backbone), jnp.zeros((2, 64, 96, 3)))
    assert [out[f"scale_{s}"].shape for s in range(4)] == [
        (2, 16 // 2**s, 24 // 2**s, c) for s, c in enumerate(backbone.channels)
    ]


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_dilated_resnet_has_output_stride_8_and_the_same_weights(name):
    """MTL's ResnetDilated changes strides and dilations only, so the variables are equal."""
    plain, dilated = create_backbone(name), create_backbone(name, dilated=True)
    vp, vd = shapes(plain), shapes(dilated)
    assert jax.tree.map(lambda a: a.shape, vp) == jax.tree.map(lambda a: a.shape, vd)
    out = jax.eval_shape(dilated.apply, vd, jnp.zeros((1, 64, 96, 3)))
    assert [out[f"scale_{s}"].shape[1:3] for s in range(4)] == [(16, 24), (8, 12), (8, 12), (8, 12)]


def conv_dilations(module, variables, x):
    """`(kernel size, stride, dilation)` of every convolution, in execution order (jaxpr)."""
    jaxpr = jax.make_jaxpr(lambda v: module.apply(v, x))(variables)
    return [
        (e.invars[1].aval.shape[0], e.params["window_strides"][0], e.params["rhs_dilation"][0])
        for e in jaxpr.jaxpr.eqns
        if e.primitive.name == "conv_general_dilated"
    ]


def test_dilated_resnet18_follows_mtl_nostride_dilate():
    """MTL `ResnetDilated._nostride_dilate` (OS 8): layer3 dilation 2 and layer4 dilation 4,
    except the formerly strided 3x3 conv of each, which gets half; strided 1x1s lose stride."""
    backbone = create_backbone("resnet18", dilated=True)
    x = jnp.zeros((1, 64, 64, 3))
    got = conv_dilations(backbone, shapes(backbone), x)
    stem, layer1 = [(7, 2, 1)], [(3, 1, 1)] * 4
    layer2 = [(3, 2, 1), (3, 1, 1), (1, 2, 1), (3, 1, 1), (3, 1, 1)]
    layer3 = [(3, 1, 1), (3, 1, 2), (1, 1, 1), (3, 1, 2), (3, 1, 2)]
    layer4 = [(3, 1, 2), (3, 1, 4), (1, 1, 1), (3, 1, 4), (3, 1, 4)]
    assert got == stem + layer1 + layer2 + layer3 + layer4


def test_deeplab_head_parameters_as_reference():
    """ASPP: 1x1 + three 3x3 + pooling 1x1 branches of 256 with BN, projection 1280 -> 256 + BN;
    3x3 256 -> 256 + BN; 1x1 256 -> n with bias (MTL:models/aspp.py)."""
    c, n = 512, 21
    head = DeepLabHead(n)
    variables = head.init(jax.random.key(0), {"scale_3": jnp.zeros((1, 8, 8, c))})
    bn = 2 * 256
    expected = (c * 256 + bn) + 3 * (9 * c * 256 + bn) + (c * 256 + bn)
    expected += 1280 * 256 + bn + 9 * 256 * 256 + bn + 256 * n + n
    assert count(variables["params"]) == expected
    out = head.apply(variables, {"scale_3": jnp.ones((2, 8, 8, c))})
    assert out.shape == (2, 8, 8, n)


def np_fpm_reference(logits_nchw, concat_nchw, n):
    """The reference's FPM attention in NumPy on NCHW (torch .view == C-order reshape)."""
    b, s, h, w = concat_nchw.shape
    g = logits_nchw.reshape(b, s // n, n, h, w)
    mask = np.exp(g - g.max(2, keepdims=True))
    mask /= mask.sum(2, keepdims=True)
    return (mask * concat_nchw.reshape(b, s // n, n, h, w)).reshape(b, s, h, w)


def np_fpm_per_task(logits_nchw, concat_nchw, n):
    """The paper's reading: for each channel k, a softmax over the tasks' channel k."""
    b, s, h, w = concat_nchw.shape
    g = logits_nchw.reshape(b, n, s // n, h, w)
    mask = np.exp(g - g.max(1, keepdims=True))
    mask /= mask.sum(1, keepdims=True)
    return (mask * concat_nchw.reshape(b, n, s // n, h, w)).reshape(b, s, h, w)


@pytest.mark.parametrize("n, c", [(2, 6), (4, 6), (3, 5)])
def test_fpm_softmax_grouping(n, c):
    rng = np.random.default_rng(0)
    logits, concat = rng.normal(size=(2, 2, n * c, 3, 4)).astype(np.float32)
    nhwc = lambda a: jnp.asarray(a.transpose(0, 2, 3, 1))  # noqa: E731
    for mode, ref in (("reference", np_fpm_reference), ("per_task", np_fpm_per_task)):
        got = fpm_attention(nhwc(logits), nhwc(concat), n, mode)
        np.testing.assert_allclose(got, nhwc(ref(logits, concat, n)), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="per_tsk"):
        fpm_attention(nhwc(logits), nhwc(concat), n, "per_tsk")


def test_mti_net_outputs_and_deep_supervision():
    aux = ("semseg", "normals", "edge", "depth")
    model = create_model(config("mti_net", aux=aux))
    x = jnp.zeros((2, 64, 96, 3))
    out = jax.eval_shape(model.apply, shapes(model), x)
    assert out["semseg"].shape == (2, 64, 96, 40) and out["depth"].shape == (2, 64, 96, 1)
    assert set(out) == {"semseg", "depth", "intermediate"}
    channels = {"semseg": 40, "normals": 3, "edge": 1, "depth": 1}
    assert {s: {t: p.shape for t, p in d.items()} for s, d in out["intermediate"].items()} == {
        f"scale_{s}": {t: (2, 16 // 2**s, 24 // 2**s, k) for t, k in channels.items()}
        for s in range(4)
    }


def test_mti_net_ablation_switches():
    def run(**mti):
        model = create_model(config("mti_net", **mti))
        v = shapes(model)
        return v, jax.eval_shape(model.apply, v, jnp.zeros((1, 64, 64, 3)))

    v, out = run(num_scales=2)
    assert set(out["intermediate"]) == {"scale_0", "scale_1"}
    assert {k for k in v["params"] if k.startswith("fpm")} == {"fpm_scale_1"}
    v, _ = run(use_fpm=False)
    assert not any(k.startswith("fpm") for k in v["params"])
    v, _ = run(distill_all_scales=False)
    assert {k for k in v["params"] if k.startswith("distillation")} == {"distillation_scale_0"}
    with pytest.raises(ValueError, match="num_scales"):
        run(num_scales=5)


def test_pad_net_outputs_and_aux_tasks_must_contain_main_tasks():
    aux = ("semseg", "normals", "edge", "depth")
    model = create_model(config("pad_net", aux=aux))
    out = jax.eval_shape(model.apply, shapes(model), jnp.zeros((2, 64, 96, 3)))
    assert out["semseg"].shape == (2, 64, 96, 40)
    assert {t: p.shape[1:3] for t, p in out["intermediate"]["initial"].items()} == {
        t: (16, 24) for t in aux
    }
    with pytest.raises(ValueError, match="depth"):
        create_model(config("pad_net", aux=("semseg", "edge")))
