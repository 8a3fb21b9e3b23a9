"""Cross-stitch networks and NDDR-CNN on dilated ResNets (MTL `models/{cross_stitch,nddr_cnn}`)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtnets.models import create_backbone, create_model
from mtnets.models.baselines import MultiTaskModel
from mtnets.models.cross_stitch import CrossStitchNetwork, stitch_init
from mtnets.models.heads import DeepLabHead
from mtnets.models.nddr_cnn import NDDRCNN, nddr_init
from mtnets.porting.mtan import variables_from_single_task_variables
from tests.experiment_configs import model_config

PASCAL = ("semseg", "human_parts", "sal", "normals", "edge")
NYUD = ("semseg", "depth")


def count(tree) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def config_for(name, backbone, tasks, dataset, alpha=0.9, beta=0.1):
    return model_config(
        name, tasks, dataset, backbone=backbone, output_stride=8, alpha=alpha, beta=beta
    )


@pytest.mark.parametrize(
    "name, backbone, tasks, dataset, expected",
    # `sum(p.numel())` of MTL's networks as `get_model` builds them for the YAMLs
    # `configs/{pascal/resnet18,nyud/resnet50}/{cross_stitch,nddr_cnn}.yml`.
    [
        ("cross_stitch", "resnet18", PASCAL, "pascal_context_mt", 79_525_921),
        ("cross_stitch", "resnet50", NYUD, "nyud_mt", 79_292_841),
        ("nddr_cnn", "resnet18", PASCAL, "pascal_context_mt", 88_318_561),
        ("nddr_cnn", "resnet50", NYUD, "nyud_mt", 101_591_721),
    ],
)
def test_parameter_counts_equal_the_reference(name, backbone, tasks, dataset, expected):
    model = create_model(config_for(name, backbone, tasks, dataset))
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 64, 64, 3)))
    assert count(shapes["params"]) == expected


def test_unit_initialisation():
    """Cross-stitch: alpha on the diagonal, beta elsewhere (`CrossStitchUnit.__init__`); NDDR:
    alpha * I on the task's own input block, beta * I on the others (`NDDRLayer.__init__`).
    The models use these initialisers (the identity test below runs them)."""
    unit = stitch_init(0.8, 0.05)(jax.random.key(0), (3, 3, 32))
    np.testing.assert_allclose(unit[:, :, 5], 0.05 + 0.75 * np.eye(3), rtol=1e-6)
    kernel = np.asarray(nddr_init(1, 3, 0.8, 0.05)(jax.random.key(0), (1, 1, 48, 16)))[0, 0]
    for block, weight in enumerate((0.05, 0.8, 0.05)):
        np.testing.assert_allclose(kernel[16 * block : 16 * (block + 1)], weight * np.eye(16))
    x = jnp.zeros((1, 64, 64, 3))
    outputs = {"semseg": 3, "depth": 1, "normals": 3}
    cs = CrossStitchNetwork(outputs, resnet="resnet_small")
    shapes = jax.eval_shape(cs.init, jax.random.key(0), x)["params"]
    assert [shapes[f"cross_stitch_layer{s}"].shape for s in range(1, 5)] == [
        (3, 3, c) for c in (16, 32, 64, 128)
    ]
    nddr = NDDRCNN(outputs, resnet="resnet_small")
    shapes = jax.eval_shape(nddr.init, jax.random.key(0), x)["params"]
    assert shapes["nddr_stem"]["conv_2"]["kernel"].shape == (1, 1, 48, 16)
    assert shapes["nddr_layer4"]["conv_0"]["kernel"].shape == (1, 1, 384, 128)


def fast_jit(fn):
    """`jax.jit` with fewer LLVM passes: these small graphs compile in a fraction of the time."""
    options = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
    return jax.jit(fn, compiler_options=options)


def single_task_variables(task, outputs, seed):
    backbone = create_backbone("resnet_small", dilated=True)
    model = MultiTaskModel(backbone, {task: DeepLabHead(outputs)})
    x = jnp.zeros((1, 64, 64, 3))
    variables = fast_jit(model.init)(jax.random.key(seed), x)
    # Random BatchNorm statistics, so that copying them is tested too.
    rng = np.random.default_rng(seed)
    stats = jax.tree.map(
        lambda v: jnp.asarray(rng.uniform(0.5, 1.5, v.shape), v.dtype), variables["batch_stats"]
    )
    return model, {"params": variables["params"], "batch_stats": stats}


@pytest.mark.parametrize("cls", [CrossStitchNetwork, NDDRCNN])
def test_identity_units_give_the_single_task_networks(cls):
    """With alpha = 1 and beta = 0 the units pass each task's features through (NDDR: up to its
    BatchNorm's 1/sqrt(1 + eps) at identity statistics), so the network initialised from
    single-task models predicts what those models predict."""
    outputs = {"semseg": 3, "depth": 1}
    x = jax.random.normal(jax.random.key(1), (2, 64, 64, 3))
    multi = cls(outputs, resnet="resnet_small", alpha=1.0, beta=0.0)
    fresh = fast_jit(multi.init)(jax.random.key(0), x)
    singles, expected = {}, {}
    for seed, (task, channels) in enumerate(outputs.items()):
        model, singles[task] = single_task_variables(task, channels, seed + 2)
        expected[task] = fast_jit(model.apply)(singles[task], x)[task]
    variables = variables_from_single_task_variables(fresh, singles)
    got = fast_jit(multi.apply)(variables, x)
    for task in outputs:
        np.testing.assert_allclose(got[task], expected[task], rtol=1e-4, atol=1e-4)


def test_single_task_initialisation_names_missing_pieces():
    fresh = {"params": {"backbone_semseg": {}, "head_semseg": {}}}
    with pytest.raises(ValueError, match="heads_semseg"):
        variables_from_single_task_variables(fresh, {"semseg": {"params": {"backbone": {}}}})
