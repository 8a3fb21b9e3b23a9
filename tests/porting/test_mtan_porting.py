"""Porting lorenmt/mtan and MTL state dicts onto the MTAN family, without PyTorch.

The reference state dicts are written here from the architecture as docs/reference_notes.md#mtan and
`MTAN:im2im_pred/model_segnet_mtan.py` describe it (names and PyTorch shapes), independently of
the converter's own naming rules. Output parity with the reference code itself is checked
outside the repository (see docs/porting.md).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtnets.models import create_model
from mtnets.porting.mtan import (
    lorenmt_outputs,
    reference_logsigma,
    single_task_state_dicts,
    variables_from_reference,
)
from tests.experiment_configs import model_config

F = [64, 128, 256, 512, 512]


def config_for(name, tasks=("semseg", "depth", "normals"), dataset="nyuv2_mtan", **model):
    return model_config(name, tasks, dataset, **model)


def conv_layer(sd, prefix, cin, cout, rng):
    """lorenmt's `conv_layer`: Sequential(Conv2d 3x3 with bias, BatchNorm2d, ReLU)."""
    weight = rng.normal(size=(cout, cin, 3, 3)) / np.sqrt(9 * cin)  # finite activations
    sd[f"{prefix}.0.weight"] = weight.astype(np.float32)
    sd[f"{prefix}.0.bias"] = rng.normal(size=cout).astype(np.float32)
    batch_norm(sd, f"{prefix}.1", cout, rng)


def batch_norm(sd, prefix, c, rng):
    sd[f"{prefix}.weight"] = rng.normal(size=c).astype(np.float32)
    sd[f"{prefix}.bias"] = rng.normal(size=c).astype(np.float32)
    sd[f"{prefix}.running_mean"] = rng.normal(size=c).astype(np.float32)
    sd[f"{prefix}.running_var"] = rng.uniform(0.5, 1.5, size=c).astype(np.float32)
    sd[f"{prefix}.num_batches_tracked"] = np.array(3)


def att_layer(sd, prefix, cin, mid, cout, rng):
    """Sequential(Conv2d 1x1, BN, ReLU, Conv2d 1x1, BN, Sigmoid)."""
    sd[f"{prefix}.0.weight"] = rng.normal(size=(mid, cin, 1, 1)).astype(np.float32)
    sd[f"{prefix}.0.bias"] = rng.normal(size=mid).astype(np.float32)
    batch_norm(sd, f"{prefix}.1", mid, rng)
    sd[f"{prefix}.3.weight"] = rng.normal(size=(cout, mid, 1, 1)).astype(np.float32)
    sd[f"{prefix}.3.bias"] = rng.normal(size=cout).astype(np.float32)
    batch_norm(sd, f"{prefix}.4", cout, rng)


def lorenmt_segnet(sd, rng):
    """The shared SegNet of `model_segnet_{mtan,split,single}.py` (13 conv layers each way)."""
    conv_layer(sd, "encoder_block.0", 3, F[0], rng)
    conv_layer(sd, "decoder_block.0", F[0], F[0], rng)
    conv_layer(sd, "conv_block_enc.0", F[0], F[0], rng)
    conv_layer(sd, "conv_block_dec.0", F[0], F[0], rng)
    for i in range(4):
        conv_layer(sd, f"encoder_block.{i + 1}", F[i], F[i + 1], rng)
        conv_layer(sd, f"decoder_block.{i + 1}", F[i + 1], F[i], rng)
        if i == 0:
            conv_layer(sd, "conv_block_enc.1", F[1], F[1], rng)
            conv_layer(sd, "conv_block_dec.1", F[0], F[0], rng)
        else:
            for k in range(2):
                conv_layer(sd, f"conv_block_enc.{i + 1}.{k}", F[i + 1], F[i + 1], rng)
                conv_layer(sd, f"conv_block_dec.{i + 1}.{k}", F[i], F[i], rng)


def heads(sd, outputs, rng, names=("pred_task1", "pred_task2", "pred_task3")):
    for name, c in zip(names, outputs, strict=True):
        sd[f"{name}.0.weight"] = (rng.normal(size=(F[0], F[0], 3, 3)) / 24).astype(np.float32)
        sd[f"{name}.0.bias"] = rng.normal(size=F[0]).astype(np.float32)
        sd[f"{name}.1.weight"] = rng.normal(size=(c, F[0], 1, 1)).astype(np.float32)
        sd[f"{name}.1.bias"] = rng.normal(size=c).astype(np.float32)


