"""JAX's persistent compilation cache for the entry points, the tests and the benchmarks.

A compiled XLA program is stored on disk under a hash of the program, the compiler options and
the device kind, so a second start of the same run (a restart, another seed, `eval.py` after
`train.py`) loads its steps instead of compiling them again: on a 2-core CPU this turns minutes
of start-up into seconds. It must be configured before the first compilation.
"""

from __future__ import annotations

import os

import jax
from absl import flags, logging

_CACHE_DIR = flags.DEFINE_string(
    "jax_cache_dir",
    None,
    "Persistent XLA compilation cache; default $JAX_COMPILATION_CACHE_DIR, else "
    "$XDG_CACHE_HOME/mtnets/jax_cache (~/.cache/mtnets/jax_cache). 'none' turns it off.",
)

# Programs that compile faster than this are not worth a disk entry.
MIN_COMPILE_SECONDS = 0.5


def default_directory() -> str:
    cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.environ.get("JAX_COMPILATION_CACHE_DIR") or os.path.join(
        cache_home, "mtnets", "jax_cache"
    )


def enable(directory: str | None = None) -> str | None:
    """Turns the cache on in `directory` (default: `default_directory()`); "none" turns it off.
    Returns the directory used, or None."""
    directory = directory or default_directory()
    if directory.lower() == "none":
        jax.config.update("jax_compilation_cache_dir", None)
        return None
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return directory


def enable_from_flags() -> None:
    """`enable` with `--jax_cache_dir`, logged."""
    directory = enable(_CACHE_DIR.value)
    logging.info("XLA compilation cache: %s", directory or "off")
