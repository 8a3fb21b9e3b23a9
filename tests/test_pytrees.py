"""`mtnets.pytrees.differences`: the one path-and-shape comparison of two variable trees."""

import jax
import numpy as np

from mtnets import pytrees


def test_differences_by_path_and_shape():
    got = {"params": {"a": np.zeros((3, 2)), "b": [np.zeros(1), np.zeros(2)], "c": np.zeros(1)}}
    want = {
        "params": {
            "a": jax.ShapeDtypeStruct((2, 3), np.float32),
            "b": [np.zeros(1), np.zeros(2)],
            "d": np.zeros((4,)),
        }
    }
    diff = pytrees.differences(got, want)
    assert diff.missing == [("params/d", (4,))]
    assert diff.unexpected == [("params/c", (1,))]
    assert diff.reshaped == [("params/a", (3, 2), (2, 3))]
    assert diff and not pytrees.differences(want, want)
    assert pytrees.shapes(got)["params/b/1"] == (2,)
