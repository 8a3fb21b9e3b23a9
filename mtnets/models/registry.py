"""The model registry: one entry per model, in the model's own module; imports no JAX.

A model module registers its builder with what the rest of the library needs to know of it:

    @register_model(
        "cross_stitch",
        weights="mtnets.porting.mtan:RESNET_FAMILY",  # its reference-weight conversion
        defaults={"output_stride": 8, "alpha": 0.9, "beta": 0.1},  # its own config.model fields
        single_task_init=True,  # config.model.single_task_checkpoints applies
    )
    def build(config, dtype) -> nn.Module: ...

`create_model(config)` imports only the module that declares `config.model.name` and calls its
builder (big_vision style: found by name, no central table). Configs and config checks must
not load JAX, so the entries are also read from the modules' source (`declared`, the literal
arguments of every `@register_model(...)` in `mtnets/models/*.py`) rather than by importing
them; the arguments must therefore be literals (or module constants assigned one). Importing
a model module checks that what it registers is what its source declares.
"""

from __future__ import annotations

import ast
import functools
import importlib
import os
import pkgutil
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from mtnets.declarations import assigned_literals, literal

_PACKAGE = "mtnets.models"
_DIRECTORY = os.path.dirname(os.path.abspath(__file__))
_BUILDERS: dict[str, Callable] = {}
_REGISTERED: dict[str, ModelInfo] = {}


class ModelInfo(NamedTuple):
    """A registry entry, less the builder."""

    name: str
    module: str  # the module that registers it, e.g. "mtnets.models.cross_stitch"
    # What the input height and width must be multiples of (1: anything).
    input_divisor: int = 1
    # "module:attribute" of its reference-weight conversion, a callable
    # `(config, state_dict) -> variables` (see `mtnets.porting`); None: there is none.
    weights: str | None = None
    # Its own fields of `config.model` and their defaults (fields every model reads, such as
    # `backbone` or `head_width`, are in configs/default.py).
    defaults: Mapping[str, Any] = {}
    # Whether its task networks can start from single-task checkpoints
    # (`config.model.single_task_checkpoints`, `mtnets.train.warm_start`).
    single_task_init: bool = False


def register_model(
    name: str,
    *,
    input_divisor: int = 1,
    weights: str | None = None,
    defaults: Mapping[str, Any] | None = None,
    single_task_init: bool = False,
):
    """Decorator: `build(config, dtype) -> flax.linen.Module` is the model `name`. The arguments
    must be literals; see the module docstring and `ModelInfo` for their meaning."""

    def wrap(build: Callable) -> Callable:
        info = ModelInfo(
            name, build.__module__, input_divisor, weights, dict(defaults or {}), single_task_init
        )
        if name in _REGISTERED and _REGISTERED[name].module != info.module:
            raise ValueError(
                f"Two models are registered as {name!r}: in {_REGISTERED[name].module} and "
                f"{info.module}."
            )
        _BUILDERS[name] = build
        _REGISTERED[name] = info
        return build

    return wrap


# ---------------------------------------------------------------------------------------------
# The entries as the source declares them (no import of a model module).
# ---------------------------------------------------------------------------------------------


@functools.cache
def declared() -> dict[str, ModelInfo]:
    """`{name: ModelInfo}` of every `@register_model(...)` in the modules of `mtnets/models`
    (not its sub-packages), read from their source; names in file order."""
    out: dict[str, ModelInfo] = {}
    for info in sorted(pkgutil.iter_modules([_DIRECTORY]), key=lambda i: i.name):
        if info.ispkg:
            continue
        path = os.path.join(_DIRECTORY, f"{info.name}.py")
        for entry in _declared_in(path, f"{_PACKAGE}.{info.name}"):
            if entry.name in out:
                raise ValueError(
                    f"Two models are declared as {entry.name!r}: in {out[entry.name].module} "
                    f"and {entry.module}."
                )
            out[entry.name] = entry
    return out


