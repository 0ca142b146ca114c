"""Skipping non-finite steps, and stopping cleanly on SIGTERM/SIGINT."""
from __future__ import annotations

import logging
import math
import signal

log = logging.getLogger("infd.train")


class NonFiniteLossError(RuntimeError):
    """Raised after too many consecutive non-finite losses."""


class NanGuard:
    """Counts consecutive non-finite losses; ``check`` returns False for a step that must be skipped."""

    def __init__(self, max_consecutive: int):
        self.max_consecutive = max_consecutive
        self.consecutive = 0
        self.skipped = 0

    def check(self, loss: float, step: int) -> bool:
        if math.isfinite(loss):
            self.consecutive = 0
            return True
        self.consecutive += 1
        self.skipped += 1
        log.warning("step %d: loss is %s, skipping the update (%d in a row)", step, loss, self.consecutive)
        if self.consecutive >= self.max_consecutive:
            raise NonFiniteLossError(f"{self.consecutive} consecutive non-finite losses at step {step}; stopping")
        return False


def ignore_stop_signals(worker_id: int = 0):
    """DataLoader ``worker_init_fn``: workers leave SIGTERM/SIGINT to the main process, which saves a
    checkpoint and then shuts them down (a scheduler signals the whole process group)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class StopFlag:
    """Catches SIGTERM/SIGINT so the loop can save a checkpoint and exit at the end of the step."""

    def __init__(self):
        self.requested = False
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: signals stay with their default handlers
                pass
        return self

    def _handle(self, signum, frame):
        if self.requested:  # a second signal: stop now
            raise KeyboardInterrupt
        log.warning("received signal %d: saving a checkpoint and stopping after this step", signum)
        self.requested = True

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False