def mtan_state_dict(rng):
    """`SegNet().state_dict()` of `model_segnet_mtan.py`: docs/reference_notes.md#mtan"""
    sd = {}
    lorenmt_segnet(sd, rng)
    for j in range(3):
        att_layer(sd, f"encoder_att.{j}.0", F[0], F[0], F[0], rng)
        att_layer(sd, f"decoder_att.{j}.0", 2 * F[0], F[0], F[0], rng)
        for i in range(4):
            att_layer(sd, f"encoder_att.{j}.{i + 1}", 2 * F[i + 1], F[i + 1], F[i + 1], rng)
            att_layer(sd, f"decoder_att.{j}.{i + 1}", F[i + 1] + F[i], F[i], F[i], rng)
    conv_layer(sd, "encoder_block_att.0", F[0], F[1], rng)
    conv_layer(sd, "decoder_block_att.0", F[0], F[0], rng)
    for i in range(4):
        out_enc, out_dec = (F[i + 2], F[i]) if i < 3 else (F[4], F[4])
        conv_layer(sd, f"encoder_block_att.{i + 1}", F[i + 1], out_enc, rng)
        conv_layer(sd, f"decoder_block_att.{i + 1}", F[i + 1], out_dec, rng)
    heads(sd, (13, 1, 3), rng)
    sd["logsigma"] = np.array([-0.5, -0.4, -0.3], np.float32)
    return sd


def test_segnet_mtan_state_dict_maps_name_by_name():
    sd = mtan_state_dict(np.random.default_rng(0))
    variables = variables_from_reference(config_for("segnet_mtan"), sd)
    params, stats = variables["params"], variables["batch_stats"]
    np.testing.assert_array_equal(
        params["segnet"]["encoder_0"]["conv_0"]["kernel"],
        sd["encoder_block.0.0.weight"].transpose(2, 3, 1, 0),
    )
    # conv_block_enc[3] is two nested conv_layers: the second one's BN is our bn_1.
    np.testing.assert_array_equal(
        stats["segnet"]["encoder_conv_3"]["bn_1"]["var"], sd["conv_block_enc.3.1.1.running_var"]
    )
    # Task index: semantic 0, depth 1, normal 2; the mask's second conv is Sequential index 3.
    np.testing.assert_array_equal(
        params["decoder_att_normals_4"]["conv_1"]["bias"], sd["decoder_att.2.4.3.bias"]
    )
    np.testing.assert_array_equal(
        params["encoder_att_depth_2"]["bn_1"]["scale"], sd["encoder_att.1.2.4.weight"]
    )
    np.testing.assert_array_equal(params["head_depth"]["conv_1"]["bias"], sd["pred_task2.1.bias"])
    assert reference_logsigma(sd) == pytest.approx({"semseg": -0.5, "depth": -0.4, "normals": -0.3})


def test_heads_read_the_right_task_and_outputs_follow_lorenmt():
    """Zero head weights and known biases: each output is its reference head's bias."""
    rng = np.random.default_rng(1)
    sd = {}
    lorenmt_segnet(sd, rng)
    heads(sd, (13, 1, 3), rng)
    for name in ("pred_task1", "pred_task2", "pred_task3"):
        sd[f"{name}.1.weight"] *= 0
    sd["pred_task1.1.bias"] = np.arange(13, dtype=np.float32)
    sd["pred_task2.1.bias"] = np.array([7.0], np.float32)
    sd["pred_task3.1.bias"] = np.array([3.0, 0.0, 4.0], np.float32)
    config = config_for("segnet_split", tasks=("normals", "semseg", "depth"))
    variables = variables_from_reference(config, sd)
    fast = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
    apply = jax.jit(create_model(config).apply, compiler_options=fast)
    out = apply(variables, jnp.ones((1, 32, 32, 3)))
    np.testing.assert_allclose(out["depth"], 7.0)
    np.testing.assert_allclose(out["semseg"][0, 5, 9], np.arange(13))
    faithful = lorenmt_outputs(out)
    np.testing.assert_allclose(faithful["normals"][0, 0, 0], [0.6, 0.0, 0.8], rtol=1e-6)
    logits = np.arange(13.0)
    want = logits - np.log(np.sum(np.exp(logits)))
    np.testing.assert_allclose(faithful["semseg"][0, 3, 3], want, rtol=1e-5)


