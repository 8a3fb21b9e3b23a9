"""One trainer per workdir: an OS-level lock that dies with the process that holds it.

`hold(workdir)` takes an exclusive `fcntl.flock` on `<workdir>/train.lock` (process i > 0 of a
multi-process job: `train.lock.<i>`, so the processes of one job never lock each other out,
while a second job, whose process 0 also wants `train.lock`, is refused). The kernel releases
the lock when its holder exits in any way (kill -9 included), so a stale lock never blocks a
restart; the file itself stays, and its contents (host, pid, start time of the last holder) only
serve the error message of a refused trainer.

Where it holds: local disks, and NFS v4 (the lock goes through the server, across machines).
It does not on filesystems without working `flock` across machines, such as gcsfuse or NFS v3
without the lock daemon: there each machine sees only its own locks. Readers (eval.py,
predict.py) never lock.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import os
import socket

LOCK_FILE = "train.lock"


class WorkdirLockedError(RuntimeError):
    """Another live trainer holds the workdir."""


def lock_path(workdir: str, process_index: int = 0) -> str:
    name = LOCK_FILE if process_index == 0 else f"{LOCK_FILE}.{process_index}"
    return os.path.join(os.path.abspath(workdir), name)


def acquire(workdir: str, process_index: int = 0) -> int:
    """Locks `workdir` for this process and returns the lock's file descriptor (see `release`).

    Raises `WorkdirLockedError` naming the workdir and the holder (host, pid, since when) if
    another process holds it, and an `OSError` saying the workdir is not writable if the lock
    file cannot be created.
    """
    path = lock_path(workdir, process_index)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise OSError(
            f"The workdir {workdir} is not writable ({error.strerror or error}); "
            "choose another --workdir or fix its permissions."
        ) from error
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        holder = _read_holder(fd)
        os.close(fd)
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise WorkdirLockedError(
                f"The workdir {os.path.abspath(workdir)} is in use by another trainer ({holder}; "
                f"lock file {path}). Two trainers would overwrite each other's checkpoints: "
                "wait for it to finish, stop it, or choose another --workdir."
            ) from None
        raise OSError(f"Cannot lock {path}: {error.strerror or error}.") from error
    _write_holder(fd)
    return fd


def release(fd: int) -> None:
    """Gives the lock up (closing the descriptor would, too)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextlib.contextmanager
def hold(workdir: str, process_index: int = 0):
    """`acquire` for the duration of a `with` block."""
    fd = acquire(workdir, process_index)
    try:
        yield
    finally:
        release(fd)


def _write_holder(fd: int) -> None:
    since = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    record = {"host": socket.gethostname(), "pid": os.getpid(), "since": since}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
    os.fsync(fd)


def _read_holder(fd: int) -> str:
    """The holder as "host H, pid P, since T": what it wrote into the lock file."""
    try:
        record = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        return f"host {record['host']}, pid {record['pid']}, since {record['since']}"
    except (OSError, ValueError, KeyError):
        return "holder unknown: the lock file has no readable record yet"
