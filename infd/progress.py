"""Progress for the command lines: a tqdm bar on a terminal, plain lines in a log file, and an early
estimate of long jobs.

``progress(desc, total, unit)`` returns an object with ``update(n)`` and ``close()``: a tqdm bar when
``file`` is a terminal, else a ``PlainProgress`` that writes a line at every tenth of the way (and at
least every ``PlainProgress.every_s`` seconds), so logs hold readable progress without cursor codes.
``estimate`` (optional) is called once, with the projected remaining seconds, after the first
``ESTIMATE_AFTER`` units and seconds, when more than ``LONG_S`` are left (e.g. to print the output size).
"""
from __future__ import annotations

import sys
import time
from typing import Callable, TextIO

ESTIMATE_AFTER = (3, 2.0)  # units done and seconds spent before the rate is trusted
LONG_S = 180.0  # remaining time above which a job is worth an estimate line


def format_seconds(seconds: float) -> str:
    """``"42 s"``, ``"3.5 min"`` or ``"2.1 h"``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


class PlainProgress:
    """Line-per-step progress for files and pipes: ``tiles 40/100 (40%) 12 s, about 18 s left``."""

    every_s = 30.0

    def __init__(self, desc: str, total: int, unit: str, file: TextIO):
        self.desc, self.total, self.unit, self.file = desc, max(int(total), 0), unit, file
        self.n, self.start = 0, time.monotonic()
        self._next_tenth, self._last_line = 1, self.start

    def _line(self) -> str:
        elapsed = time.monotonic() - self.start
        text = f"{self.desc} {self.n}/{self.total} {self.unit}s"
        if self.total:
            text += f" ({100 * self.n / self.total:.0f}%)"
        text += f" {format_seconds(elapsed)}"
        if 0 < self.n < self.total:
            text += f", about {format_seconds(elapsed / self.n * (self.total - self.n))} left"
        return text

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        tenth = self.n * 10 // self.total if self.total else 0
        if tenth >= self._next_tenth or now - self._last_line >= self.every_s:
            self._next_tenth, self._last_line = tenth + 1, now
            print(self._line(), file=self.file, flush=True)

    def close(self) -> None:
        if self.total and self._next_tenth <= 10 and self.n:  # the last line was not the 100% one
            print(self._line(), file=self.file, flush=True)
        self._next_tenth = 11


class _Estimating:
    """Wraps a progress object; calls ``estimate(remaining_s)`` once when the job looks long."""

    def __init__(self, inner, total: int, estimate: Callable[[float], None]):
        self.inner, self.total, self.estimate = inner, total, estimate
        self.n, self.start, self.done = 0, time.monotonic(), False

    def update(self, n: int = 1) -> None:
        self.inner.update(n)
        self.n += n
        elapsed = time.monotonic() - self.start
        if not self.done and self.n >= ESTIMATE_AFTER[0] and elapsed >= ESTIMATE_AFTER[1]:
            self.done = True
            remaining = elapsed / self.n * (self.total - self.n)
            if remaining > LONG_S:
                self.estimate(remaining)

    def close(self) -> None:
        self.inner.close()


class NoProgress:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def progress(desc: str, total: int, unit: str, *, enabled: bool = True, file: TextIO | None = None,
             position: int | None = None, estimate: Callable[[float], None] | None = None):
    """A progress object for ``total`` units (see the module doc); ``NoProgress`` when not ``enabled``."""
    file = sys.stderr if file is None else file
    if not enabled:
        return NoProgress()
    if file.isatty():
        from tqdm import tqdm

        inner = tqdm(total=total, desc=desc, unit=unit, file=file, position=position, dynamic_ncols=True)
    else:
        inner = PlainProgress(desc, total, unit, file)
    return inner if estimate is None else _Estimating(inner, total, estimate)
