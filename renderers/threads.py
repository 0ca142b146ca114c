"""Run many independent chunks of torch work on Python threads, each op single-threaded.

The inference path does many medium-sized ops per band of pixels. With torch's own (OpenMP)
threading every op ends in a barrier, and on a loaded machine one descheduled thread stalls each
barrier for a scheduler time slice: thousands of ops become seconds. Giving each Python thread whole
chunks and running each op on one thread keeps both cores busy with no barrier until the end. torch
releases the GIL inside ops, so the threads really run in parallel.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Callable, Iterable

import torch


@contextmanager
def _single_threaded_ops():
    """Within the block torch ops use one thread (process-wide; restored on exit)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield before
    finally:
        torch.set_num_threads(before)


_MIN_ELEMENTS = 1 << 22  # below this much work per call, starting threads (~ms) costs more than it saves


def run_chunks(jobs: Iterable[Any], work: Callable[[Any, Any], None], make_state: Callable[[], Any],
               elements: int, workers: int | None = None) -> None:
    """Call ``work(job, state)`` for every job, on ``workers`` threads (default: torch's thread count).

    ``make_state()`` builds per-thread scratch (e.g. buffers), once per thread. Jobs must write
    disjoint outputs. ``elements`` is the size of the work (e.g. output values): small work runs in
    the calling thread with single-threaded ops, and so does everything with one worker.
    """
    jobs = list(jobs)
    workers = min(workers or torch.get_num_threads(), len(jobs))
    if workers <= 1 or elements < _MIN_ELEMENTS:
        with _single_threaded_ops():
            state = make_state()
            for job in jobs:
                work(job, state)
        return
    local = threading.local()
    grad, inference = torch.is_grad_enabled(), torch.is_inference_mode_enabled()  # thread-local modes

    def run(job):
        with torch.inference_mode(inference), torch.set_grad_enabled(grad):
            if not hasattr(local, "state"):
                torch.set_num_threads(1)  # this thread's OpenMP team size
                local.state = make_state()
            work(job, local.state)

    with _single_threaded_ops(), ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(run, jobs):
            pass
