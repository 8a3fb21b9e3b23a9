"""Comparing two pytrees by path and shape: the one place that says how two sets of variables
(a checkpoint and a model, converted weights and a model) differ."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import numpy as np


def path_name(path) -> str:
    """`"params/backbone/conv1/kernel"` for a `jax.tree_util` key path (dict keys, attribute
    names and sequence indices alike)."""
    names = []
    for key in path:
        for attribute in ("key", "name", "idx"):
            if hasattr(key, attribute):
                names.append(str(getattr(key, attribute)))
                break
    return "/".join(names)


def shapes(tree: Any) -> dict[str, tuple[int, ...]]:
    """`{path: shape}` of every leaf (arrays, `ShapeDtypeStruct`s, orbax metadata)."""
    return {
        path_name(path): tuple(np.shape(leaf) if not hasattr(leaf, "shape") else leaf.shape)
        for path, leaf in jax.tree_util.tree_leaves_with_path(tree)
    }


class Differences(NamedTuple):
    """Paths of `want` absent from `got`, paths of `got` absent from `want`, and paths in both
    whose shapes differ, each sorted, with their shapes."""

    missing: list[tuple[str, tuple]]  # (path, shape wanted)
    unexpected: list[tuple[str, tuple]]  # (path, shape got)
    reshaped: list[tuple[str, tuple, tuple]]  # (path, shape got, shape wanted)

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.reshaped)


def differences(got: Any, want: Any) -> Differences:
    """How the leaves of `got` differ from those of `want`, by path and shape."""
    got, want = shapes(got), shapes(want)
    return Differences(
        missing=sorted((k, s) for k, s in want.items() if k not in got),
        unexpected=sorted((k, s) for k, s in got.items() if k not in want),
        reshaped=sorted((k, got[k], s) for k, s in want.items() if k in got and got[k] != s),
    )
