"""Atomic file writes: a temp file beside the target, renamed over it only when complete.

A leaf module (standard library only, nothing else of infd), like ``infd.config``, so that
``infd.renderers`` and ``infd.data`` can depend on it without importing the models.
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temp path beside ``path``; it replaces ``path`` only if the block finishes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temps(folder: str | Path) -> list[Path]:
    """Remove the temp files ``atomic_path`` leaves in ``folder`` when its process is killed (SIGKILL, a
    power cut); only safe while no other writer uses ``folder`` (a run holds its directory's lock)."""
    folder = Path(folder)
    stale = sorted(folder.glob(".*.tmp")) if folder.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return stale
