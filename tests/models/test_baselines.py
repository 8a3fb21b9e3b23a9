"""Backbone, head and baseline shapes, parameter counts and the bilinear resize."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.synthetic.tiny import get_config
from mtnets.models import create_backbone, create_model
from mtnets.models.heads import HighResolutionHead
from mtnets.models.layers import resize


def count(tree) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def torch_bilinear(x: np.ndarray, size) -> np.ndarray:
    """NumPy transcription of F.interpolate(mode='bilinear', align_corners=False), NHWC."""
    out_h, out_w = size
    in_h, in_w = x.shape[1:3]

    def coords(out_n, in_n):
        src = (np.arange(out_n) + 0.5) * (in_n / out_n) - 0.5
        src = np.maximum(src, 0.0)  # PyTorch clamps negative source coordinates to 0
        lo = np.minimum(np.floor(src).astype(int), in_n - 1)
        hi = np.minimum(lo + 1, in_n - 1)
        return lo, hi, src - lo

    y0, y1, wy = coords(out_h, in_h)
    x0, x1, wx = coords(out_w, in_w)
    top = x[:, y0][:, :, x0] * (1 - wx)[:, None] + x[:, y0][:, :, x1] * wx[:, None]
    bottom = x[:, y1][:, :, x0] * (1 - wx)[:, None] + x[:, y1][:, :, x1] * wx[:, None]
    return top * (1 - wy)[:, None, None] + bottom * wy[:, None, None]


@pytest.mark.parametrize(
    "size",
    # Whole factors (the two-tap path): 2x, 4x, 8x, 3x, one axis only; then other sizes.
    [(16, 20), (32, 40), (64, 80), (24, 30), (8, 40), (16, 10), (13, 7), (5, 5), (12, 25)],
)
def test_resize_matches_pytorch_bilinear(size):
    x = np.random.default_rng(0).normal(size=(2, 8, 10, 3)).astype(np.float32)
    np.testing.assert_allclose(
        resize(jnp.asarray(x), size), torch_bilinear(x, size), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("size", [(32, 40), (24, 30)])
def test_resize_gradient_is_the_transposed_interpolation(size):
    """The upsampling is linear, so its gradient w.r.t. the input is the transposed
    interpolation: <resize(x), g> = <x, resize^T(g)>, checked against the NumPy matrix."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1, 8, 10, 2)).astype(np.float32)
    g = rng.normal(size=(1, *size, 2)).astype(np.float32)
    grad = jax.grad(lambda v: jnp.sum(resize(v, size) * g))(jnp.asarray(x))
    # Column j of the interpolation matrix is the NumPy resize of the j-th unit image.
    units = np.eye(8 * 10, dtype=np.float64).reshape(80, 8, 10, 1)
    matrix = torch_bilinear(units, size).reshape(80, -1)  # [in pixels, out pixels]
    expected = np.einsum("io,oc->ic", matrix, g.reshape(-1, 2)).reshape(x.shape)
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-5)


def test_resize_keeps_bfloat16():
    x = jnp.asarray(np.random.default_rng(2).normal(size=(1, 4, 6, 2)), jnp.bfloat16)
    out = resize(x, (16, 24))
    assert out.dtype == jnp.bfloat16
    expected = torch_bilinear(np.asarray(x, np.float32), (16, 24))
    np.testing.assert_allclose(np.asarray(out, np.float32), expected, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize(
    "name, expected",
    # torchvision's resnet18 / resnet50 parameters without the final fc layer.
    [
        ("resnet18", 11_689_512 - (512 * 1000 + 1000)),
        ("resnet50", 25_557_032 - (2048 * 1000 + 1000)),
    ],
)
def test_resnet_parameter_counts_match_torchvision(name, expected):
    backbone = create_backbone(name)
    shapes = jax.eval_shape(backbone.init, jax.random.key(0), jnp.zeros((1, 64, 64, 3)))
    assert count(shapes["params"]) == expected


def test_resnet_features_are_at_strides_4_to_32():
    backbone = create_backbone("resnet_small")
    x = jnp.zeros((1, 64, 96, 3))
    variables = backbone.init(jax.random.key(0), x)
    features = backbone.apply(variables, x)
    assert [features[f"scale_{s}"].shape for s in range(4)] == [
        (1, 64 // 4 // 2**s, 96 // 4 // 2**s, c) for s, c in enumerate(backbone.channels)
    ]


def test_hrnet_head_parameters_as_reference():
    """conv1x1 C->C (bias), BN (scale, bias), conv1x1 C->n (bias); MTL's HighResolutionHead."""
    channels, outputs = [18, 36, 72, 144], 40
    features = {
        f"scale_{s}": jnp.zeros((1, 16 // 2**s, 16 // 2**s, c)) for s, c in enumerate(channels)
    }
    variables = HighResolutionHead(outputs).init(jax.random.key(0), features)
    c = sum(channels)
    assert count(variables["params"]) == c * c + c + 2 * c + c * outputs + outputs
    assert count(variables["batch_stats"]) == 2 * c


def test_multi_task_model_predicts_every_task_at_input_size():
    config = get_config()
    model = create_model(config)
    x = jnp.zeros((2, 32, 40, 3))
    variables = model.init(jax.random.key(0), x)
    out = model.apply(variables, x)
    assert {k: v.shape for k, v in out.items()} == {
        "semseg": (2, 32, 40, 7),
        "depth": (2, 32, 40, 1),
        "normals": (2, 32, 40, 3),
        "edge": (2, 32, 40, 1),
        "sal": (2, 32, 40, 1),
        "human_parts": (2, 32, 40, 4),
    }
    assert all(v.dtype == jnp.float32 for v in out.values())


def test_unknown_model_backbone_and_task_are_clear_errors():
    config = get_config()
    with config.unlocked():
        config.model.name = "mti_nett"
    with pytest.raises(ValueError, match="mti_nett"):
        create_model(config)
    config = get_config()
    config.model.backbone = "resnet17"
    with pytest.raises(ValueError, match="resnet17"):
        create_model(config)
    config = get_config()
    config.tasks = ("semseg", "depht")
    with pytest.raises(ValueError, match="depht"):
        create_model(config)
