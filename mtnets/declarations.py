"""Literal values read from Python source without importing it.

The registries whose entries the config layer needs (models, weightings) read the literal
arguments of their decorators from the modules' source, so that a config never imports a
model or a strategy (and with it JAX). This module holds the one reading of "a literal" they
share.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from typing import Any


def literal(node: ast.expr, constants: Mapping[str, Any]) -> Any:
    """The value of `node`: a literal, a name of `constants`, or `dict(key=literal, ...)`.
    Anything else raises ValueError (from `ast.literal_eval`)."""
    if isinstance(node, ast.Name) and node.id in constants:
        return constants[node.id]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict":
        if not node.args:
            return {k.arg: literal(k.value, constants) for k in node.keywords}
    return ast.literal_eval(node)


def assigned_literals(tree: ast.Module, constants: Mapping[str, Any] | None = None) -> dict:
    """The top-level `NAME = <literal>` assignments of a module (names of `constants`, e.g.
    imported ones, may appear in them), added to a copy of `constants`."""
    out = dict(constants or {})
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                try:
                    out[target.id] = literal(node.value, out)
                except ValueError:
                    pass  # not a literal: not usable in a declaration
    return out
