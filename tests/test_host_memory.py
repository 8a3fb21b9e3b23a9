"""The restart with transparent huge pages (mtnets.host_memory)."""

import os
import subprocess
import sys
import textwrap

import pytest

from mtnets import host_memory

GLIBC = (2, 36)


def test_adds_the_tunable():
    env = host_memory.huge_page_environment({"HOME": "/h"}, GLIBC, "madvise")
    assert env == {"HOME": "/h", "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}


def test_keeps_other_tunables():
    env = host_memory.huge_page_environment(
        {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, GLIBC, "always"
    )
    assert env["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"


@pytest.mark.parametrize(
    "environ, glibc, thp",
    [
        ({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, GLIBC, "madvise"),  # the user's choice
        ({"GLIBC_TUNABLES": "a.b=1:glibc.malloc.hugetlb=1"}, GLIBC, "madvise"),  # restarted
        ({"MTNETS_HUGE_PAGES": "0"}, GLIBC, "madvise"),  # opted out
        ({}, (2, 34), "madvise"),  # glibc without the tunable
        ({}, None, "madvise"),  # musl, macOS
        ({}, GLIBC, "never"),
        ({}, GLIBC, None),  # no transparent huge pages in the kernel
    ],
)
def test_no_restart(environ, glibc, thp):
    assert host_memory.huge_page_environment(environ, glibc, thp) is None


def test_without_huge_pages_keeps_the_other_tunables():
    """What `pytorch_reference.py compare --reference-malloc default` gives the reference."""
    env = {"HOME": "/h", "GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"}
    assert host_memory.without_huge_pages(env) == {
        "HOME": "/h",
        "GLIBC_TUNABLES": "glibc.malloc.arena_max=2",
    }
    assert host_memory.without_huge_pages({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}) == {}
    assert host_memory.without_huge_pages({"A": "1"}) == {"A": "1"}


def test_thp_mode_reads_the_selected_word(tmp_path, monkeypatch):
    setting = tmp_path / "enabled"
    setting.write_text("always [madvise] never\n")
    monkeypatch.setattr(host_memory, "_THP_SETTING", str(setting))
    assert host_memory._thp_mode() == "madvise"
    monkeypatch.setattr(host_memory, "_THP_SETTING", str(tmp_path / "missing"))
    assert host_memory._thp_mode() is None


# Allocates and frees a 256 MiB block 8 times from a second thread (as XLA:CPU's worker threads
# do with a step's temporaries), touching every page, and prints the page faults per block.
_FAULTS = textwrap.dedent(
    """
    import ctypes, os, resource, sys, threading
    from mtnets import host_memory
    host_memory.restart_with_huge_pages()
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    size, rounds, faults = 256 << 20, 8, []
    def work():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(rounds):
            block = libc.malloc(size)
            ctypes.memset(block, 1, size)
            libc.free(ctypes.c_void_p(block))
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    print(os.environ.get("GLIBC_TUNABLES", ""), faults[0] // rounds)
    """
)


def _faults_per_block(opt_out: str) -> tuple[str, int]:
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    env[host_memory.OPT_OUT] = opt_out
    out = subprocess.run(
        [sys.executable, "-c", _FAULTS], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    return (out[0] if len(out) == 2 else ""), int(out[-1])


@pytest.mark.skipif(
    not host_memory.supported(),
    reason="needs Linux, glibc >= 2.35 and transparent huge pages",
)
def test_restart_cuts_the_page_faults_of_large_blocks():
    tunables, huge = _faults_per_block("1")
    assert tunables == "glibc.malloc.hugetlb=1"  # the child restarted itself once
    plain_tunables, plain = _faults_per_block("0")
    assert plain_tunables == ""
    # 4 KiB pages: one fault per page of the 256 MiB block.
    assert plain > 0.9 * (256 << 20) // 4096
    assert huge < plain / 8
