"""MTI-Net's stacked per-task modules: the same outputs and BatchNorm statistics as one module
per task (the layout before 2026-12-03), and the conversion of that layout.

The oracle `PerTaskMTINet` builds MTI-Net the direct way, one BasicBlock / SE / SABlock / head
per task from the library's blocks, named as the per-task layout was; its variables, converted
by `stack_per_task_variables`, must give `MTINet` the same outputs in eval and train mode and
the same updated BatchNorm statistics.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtnets.models import create_backbone, create_model
from mtnets.models.backbones.resnet import BasicBlock
from mtnets.models.heads import HighResolutionHead
from mtnets.models.layers import SEBlock, conv, resize
from mtnets.models.mti_net import (
    fpm_attention,
    per_task_layout_note,
    stack_per_task_variables,
)
from mtnets.models.pad_net import MultiTaskDistillation as PerTaskDistillation
from tests.experiment_configs import model_config

OUTPUTS = {"semseg": 40, "depth": 1, "normals": 3, "edge": 1}


class PerTaskInitial(nn.Module):
    tasks: Sequence[str]
    channels: int

    @nn.compact
    def __call__(self, x, propagated, train):
        features, predictions = {}, {}
        for t in self.tasks:
            y = x
            if propagated is not None:
                p = propagated[t]
                y = jnp.concatenate([x, resize(p, (2 * p.shape[1], 2 * p.shape[2]))], axis=-1)
            y = BasicBlock(self.channels, name=f"{t}_refine_0")(y, train)
            features[t] = BasicBlock(self.channels, name=f"{t}_refine_1")(y, train)
            predictions[t] = conv(OUTPUTS[t], 1, use_bias=True, name=f"{t}_predict")(features[t])
        return features, predictions


class PerTaskPropagation(nn.Module):
    tasks: Sequence[str]
    softmax: str

    @nn.compact
    def __call__(self, features, train):
        n = len(self.tasks)
        concat = jnp.concatenate([features[t] for t in self.tasks], axis=-1)
        s = concat.shape[-1]
        y = BasicBlock(s // 4, name="non_linear_0")(concat, train)
        y = BasicBlock(s // 4, name="non_linear_1")(y, train)
        y = conv(s, 1, use_bias=True, name="non_linear_2")(y)
        shared = fpm_attention(y, concat, n, self.softmax)
        shared = BasicBlock(s // n, name="reduction")(shared, train)
        return {t: SEBlock(name=f"se_{t}")(shared) + features[t] for t in self.tasks}


class PerTaskMTINet(nn.Module):
    backbone: nn.Module
    tasks: Sequence[str]
    aux_tasks: Sequence[str]
    num_scales: int = 4
    use_fpm: bool = True
    distill_all_scales: bool = True
    fpm_softmax: str = "reference"
    head_width: int = 0

    @nn.compact
    def __call__(self, images, train: bool = False) -> Mapping[str, Any]:
        backbone = self.backbone(images, train)
        features, intermediate, propagated = {}, {}, None
        for s in reversed(range(self.num_scales)):
            x = backbone[f"scale_{s}"]
            initial = PerTaskInitial(self.aux_tasks, x.shape[-1], name=f"scale_{s}")
            features[s], intermediate[f"scale_{s}"] = initial(x, propagated, train)
            if self.use_fpm and s > 0:
                fpm = PerTaskPropagation(self.aux_tasks, self.fpm_softmax, name=f"fpm_scale_{s}")
                propagated = fpm(features[s], train)
        distilled = {
            s: PerTaskDistillation(self.tasks, self.aux_tasks, name=f"distillation_scale_{s}")(
                features[s]
            )
            if s == 0 or self.distill_all_scales
            else features[s]
            for s in range(self.num_scales)
        }
        out = {}
        for t in self.tasks:
            head = HighResolutionHead(OUTPUTS[t], self.head_width, name=f"head_{t}")
            scales = {f"scale_{s}": distilled[s][t] for s in range(self.num_scales)}
            out[t] = resize(head(scales, train), images.shape[1:3])
        out["intermediate"] = {k: intermediate[k] for k in sorted(intermediate)}
        return out


def config(aux, head_width, **mti):
    c = model_config(
        "mti_net", ("semseg", "depth"), "nyud_mt", aux, backbone="hrnet_tiny", head_width=head_width
    )
    c.model.mti_net.update({"distill_all_scales": True, **mti})  # the oracle's: the full model
    return c


def perturbed(variables, seed=1):
    """Variables whose BatchNorm scales, biases and statistics are not the init's constants."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(
        lambda a: a + rng.uniform(0.1, 0.3, a.shape).astype(a.dtype) if a.ndim == 1 else a,
        variables,
    )