def test_leftover_keys_and_wrong_tasks_are_errors():
    sd = mtan_state_dict(np.random.default_rng(2))
    # Two tasks of a three-task checkpoint: the third task's keys are left over.
    with pytest.raises(ValueError, match="pred_task3"):
        variables_from_reference(config_for("segnet_mtan", tasks=("semseg", "depth")), sd)
    with pytest.raises(ValueError, match="lorenmt/mtan models have the tasks"):
        variables_from_reference(
            config_for("segnet_mtan", tasks=("semseg", "edge"), dataset="nyud_mt"), sd
        )
    with pytest.raises(ValueError, match="does not know"):
        variables_from_reference(config_for("mti_net"), sd)


def test_nddr_blocks_follow_the_reference_task_order():
    """MTL concatenates NDDR inputs in its TASKS.NAMES order (semseg before depth); with our
    tasks in the other order the kernels' input blocks are permuted, so the units come out as
    our own initialisation: alpha on the task's own block."""
    config = config_for(
        "nddr_cnn",
        tasks=("depth", "semseg"),
        dataset="nyud_mt",
        backbone="resnet18",
        alpha=0.8,
        beta=0.05,
    )
    model = create_model(config)
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 64, 64, 3)))
    singles = {}
    for task in ("semseg", "depth"):
        # An MTL SingleTaskModel state dict (DataParallel): `module.backbone.*`, `module.decoder.*`.
        singles[task] = single_task_dict(shapes, task)
    sd = single_task_state_dicts(config, singles)
    variables = variables_from_reference(config, sd)
    kernel = np.asarray(variables["params"]["nddr_layer2"]["conv_0"]["kernel"])[0, 0]  # depth
    c = kernel.shape[-1]
    np.testing.assert_allclose(kernel[:c], 0.8 * np.eye(c))  # depth's own block, first here
    np.testing.assert_allclose(kernel[c:], 0.05 * np.eye(c))
    stem = variables["params"]["backbone_semseg"]["conv1"]["kernel"]
    np.testing.assert_array_equal(
        stem, singles["semseg"]["module.backbone.conv1.weight"].transpose(2, 3, 1, 0)
    )


def single_task_dict(shapes, task):
    """torchvision ResNet + MTL DeepLabHead names and PyTorch layouts for our trunk and head."""
    from flax.traverse_util import flatten_dict

    rng = np.random.default_rng(len(task))
    leaves = {
        "kernel": "weight",
        "scale": "weight",
        "bias": "bias",
        "mean": "running_mean",
        "var": "running_var",
    }
    sd = {}
    for path, leaf in flatten_dict(shapes).items():
        collection, top, *rest, name = path
        if top == f"backbone_{task}":
            if len(rest) == 1:
                prefix = f"backbone.{rest[0]}"
            else:
                stage, index = rest[0].removeprefix("layer").split("_")
                module = {"downsample_conv": "downsample.0", "downsample_bn": "downsample.1"}
                prefix = f"backbone.layer{stage}.{index}.{module.get(rest[1], rest[1])}"
        elif top == f"head_{task}":
            if rest[0] == "predict":
                prefix = "decoder.4"
            elif rest[0] == "conv_bn":
                prefix = f"decoder.{ {'conv': 1, 'bn': 2}[rest[1]] }"
            elif rest[1] == "pool":
                prefix = f"decoder.0.convs.4.{ {'conv': 1, 'bn': 2}[rest[2]] }"
            elif rest[1] == "project":
                prefix = f"decoder.0.project.{ {'conv': 0, 'bn': 1}[rest[2]] }"
            else:
                prefix = f"decoder.0.convs.{rest[1][-1]}.{ {'conv': 0, 'bn': 1}[rest[2]] }"
        else:
            continue
        shape = leaf.shape
        if name == "kernel":
            shape = (shape[3], shape[2], shape[0], shape[1])
        sd[f"module.{prefix}.{leaves[name]}"] = rng.normal(size=shape).astype(np.float32)
    return sd
