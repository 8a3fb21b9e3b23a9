"""The Linen models used from Flax NNX code through `nnx.bridge.ToNNX`."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from mtnets.models import create_model
from tests.experiment_configs import model_config


def small_mti_net():
    c = model_config("mti_net", ("semseg", "depth"), "nyud_mt", head_width=8)
    c.model.mti_net.distill_all_scales = True  # the full MTI-Net
    return create_model(c)


class Refined(nnx.Module):
    """NNX code that owns a bridged MTI-Net and adds its own layer on the depth output."""

    def __init__(self, linen_model, x, rngs: nnx.Rngs):
        self.mti = nnx.bridge.ToNNX(linen_model, rngs=rngs).lazy_init(x, train=False)
        self.scale = nnx.Linear(1, 1, rngs=rngs)

    def __call__(self, x, train: bool = False):
        # Training updates the Linen BatchNorm statistics, so they are passed as mutable.
        mutable = ["batch_stats"] if train else False
        return self.scale(self.mti(x, train=train, mutable=mutable)["depth"])


def test_bridged_model_matches_linen_and_trains_from_nnx():
    x = jax.random.normal(jax.random.key(1), (2, 32, 32, 3))
    linen = small_mti_net()
    # Built under jit too: Linen's init of a whole MTI-Net runs op by op otherwise.
    model = nnx.jit(lambda: Refined(linen, x, nnx.Rngs(0)))()

    # Eval mode: the NNX wrapper computes what Linen's apply computes with the same variables.
    variables = {
        "params": nnx.to_pure_dict(nnx.state(model.mti, nnx.Param)),
        "batch_stats": nnx.to_pure_dict(nnx.state(model.mti, nnx.BatchStat)),
    }
    # Both under jit: op-by-op, a whole MTI-Net costs a minute of dispatch on a small CPU.
    expected = jax.jit(lambda v, x: linen.apply(v, x, train=False))(variables, x)
    got = nnx.jit(lambda m, x: m.mti(x, train=False))(model, x)
    for task in ("semseg", "depth"):
        np.testing.assert_allclose(got[task], expected[task], rtol=1e-5, atol=1e-5)
    assert set(got["intermediate"]) == {"scale_0", "scale_1", "scale_2", "scale_3"}

    # One NNX training step: gradients reach the Linen parameters, BatchNorm statistics move.
    optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)
    before = jax.tree.map(jnp.copy, nnx.state(model, nnx.BatchStat))

    @nnx.jit
    def step(model, optimizer, x):
        def loss_fn(model):
            return jnp.mean(model(x, train=True) ** 2)

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss, grads

    loss, grads = step(model, optimizer, x)
    assert np.isfinite(float(loss))
    backbone_grads = jax.tree.leaves(nnx.state(grads, nnx.Param)["mti"]["backbone"])
    assert any(float(jnp.abs(g).max()) > 0 for g in backbone_grads)
    after = nnx.state(model, nnx.BatchStat)
    moved = [
        not np.allclose(a, b)
        for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after), strict=True)
    ]
    assert any(moved)
