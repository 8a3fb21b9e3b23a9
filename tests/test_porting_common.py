"""The state-dict reader: layouts, BatchNorm mapping, and errors on unmatched keys."""

import numpy as np
import pytest

from mtnets.porting.common import StateDict, check_shapes, conv_kernel


def test_conv_kernel_layout_gives_the_same_convolution():
    """A PyTorch OIHW weight transposed to HWIO computes the same correlation at one pixel."""
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(4, 3, 3, 3))  # O, I, kh, kw
    patch = rng.normal(size=(3, 3, 3))  # I, kh, kw (NCHW patch)
    torch_out = np.einsum("oikl,ikl->o", weight, patch)
    flax_out = np.einsum("klio,kli->o", conv_kernel(weight), patch.transpose(1, 2, 0))
    np.testing.assert_allclose(flax_out, torch_out)


def test_batch_norm_mapping_and_unused_keys():
    sd = StateDict(
        {
            "bn.weight": np.ones(2),
            "bn.bias": np.zeros(2),
            "bn.running_mean": np.full(2, 3.0),
            "bn.running_var": np.full(2, 4.0),
            "bn.num_batches_tracked": np.array(7),
            "fc.weight": np.ones((2, 2)),
        }
    )
    params, stats = sd.batch_norm("bn")
    assert set(params) == {"scale", "bias"} and stats["mean"][0] == 3 and stats["var"][0] == 4
    assert sd.unused() == ["fc.weight"]
    with pytest.raises(ValueError, match="fc.weight"):
        sd.finish()
    with pytest.raises(KeyError, match="conv.weight"):
        sd.conv("conv")


def test_check_shapes_lists_every_difference():
    expected = {"params": {"a": np.zeros((2, 3)), "b": np.zeros(4)}}
    with pytest.raises(ValueError) as error:
        check_shapes({"params": {"a": np.zeros((3, 2)), "c": np.zeros(1)}}, expected)
    message = str(error.value)
    assert "params/a: shape (3, 2) but the model has (2, 3)" in message
    assert "missing params/b (4,)" in message and "unexpected params/c (1,)" in message
    check_shapes({"params": {"a": np.ones((2, 3)), "b": np.ones(4)}}, expected)
