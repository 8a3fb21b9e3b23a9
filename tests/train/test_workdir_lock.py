"""One trainer per workdir: a second train.py is refused, a dead holder's lock is not."""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from mtnets.train import workdir_lock

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

HOLDER = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {root!r})
    from mtnets.train import workdir_lock
    workdir_lock.acquire({workdir!r})
    print("locked", flush=True)
    time.sleep(600)
    """
)


def test_second_trainer_is_refused_and_a_dead_holders_lock_is_not(tmp_path, tfds_data_dir):
    workdir = str(tmp_path / "run")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER.format(root=ROOT, workdir=workdir)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        second = subprocess.run(
            [
                sys.executable,
                "train.py",
                "--config=configs/synthetic/tiny.py",
                f"--config.dataset.data_dir={tfds_data_dir}",
                f"--workdir={workdir}",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert second.returncode == 1, second.stderr[-3000:]
        expected = f"in use by another trainer (host {socket.gethostname()}, pid {holder.pid}"
        assert f"The workdir {workdir} is {expected}, since " in second.stderr
        assert not os.path.exists(os.path.join(workdir, "checkpoints"))
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=60)
    # The kernel dropped the dead holder's lock: a restart takes it and records itself.
    with workdir_lock.hold(workdir):
        with open(workdir_lock.lock_path(workdir)) as f:
            record = json.load(f)
        assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
        since = time.strptime(record["since"][:19], "%Y-%m-%dT%H:%M:%S")
        assert abs(time.mktime(since) - time.mktime(time.gmtime())) < 600


def test_held_lock_is_refused_within_one_process_too(tmp_path):
    """flock belongs to the open file: even this process cannot take a lock it holds."""
    with workdir_lock.hold(str(tmp_path)):
        with pytest.raises(workdir_lock.WorkdirLockedError, match=f"pid {os.getpid()}"):
            workdir_lock.acquire(str(tmp_path))
    workdir_lock.release(workdir_lock.acquire(str(tmp_path)))  # released on leaving `hold`


def test_processes_of_one_job_lock_their_own_files(tmp_path):
    """Process i > 0 of a multi-process job locks `train.lock.<i>`: the processes of one job
    never refuse each other, while a second job's process 0 is refused."""
    with workdir_lock.hold(str(tmp_path), 0), workdir_lock.hold(str(tmp_path), 1):
        assert os.path.basename(workdir_lock.lock_path(str(tmp_path), 1)) == "train.lock.1"
        with pytest.raises(workdir_lock.WorkdirLockedError):
            workdir_lock.acquire(str(tmp_path), 0)


def test_unwritable_workdir_is_named(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(OSError, match="is not writable"):
        workdir_lock.acquire(str(blocker / "workdir"))
