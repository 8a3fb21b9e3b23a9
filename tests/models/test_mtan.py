"""MTAN: the ResNet-MTAN of the MTL repository, the model-family builder, and a short
SegNet-MTAN optimisation on synthetic scenes."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mtnets import losses
from mtnets.data.builders.scene_renderer import render_example
from mtnets.models import MODELS, create_model
from mtnets.models.backbones.resnet import BasicBlock, ResNet, ResNetPieces, resnet_trunk
from mtnets.models.mtan import ResNetMTAN, pool_after_stages
from mtnets.models.segnet_models import SegNetMTAN
from mtnets.tasks import task_specs
from tests.experiment_configs import model_config

PASCAL = ("semseg", "human_parts", "sal", "normals", "edge")
NYUD = ("semseg", "depth")


def count(tree) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def resnet_config(name, backbone, tasks, dataset):
    return model_config(name, tasks, dataset, backbone=backbone, output_stride=8)


@pytest.mark.parametrize(
    "backbone, tasks, dataset, expected",
    # `sum(p.numel())` of MTL's `MTAN(...)` built as `MTL:utils/common_config.py` does for
    # `configs/pascal/resnet18/mtan.yml` and `configs/nyud/resnet50/mtan.yml` (no pretraining).
    [
        ("resnet18", PASCAL, "pascal_context_mt", 36_613_425),
        ("resnet50", NYUD, "nyud_mt", 72_052_713),
    ],
)
def test_resnet_mtan_parameter_count_equals_the_reference(backbone, tasks, dataset, expected):
    model = create_model(resnet_config("mtan", backbone, tasks, dataset))
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 64, 64, 3)))
    assert count(shapes["params"]) == expected


def test_resnet_mtan_shapes_and_attention_layout():
    model = ResNetMTAN({"semseg": 5, "depth": 1}, resnet="resnet18")
    x = jnp.zeros((2, 64, 96, 3))
    out, variables = jax.eval_shape(lambda: model.init_with_output(jax.random.key(0), x))
    assert {k: v.shape for k, v in out.items()} == {
        "semseg": (2, 64, 96, 5),
        "depth": (2, 64, 96, 1),
    }
    params = variables["params"]
    # ResNet-18: 64/128/256/512 channels; attention k: (C_1 or 2 C_k) -> C_k / 4 -> C_k.
    assert params["attention_1_semseg"]["conv_0"]["kernel"].shape == (1, 1, 64, 16)
    assert params["attention_3_depth"]["conv_0"]["kernel"].shape == (1, 1, 512, 64)
    assert params["attention_4_depth"]["conv_1"]["kernel"].shape == (1, 1, 128, 512)
    # Shared refinement: one Bottleneck C_k -> C_{k+1} per stage boundary, none after stage 4.
    assert sorted(k for k in params if k.startswith("refine")) == [
        "refine_1",
        "refine_2",
        "refine_3",
    ]
    assert params["refine_1"]["conv3"]["kernel"].shape == (1, 1, 32, 128)
    with pytest.raises(ValueError, match="two blocks"):
        ResNetMTAN({"depth": 1}, resnet="resnet_small").init(jax.random.key(0), x)


def test_trunk_has_the_resnet_parameter_tree():
    """The trunk's variables are those of the backbone ResNet, so ImageNet conversions apply."""
    from mtnets.models import create_backbone

    x = jnp.zeros((1, 64, 64, 3))
    resnet = jax.eval_shape(create_backbone("resnet18", dilated=True).init, jax.random.key(0), x)

    def all_parts(module, images):
        y = module(images, "stem")
        for s in range(1, 5):
            y = module(y, f"layer{s}")
        return y

    trunk = resnet_trunk("resnet18", 8)
    ours = jax.eval_shape(
        lambda: trunk.init(jax.random.key(0), x, method=lambda m, v: all_parts(m, v))
    )
    assert jax.tree.map(lambda a: a.shape, ours) == jax.tree.map(lambda a: a.shape, resnet)