def _declared_in(path: str, module: str) -> list[ModelInfo]:
    tree = _parse(path)
    constants = _module_constants(path)
    entries = []
    for node in tree.body:
        for call in getattr(node, "decorator_list", []):
            if not (isinstance(call, ast.Call) and _called(call) == "register_model"):
                continue
            try:
                name = literal(call.args[0], constants)
                kw = {k.arg: literal(k.value, constants) for k in call.keywords}
            except ValueError as error:
                raise ValueError(
                    f"{path}:{call.lineno}: the arguments of @register_model(...) must be "
                    "literals, or constants assigned a literal in this module or imported "
                    "from another of mtnets/models (configs read them without importing "
                    "the module)."
                ) from error
            kw["defaults"] = dict(kw.get("defaults") or {})
            entries.append(ModelInfo(name, module, **kw))
    return entries


@functools.cache
def _parse(path: str) -> ast.Module:
    with open(path, encoding="utf-8") as f:
        return ast.parse(f.read(), path)


def _called(call: ast.Call) -> str | None:
    func = call.func
    return func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)


@functools.cache
def _module_constants(path: str) -> dict[str, Any]:
    """The top-level `NAME = <literal>` assignments of a module, and the names it imports
    from a sibling module (`from mtnets.models.x import NAME`) that are such constants there."""
    imported: dict[str, Any] = {}
    for node in _parse(path).body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(f"{_PACKAGE}."):
            sibling = os.path.join(_DIRECTORY, f"{node.module.split('.')[-1]}.py")
            if node.module.count(".") == 2 and os.path.exists(sibling):
                theirs = _module_constants(sibling)
                for alias in node.names:
                    if alias.name in theirs:
                        imported[alias.asname or alias.name] = theirs[alias.name]
    return assigned_literals(_parse(path), imported)


# ---------------------------------------------------------------------------------------------
# Lookups by name.
# ---------------------------------------------------------------------------------------------


def names() -> tuple[str, ...]:
    """Every declared model name."""
    return tuple(declared())


def model_info(name: str) -> ModelInfo:
    """The entry of model `name`, from the source; a clear error names the choices."""
    entries = declared()
    if name not in entries:
        raise ValueError(f"Unknown config.model.name {name!r}; choose one of {', '.join(entries)}.")
    return entries[name]


def builder(name: str) -> Callable:
    """The registered `build(config, dtype)` of model `name` (imports its module only)."""
    info = model_info(name)
    importlib.import_module(info.module)
    registered = _REGISTERED.get(name)
    if registered != info:
        raise RuntimeError(
            f"The model {name!r} is registered as {registered}, but the source of "
            f"{info.module} declares {info}: register a model in its own module under "
            f"mtnets/models with literal arguments, so that configs can read its entry."
        )
    return _BUILDERS[name]


def reference_weights(name: str) -> Callable | None:
    """The reference-weight conversion `(config, state_dict) -> variables` of model `name`
    (the object its entry names), or None when it has none."""
    target = model_info(name).weights
    if target is None:
        return None
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


def converted_by(module: str) -> tuple[str, ...]:
    """The models whose entry names a reference-weight conversion of `module`."""
    return tuple(
        n for n, info in declared().items() if (info.weights or "").startswith(module + ":")
    )


def input_divisor(config) -> int:
    """What the input height and width of `config.model.name` must be multiples of."""
    return model_info(config.model.name).input_divisor


def model_defaults(entries: Mapping[str, ModelInfo] | None = None) -> dict[str, Any]:
    """The model-specific `config.model` fields of every model (of `entries`, default all
    declared ones) with their defaults, for the config files. Two models may share a field
    (cross-stitch and NDDR-CNN: `alpha`), but not with different defaults."""
    out: dict[str, Any] = {}
    owner: dict[str, str] = {}
    for name, info in (declared() if entries is None else entries).items():
        for field, value in info.defaults.items():
            if field in out and out[field] != value:
                raise ValueError(
                    f"config.model.{field} has the default {out[field]!r} for {owner[field]!r} "
                    f"but {value!r} for {name!r}: a shared field needs one default."
                )
            out.setdefault(field, value)
            owner.setdefault(field, name)
    return out


def create_model(config):
    """The Linen module that `config.model` describes, with heads for `config.tasks`; the
    compute dtype is `config.dtype`."""
    import jax.numpy as jnp

    build = builder(config.model.name)
    return build(config, jnp.dtype(config.dtype))
