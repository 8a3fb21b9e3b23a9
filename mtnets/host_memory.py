"""Transparent huge pages for the host memory of XLA:CPU programs (Linux with glibc >= 2.35).

Every execution of a compiled XLA:CPU program allocates its temporaries as one block (275 MB
for the MTI-Net NYUD train step at batch 2, 128x160) from a PJRT worker thread. glibc serves a
block that large with a fresh `mmap` and unmaps it when the step ends, so the next step touches
new memory again: one page fault per 4 KiB page, about 67,000 per step, which was a quarter of
the CPU step. glibc's tunable `glibc.malloc.hugetlb=1` makes malloc ask the kernel for
transparent huge pages on such maps (`madvise(MADV_HUGEPAGE)`), so a step faults on 2 MiB
pages instead: about 550 faults per step, and the step is 1.1 to 1.4x faster
(benchmarks/README.md).

glibc reads its tunables once, when the process starts, so the entry points call
`restart_with_huge_pages()` first thing: it re-executes the same command line once with the
tunable added to `GLIBC_TUNABLES`. It does nothing where the tunable cannot work (not Linux,
not glibc >= 2.35, transparent huge pages off) or is already set, or when
`MTNETS_HUGE_PAGES=0`. This module imports nothing heavy, so the restart costs only Python's
start-up.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping

TUNABLE = "glibc.malloc.hugetlb"
# Set to 0 to keep the process as it was started.
OPT_OUT = "MTNETS_HUGE_PAGES"
_THP_SETTING = "/sys/kernel/mm/transparent_hugepage/enabled"


def _glibc_version() -> tuple[int, ...] | None:
    library, version = platform.libc_ver()
    if library != "glibc" or not version:
        return None
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError:
        return None


def _thp_mode() -> str | None:
    """The selected transparent-huge-page mode ("always", "madvise" or "never"), or None when
    the kernel has none."""
    try:
        with open(_THP_SETTING) as f:
            text = f.read()
    except OSError:
        return None
    selected = [word[1:-1] for word in text.split() if word.startswith("[")]
    return selected[0] if selected else None


def _tunables(environ: Mapping[str, str]) -> list[str]:
    """The `name=value` items of `GLIBC_TUNABLES`."""
    return [item for item in environ.get("GLIBC_TUNABLES", "").split(":") if item]


def _sets_huge_pages(item: str) -> bool:
    return item.split("=")[0] == TUNABLE


def huge_page_environment(
    environ: Mapping[str, str],
    glibc_version: tuple[int, ...] | None,
    thp_mode: str | None,
) -> dict[str, str] | None:
    """The environment to restart with, or None when no restart is needed or it would not help.

    Other tunables already in `GLIBC_TUNABLES` are kept; one that sets `glibc.malloc.hugetlb`
    (to any value) is the user's choice and is left alone."""
    if environ.get(OPT_OUT, "1") == "0":
        return None
    if glibc_version is None or glibc_version < (2, 35):
        return None  # the tunable appeared in glibc 2.35
    if thp_mode not in ("always", "madvise"):
        return None
    tunables = _tunables(environ)
    if any(_sets_huge_pages(item) for item in tunables):
        return None
    return {**environ, "GLIBC_TUNABLES": ":".join([*tunables, f"{TUNABLE}=1"])}


def without_huge_pages(environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` without a `glibc.malloc.hugetlb` tunable: a child process (the PyTorch
    reference of the benchmarks) as it would run on its own."""
    env = {k: v for k, v in environ.items() if k != "GLIBC_TUNABLES"}
    tunables = [item for item in _tunables(environ) if not _sets_huge_pages(item)]
    if tunables:
        env["GLIBC_TUNABLES"] = ":".join(tunables)
    return env


def supported() -> bool:
    """Whether this machine can run with the tunable (Linux, glibc >= 2.35, transparent huge
    pages not off), whatever the current environment says."""
    return sys.platform == "linux" and (
        huge_page_environment({}, _glibc_version(), _thp_mode()) is not None
    )


def restart_with_huge_pages() -> None:
    """Re-executes this process's command line with glibc asking for transparent huge pages
    (see the module docstring); returns only where that is not needed or not possible."""
    if sys.platform != "linux":
        return
    env = huge_page_environment(os.environ, _glibc_version(), _thp_mode())
    if env is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    # orig_argv is the interpreter's own command line (`-m module`, `-c` and options included).
    try:
        os.execve(sys.executable, sys.orig_argv, env)
    except OSError:  # no usable interpreter path: go on as started, only slower
        return