def test_resnet_pieces_compute_the_resnet():
    """Stem and stages one call at a time (stage 3, dilated, split before its last block)
    give, with the ResNet's own variables, the ResNet's features (output stride 8). A narrow
    ResNet with two blocks in the split stage keeps the op-by-op run short."""
    images = jax.random.normal(jax.random.key(1), (1, 32, 32, 3))
    spec = dict(stage_sizes=(1, 1, 2, 1), block=BasicBlock, width=4, output_stride=8)
    resnet = ResNet(**spec)
    variables = resnet.init(jax.random.key(0), images)
    want = resnet.apply(variables, images)

    def pieces(module, x):
        x = module(x, "stem")
        out = []
        for s in range(1, 5):
            if s == 3:
                x = module(module(x, "layer3:except_last"), "layer3:last")
            else:
                x = module(x, f"layer{s}")
            out.append(x)
        return out

    got = ResNetPieces(**spec).apply(variables, images, method=pieces)
    for s, x in enumerate(got):
        np.testing.assert_allclose(x, want[f"scale_{s}"], rtol=1e-5, atol=1e-5)
    assert got[-1].shape == (1, 4, 4, 32)


def test_pooling_follows_the_stage_strides():
    assert pool_after_stages(8) == [True, False, False]  # MTL's downsample config
    assert pool_after_stages(32) == [True, True, True]


def test_builder_rejects_unknown_names_and_backbones():
    with pytest.raises(ValueError, match="segnet_mtan"):
        create_model(resnet_config("mtan_v2", "resnet18", NYUD, "nyud_mt"))
    with pytest.raises(ValueError, match="not a ResNet"):
        create_model(resnet_config("mtan", "hrnet_w18", NYUD, "nyud_mt"))
    assert "segnet_mtan" in MODELS and "nddr_cnn" in MODELS


def synthetic_batch(n=2, height=32, width=64):
    examples = [render_example(0, "train", i, height, width) for i in range(n)]
    batch = {k: np.stack([e[k] for e in examples]) for k in ("image", "semseg", "depth", "normals")}
    batch["image"] = (batch["image"].astype(np.float32) / 255.0 - 0.45) / 0.25
    batch["semseg"] = batch["semseg"].astype(np.int32)
    return {k: jnp.asarray(v) for k, v in batch.items()}


def numpy_init(model, images, seed=0):
    """He-normal kernels, zero biases, identity BatchNorm, drawn with NumPy for the shapes of
    `model.init`: compiling the init itself (one RNG graph per parameter) would cost longer
    than the training steps."""
    from flax.traverse_util import flatten_dict, unflatten_dict

    rng = np.random.default_rng(seed)
    shapes = flatten_dict(jax.eval_shape(model.init, jax.random.key(0), images))
    values = {}
    for path, leaf in shapes.items():
        if path[-1] == "kernel":
            fan_in = int(np.prod(leaf.shape[:-1]))
            values[path] = rng.normal(0, np.sqrt(2 / fan_in), leaf.shape).astype(np.float32)
        elif path[-1] in ("scale", "var"):
            values[path] = np.ones(leaf.shape, np.float32)
        else:
            values[path] = np.zeros(leaf.shape, np.float32)
    return jax.tree.map(jnp.asarray, unflatten_dict(values))


def test_short_segnet_mtan_run_on_synthetic_scenes_lowers_the_loss():
    """A few Adam steps of SegNet-MTAN (narrow filters, the reference's layout) on one batch of
    synthetic scenes with lorenmt's losses: the summed loss ("equal" weighting) goes down.

    Two tasks, not lorenmt's three: compiling the backward pass of ~180 convolutions of the
    three-task network takes about a minute on a 2-core CPU, and a third attention branch
    exercises nothing that the second does not."""
    specs = task_specs(("semseg", "depth"), "synthetic_scenes")
    model = SegNetMTAN({t: s.channels for t, s in specs.items()}, filters=(8, 16, 16, 32, 32))
    batch = synthetic_batch()
    variables = numpy_init(model, batch["image"])
    tx = optax.adam(3e-3)
    opt_state = tx.init(variables["params"])

    def loss_fn(params, stats):
        preds, updates = model.apply(
            {"params": params, "batch_stats": stats},
            batch["image"],
            train=True,
            mutable=["batch_stats"],
        )
        total = sum(
            losses.task_loss(s, preds[t], batch[t], s.valid_mask(batch[t]), convention="lorenmt")
            for t, s in specs.items()
        )
        return total, updates["batch_stats"]

    # Fewer LLVM passes: halves the compile time of this ~120-convolution backward pass.
    fast = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}

    @functools.partial(jax.jit, compiler_options=fast)
    def step(params, stats, opt_state):
        (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, stats)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), stats, opt_state, loss

    params, stats = variables["params"], variables["batch_stats"]
    history = []
    for _ in range(8):
        params, stats, opt_state, loss = step(params, stats, opt_state)
        history.append(float(loss))
    assert np.all(np.isfinite(history))
    assert history[-1] < 0.8 * history[0], history
