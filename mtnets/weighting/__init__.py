"""Loss weightings: how the per-task losses become the one loss that is differentiated.

One module per strategy (`fixed`, `equal`, `dwa`, `uncertainty`, `gradnorm`, `pcgrad`, `rlw`,
`famo`), each registered by name with its config defaults (`registry.register`); the protocol,
`chain` and `create_weighting` are in `base`. See docs/weighting.md.

Importing this package loads no JAX (configs read the registered defaults through `registry`);
the names of `base` (`create_weighting`, `Weighting`, `chain`, `initial_state`, ...) load on
first use.
"""

import importlib

from mtnets.weighting.registry import STRATEGIES, register, weighting_config

__all__ = ["STRATEGIES", "register", "weighting_config"]


def __getattr__(name: str):
    # importlib, not `from . import base`: a from-import would ask this hook again.
    base = importlib.import_module(f"{__name__}.base")
    if hasattr(base, name):
        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