def assert_trees_close(got, want):
    """Equal up to float32 rounding, relative to each array's largest value: the perturbed
    statistics drive the outputs to thousands (up to 2e4), where the scanned and the unrolled
    convolutions, the same sums in another order, differ by up to 9e-5 of that scale (measured).
    A task's slice taken from the wrong task differs by the scale itself."""
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        g, w = np.asarray(g, np.float64), np.asarray(w, np.float64)
        scale = max(1.0, float(np.abs(w).max()))
        assert np.abs(g - w).max() / scale < 2e-4, (np.abs(g - w).max(), scale)


@pytest.mark.parametrize(
    "aux, head_width, mti",
    [
        (("semseg", "normals", "edge", "depth"), 8, {}),
        ((), 0, dict(distill_all_scales=False, num_scales=2, fpm_softmax="per_task")),
    ],
)
def test_stacked_mti_net_equals_one_module_per_task(aux, head_width, mti):
    cfg = config(aux, head_width, **mti)
    aux_tasks = aux or cfg.tasks
    oracle = PerTaskMTINet(
        create_backbone("hrnet_tiny"), cfg.tasks, aux_tasks, head_width=head_width, **mti
    )
    x = jax.random.normal(jax.random.key(1), (2, 64, 64, 3))
    per_task = perturbed(jax.jit(oracle.init)(jax.random.key(0), x))
    stacked = stack_per_task_variables(per_task, cfg.tasks, aux_tasks)

    model = create_model(cfg)
    expected = jax.eval_shape(lambda: model.init(jax.random.key(0), x))
    assert jax.tree.map(np.shape, stacked) == jax.tree.map(np.shape, expected)

    def both_modes(module, variables):
        train = module.apply(variables, x, train=True, mutable=["batch_stats"])
        return module.apply(variables, x), *train

    got, got_train, got_stats = jax.jit(lambda v: both_modes(model, v))(stacked)
    want, want_train, want_stats = jax.jit(lambda v: both_modes(oracle, v))(per_task)
    assert_trees_close(got, want)
    assert_trees_close(got_train, want_train)
    # Each task's BatchNorm statistics are its own batch's, as with one module per task.
    assert_trees_close(got_stats, stack_per_task_variables(want_stats, cfg.tasks, aux_tasks))


def test_stacked_layout_puts_each_task_at_its_index():
    aux = ("semseg", "normals", "edge", "depth")
    oracle = PerTaskMTINet(create_backbone("hrnet_tiny"), ("semseg", "depth"), aux, num_scales=1)
    per_task = jax.jit(oracle.init)(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))["params"]
    stacked = stack_per_task_variables({"params": per_task}, ("semseg", "depth"), aux)["params"]
    refine = stacked["scale_0"]["refinement"]["block_1"]["conv2"]["kernel"]
    attention = stacked["distillation_scale_0"]["self_attention"]["block"]["conv"]["kernel"]
    for i, t in enumerate(aux):
        want = per_task["scale_0"][f"{t}_refine_1"]["conv2"]["kernel"]
        np.testing.assert_array_equal(refine[i], want)
    # Pairs (main task, other auxiliary task) in order: semseg from normals, edge, depth; then
    # depth from semseg, normals, edge.
    distill = per_task["distillation_scale_0"]
    np.testing.assert_array_equal(attention[2], distill["semseg_from_depth"]["conv"]["kernel"])
    np.testing.assert_array_equal(attention[3], distill["depth_from_semseg"]["conv"]["kernel"])
    np.testing.assert_array_equal(
        stacked["head_depth_predict"]["kernel"], per_task["head_depth"]["predict"]["kernel"]
    )


def test_per_task_layout_note():
    assert "stacks" in per_task_layout_note(["params/scale_1/depth_refine_0/conv1/kernel"])
    assert "stacks" in per_task_layout_note(["opt_state/0/mu/distillation_scale_0/a_from_b/conv"])
    assert per_task_layout_note(["params/scale_1/refinement/block_0/conv1/kernel"]) is None
    assert per_task_layout_note(["params/backbone/stage2_0/branch0_0/conv1/kernel"]) is None
