"""Subprocesses for tests that never outlive the test: each runs in its own process group, and the
whole group is killed when it times out or the test fails (a torchrun's ranks included)."""
from __future__ import annotations

import os
import signal
import subprocess


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL every process of ``proc``'s group (it was started with ``start_new_session=True``)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _run_leader(cmd, timeout: float, kwargs: dict):
    """Start ``cmd`` in a new process group and wait for its leader: ``(proc, stdout, stderr)``; on a
    timeout (or any error) the whole group is killed and the error raised."""
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kwargs)
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException:
        kill_group(proc)
        raise
    return proc, out, err


def run_group(cmd, *, timeout: float, **kwargs) -> subprocess.CompletedProcess:
    """``subprocess.run(cmd, capture_output=True, text=True)`` in a new process group, killed on timeout.

    Raises ``subprocess.TimeoutExpired`` after killing the group, so no rank is left behind.
    """
    proc, out, err = _run_leader(cmd, timeout, kwargs)
    kill_group(proc)  # children the leader left behind
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def group_alive(pgid: int) -> bool:
    """Whether any process of the process group ``pgid`` is still running (zombies excluded on Linux)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if entry.isdigit():
            try:
                fields = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":  # fields: state, ppid, pgrp, ...
                return True
    return not os.path.isdir("/proc")


def run_group_checked(cmd, *, timeout: float, **kwargs) -> tuple[subprocess.CompletedProcess, float, bool]:
    """``run_group`` that also returns the wall time and whether any process of the group outlived its
    leader (checked after a short grace period, before the group is killed)."""
    import time

    start = time.monotonic()
    proc, out, err = _run_leader(cmd, timeout, kwargs)
    elapsed = time.monotonic() - start
    deadline = time.monotonic() + 5
    while group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    left_behind = group_alive(proc.pid)
    kill_group(proc)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err), elapsed, left_behind
