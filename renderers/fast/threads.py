"""Run many independent chunks of torch work on a given number of Python threads.

The inference path does many medium-sized ops per band of pixels. torch releases the GIL inside ops,
so whole chunks on Python threads run in parallel with no barrier until the end, where torch's own
(OpenMP) threading ends every op in a barrier that one descheduled thread stalls on a loaded machine.

Thread counts belong to the caller: ``workers`` is an argument, and torch's intra-op thread count,
which the ops on each worker use, is never changed here (a process sets it once, at start-up).
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable

import torch

_MIN_ELEMENTS = 1 << 22  # below this much work per call, starting threads (~ms) costs more than it saves


def run_chunks(jobs: Iterable[Any], work: Callable[[Any, Any], None], make_state: Callable[[], Any],
               elements: int, workers: int) -> None:
    """Call ``work(job, state)`` for every job, on up to ``workers`` Python threads.

    ``make_state()`` builds per-thread scratch (e.g. buffers), once per thread. Jobs must write
    disjoint outputs. ``elements`` is the size of the work (e.g. output values): small work, and all
    work with one worker, runs in the calling thread. Exceptions of a job propagate.
    """
    jobs = list(jobs)
    workers = min(workers, len(jobs))
    if workers <= 1 or elements < _MIN_ELEMENTS:
        state = make_state()
        for job in jobs:
            work(job, state)
        return
    local = threading.local()
    grad, inference = torch.is_grad_enabled(), torch.is_inference_mode_enabled()  # thread-local modes

    def run(job):
        with torch.inference_mode(inference), torch.set_grad_enabled(grad):
            if not hasattr(local, "state"):
                local.state = make_state()
            work(job, local.state)

    with ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(run, jobs):
            pass
