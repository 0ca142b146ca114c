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


def run_group(cmd, *, timeout: float, **kwargs) -> subprocess.CompletedProcess:
    """``subprocess.run(cmd, capture_output=True, text=True)`` in a new process group, killed on timeout.

    Raises ``subprocess.TimeoutExpired`` after killing the group, so no rank is left behind.
    """
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kwargs)
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException:
        kill_group(proc)
        raise
    kill_group(proc)  # children the leader left behind
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)
