"""Temporary: the op recipes against the pre-recipe functions of mtnets.data.augment."""

import numpy as np
import pytest
import tensorflow as tf

from mtnets.data import augment, ops


def fields(rng, h=12, w=16, people=True):
    normals = rng.normal(size=(h, w, 3)).astype(np.float32)
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    parts = (
        rng.integers(0, 7, (h, w, 1)).astype(np.uint8)
        if people
        else np.full((h, w, 1), 255, np.uint8)
    )
    return {
        "image": tf.constant(rng.integers(0, 256, (h, w, 3)).astype(np.uint8)),
        "semseg": tf.constant(rng.integers(0, 21, (h, w, 1)).astype(np.uint8)),
        "human_parts": tf.constant(parts),
        "depth": tf.constant(rng.uniform(0.5, 5, (h, w, 1)).astype(np.float32)),
        "normals": tf.constant(normals),
    }


def same(a, b):
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        np.testing.assert_array_equal(a[k].numpy(), b[k].numpy(), err_msg=k)


CTX = ops.RecipeContext((10, 14), type("D", (), dict(scale_min=1.0, scale_max=1.5, flip=True))())


@pytest.mark.parametrize("seed", range(6))
def test_equivalence(seed):
    import mtnets.data.builders  # noqa: F401

    rng = np.random.default_rng(seed)
    s = tf.constant([seed, 3])
    for people in (True, False):
        f = fields(rng, people=people)
        r = ops.get_recipe("nyud")
        same(ops.apply(r.train(CTX), dict(f), s), augment.nyud_train(dict(f), s))
        same(ops.apply(r.eval(CTX), dict(f)), augment.nyud_finish(dict(f)))
        r = ops.get_recipe("lorenmt")
        same(ops.apply(r.train(CTX), dict(f), s), augment.lorenmt_train(dict(f), s))
        r = ops.get_recipe("pascal")
        z = dict(f)
        z["human_parts"] = tf.where(
            z["human_parts"] == 255, tf.zeros_like(z["human_parts"]), z["human_parts"]
        )
        same(ops.apply(r.train(CTX), dict(f), s), augment.pascal_train(dict(z), s, (10, 14)))
        same(ops.apply(r.eval(CTX), dict(f)), augment.pascal_finish(dict(z), (10, 14)))
        r = ops.get_recipe("synthetic")
        a, b = tf.unstack(tf.random.experimental.stateless_split(s, 2))
        old = augment.random_flip(augment.random_scale_crop(dict(f), a, 1.0, 1.5), b)
        same(ops.apply(r.train(CTX), dict(f), s), old)
