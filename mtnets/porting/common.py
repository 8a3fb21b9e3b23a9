"""Reading PyTorch state dicts into Flax variables, name by name, with nothing left unmatched.

A `StateDict` wraps `{name: numpy array}` (PyTorch names, NCHW/OIHW layouts) and hands out
Flax-layout arrays for the modules that ask for them, remembering which keys were used.
`finish()` then fails with the full list of keys that nothing asked for, and `check_shapes`
compares the result with the model's own variables, so a wrong or partial checkpoint is a
clear error instead of a silently half-loaded model (the MTL reference skips such keys).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from flax.traverse_util import unflatten_dict

from mtnets import pytrees

# Flax (collection, leaf) -> PyTorch parameter or buffer name, for convolutions, linear layers
# and BatchNorm alike.
LEAF_NAMES = {
    ("params", "kernel"): "weight",
    ("params", "bias"): "bias",
    ("params", "scale"): "weight",
    ("batch_stats", "mean"): "running_mean",
    ("batch_stats", "var"): "running_var",
}


def conv_kernel(weight: np.ndarray) -> np.ndarray:
    """PyTorch Conv2d weight `[O, I, kh, kw]` -> Flax Conv kernel `[kh, kw, I, O]`."""
    return np.transpose(weight, (2, 3, 1, 0))


def linear_kernel(weight: np.ndarray) -> np.ndarray:
    """PyTorch Linear weight `[O, I]` -> Flax Dense kernel `[I, O]`."""
    return np.transpose(weight)


class StateDict:
    """A PyTorch state dict read key by key; see the module docstring."""

    def __init__(self, state_dict: Mapping[str, Any], *, ignore: tuple[str, ...] = ()):
        self._arrays = {k: np.asarray(v) for k, v in state_dict.items()}
        self._used: set[str] = set()
        # Buffers PyTorch keeps that have no Flax counterpart.
        self._ignore = ("num_batches_tracked", *ignore)

    def take(self, name: str) -> np.ndarray:
        if name not in self._arrays:
            raise KeyError(f"The state dict has no key {name!r}.")
        self._used.add(name)
        return self._arrays[name]

    def has(self, name: str) -> bool:
        return name in self._arrays

    def conv(self, prefix: str) -> dict[str, np.ndarray]:
        """Params of a Conv2d at `prefix` (`kernel`, and `bias` where it has one)."""
        params = {"kernel": conv_kernel(self.take(f"{prefix}.weight"))}
        if self.has(f"{prefix}.bias"):
            params["bias"] = self.take(f"{prefix}.bias")
        return params

    def linear(self, prefix: str) -> dict[str, np.ndarray]:
        params = {"kernel": linear_kernel(self.take(f"{prefix}.weight"))}
        if self.has(f"{prefix}.bias"):
            params["bias"] = self.take(f"{prefix}.bias")
        return params

    def batch_norm(self, prefix: str) -> tuple[dict, dict]:
        """`(params, batch_stats)` of a BatchNorm2d: weight/bias -> scale/bias and running
        mean/var -> mean/var."""
        params = {"scale": self.take(f"{prefix}.weight"), "bias": self.take(f"{prefix}.bias")}
        stats = {
            "mean": self.take(f"{prefix}.running_mean"),
            "var": self.take(f"{prefix}.running_var"),
        }
        return params, stats

    def unused(self) -> list[str]:
        return sorted(
            k for k in self._arrays if k not in self._used and not k.endswith(self._ignore)
        )

    def finish(self) -> None:
        """Raises if any key of the state dict was not consumed."""
        unused = self.unused()
        if unused:
            raise ValueError(
                f"{len(unused)} key(s) of the state dict match nothing in the model: "
                + ", ".join(unused)
            )


def check_shapes(variables: Mapping, expected: Mapping) -> None:
    """Raises, listing every difference, unless `variables` has exactly the paths and shapes of
    `expected` (e.g. `jax.eval_shape(model.init, ...)`)."""
    diff = pytrees.differences(dict(variables), dict(expected))
    problems = [f"missing {k} {s}" for k, s in diff.missing]
    problems += [f"unexpected {k} {s}" for k, s in diff.unexpected]
    problems += [f"{k}: shape {g} but the model has {s}" for k, g, s in diff.reshaped]
    if problems:
        raise ValueError(
            "The converted variables do not fit the model:\n  " + "\n  ".join(sorted(problems))
        )


def nest(flat: Mapping[str, Any]) -> dict:
    """`{"a/b/c": x}` -> `{"a": {"b": {"c": x}}}`."""
    return unflatten_dict({tuple(k.split("/")): v for k, v in flat.items()})
