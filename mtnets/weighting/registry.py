"""The weighting registry and the `config.weighting` section; imports no JAX.

A strategy module registers its builder with its config defaults:

    @register("dwa", temperature=2.0, update_every_steps=0)
    def build(cfg, ctx: Context) -> Weighting: ...

`cfg` is the strategy's own sub-section `config.weighting.<name>` (the defaults, overridden by
the config file or the command line) and `ctx` what every strategy may need (task order, epoch
length, seed). Configs must be importable without JAX, so the defaults are also read from the
modules' source (`declared_defaults`, the literal arguments of each `@register(...)`) rather
than by importing them; they must therefore be literals.
"""

from __future__ import annotations

import ast
import functools
import importlib
import os
import pkgutil
from collections.abc import Callable
from typing import Any, NamedTuple

import ml_collections

from mtnets.declarations import assigned_literals, literal

_PACKAGE = "mtnets.weighting"
_DIRECTORY = os.path.dirname(os.path.abspath(__file__))
_BUILDERS: dict[str, Callable] = {}
_DEFAULTS: dict[str, dict[str, Any]] = {}

# Fields of `config.weighting` itself; everything else is a strategy's sub-section.
COMMON_FIELDS = ("name", "seed")
# The flat fields of the former single section, and where they live now.
MOVED = {
    "weights": "fixed.weights",
    "temperature": "dwa.temperature",
    "update_every_steps": "dwa.update_every_steps",
    "alpha": "gradnorm.alpha",
    "init": "uncertainty.init",
    "shared_path": "gradnorm.shared_path or pcgrad.shared_path",
}


class Context(NamedTuple):
    """What a builder gets besides its config sub-section."""

    tasks: tuple[str, ...]  # the order of the loss vector
    steps_per_epoch: int | None  # train examples // global batch size, when known
    seed: int  # config.weighting.seed, or config.seed when that is None


def register(name: str, **defaults):
    """Decorator: `build(cfg, ctx) -> Weighting` is the strategy `name`, whose config
    sub-section `config.weighting.<name>` has the fields and defaults `defaults` (literals)."""

    def wrap(build: Callable) -> Callable:
        if name in _BUILDERS:
            raise ValueError(f"Two weightings are registered as {name!r}.")
        _BUILDERS[name] = build
        _DEFAULTS[name] = defaults
        return build

    return wrap


def _is_register(node: ast.expr) -> bool:
    return isinstance(node, ast.Call) and getattr(node.func, "id", None) == "register"


@functools.cache
def declared_defaults() -> dict[str, dict[str, Any]]:
    """{strategy: defaults} of every module of the package, read from the `@register(...)`
    decorators in their source, so that no strategy (and no JAX) is imported."""
    out = {}
    for info in sorted(pkgutil.iter_modules([_DIRECTORY]), key=lambda i: i.name):
        path = os.path.join(_DIRECTORY, f"{info.name}.py")
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        constants = assigned_literals(tree)
        for node in tree.body:
            for call in getattr(node, "decorator_list", []):
                if not _is_register(call):
                    continue
                try:
                    name = literal(call.args[0], constants)
                    out[name] = {k.arg: literal(k.value, constants) for k in call.keywords}
                except ValueError as error:
                    raise ValueError(
                        f"{path}:{call.lineno}: the arguments of @register(...) must be "
                        "literals or module constants assigned a literal (configs read them "
                        "without importing the module)."
                    ) from error
    return out


STRATEGIES = tuple(declared_defaults())


def load_all() -> dict[str, Callable]:
    """Imports every strategy module (so that each registers) and returns {name: builder}."""
    for info in pkgutil.iter_modules([_DIRECTORY]):
        importlib.import_module(f"{_PACKAGE}.{info.name}")
    declared = declared_defaults()
    for name, defaults in _DEFAULTS.items():
        if declared.get(name) != defaults:
            raise RuntimeError(
                f"The weighting {name!r} is registered with defaults {defaults}, but the modules "
                f"of {_DIRECTORY} declare {declared.get(name)}: a weighting must be registered "
                "in its own module there, so that configs can read its defaults."
            )
    return dict(_BUILDERS)


def weighting_config(name: str) -> ml_collections.ConfigDict:
    """`config.weighting`: `name`, `seed` and one sub-section per registered strategy with the
    defaults it registers (so every field can be set from the command line)."""
    section = ml_collections.ConfigDict()
    section.name = name  # a strategy, or several joined by "+" (e.g. "dwa+pcgrad")
    section.seed = ml_collections.config_dict.placeholder(int)  # None: config.seed
    for strategy, defaults in declared_defaults().items():
        section[strategy] = ml_collections.ConfigDict(defaults)
    return section


def strategy_names(name: str) -> tuple[str, ...]:
    """The strategies of `config.weighting.name` ("dwa+pcgrad" -> ("dwa", "pcgrad")), checked."""
    names = tuple(part.strip() for part in str(name).split("+"))
    for part in names:
        if part not in STRATEGIES:
            raise ValueError(
                f"Unknown config.weighting.name {name!r}"
                + (f" (no strategy {part!r})" if part != name else "")
                + f"; choose one of {', '.join(STRATEGIES)}, or several joined by '+'."
            )
    if len(set(names)) != len(names):
        raise ValueError(f"config.weighting.name {name!r} names a strategy twice.")
    return names


def check_config(config) -> tuple[str, ...]:
    """Checks `config.weighting` (names, sections, fields) and returns the strategy names."""
    section = config.weighting
    names = strategy_names(section.name)
    for key in section:
        if key in COMMON_FIELDS or key in STRATEGIES:
            continue
        if key in MOVED:
            raise ValueError(
                f"config.weighting.{key} is now config.weighting.{MOVED[key]} (each strategy "
                "has its own sub-section, see docs/weighting.md)."
            )
        raise ValueError(
            f"Unknown field config.weighting.{key}; the fields are "
            f"{', '.join((*COMMON_FIELDS, *STRATEGIES))}."
        )
    for name in names:
        if name not in section:
            raise ValueError(
                f"config.weighting has no sub-section {name!r}; build the section with "
                "mtnets.weighting.registry.weighting_config()."
            )
        defaults = declared_defaults()[name]
        unknown = sorted(set(section[name]) - set(defaults))
        if unknown:
            raise ValueError(
                f"Unknown field(s) {unknown} in config.weighting.{name}; its fields are "
                f"{sorted(defaults)}."
            )
    return names


def build(config, tasks, steps_per_epoch: int | None) -> list:
    """The registered strategies of `config.weighting.name`, built from their sub-sections."""
    names = check_config(config)
    builders = load_all()
    seed = config.weighting.seed
    ctx = Context(tuple(tasks), steps_per_epoch, int(config.seed if seed is None else seed))
    return [builders[name](config.weighting[name], ctx) for name in names]
