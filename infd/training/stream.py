"""A run's data stream, continued where a resumed run left off (both training loops use it)."""
from __future__ import annotations

import dataclasses
import logging
from typing import Callable, Iterator

import torch

from .guard import ignore_stop_signals

log = logging.getLogger("infd.train")


def resumed_batches(make_loader: Callable, data_config, *, seed: int, exact_resume: bool, step: int,
                    samples_seen: int, rank: int, world_size: int) -> Iterator[dict]:
    """Batches of ``make_loader(data_config)`` for this rank, positioned for a run at ``step``.

    With ``exact_resume`` the stream starts from ``seed`` and the ``samples_seen`` samples all ranks
    already drew are replayed (read and dropped), so the run continues bit for bit; otherwise a resumed
    run reseeds the stream with ``seed + step``, which costs nothing on long runs.
    """
    data_seed = seed if exact_resume or step == 0 else seed + step
    # The loader gets its own generator: creating its iterator must not draw from the global RNG,
    # or a resumed run would diverge from an uninterrupted one.
    loader = make_loader(dataclasses.replace(data_config, seed=data_seed), rank=rank, world_size=world_size,
                         generator=torch.Generator().manual_seed(data_seed), worker_init_fn=ignore_stop_signals)
    batches = iter(loader)
    if exact_resume and samples_seen:
        for _ in range(samples_seen // (data_config.batch_size * world_size)):
            next(batches)  # replay, so the stream continues exactly where the saved run was
    return batches


def shutdown_workers(batches: Iterator, timeout: float = 5.0) -> None:
    """Stop the worker processes of a DataLoader iterator now, whatever state the run is in.

    The workers ignore SIGTERM (``ignore_stop_signals``), so the terminate-and-join that Python runs for
    child processes at exit would wait for them forever after an exception; here they are asked to stop,
    and killed if they have not within ``timeout`` seconds. A no-op for in-process loading.
    """
    workers = list(getattr(batches, "_workers", []))
    shutdown = getattr(batches, "_shutdown_workers", None)
    if shutdown is not None:
        try:
            shutdown()
        except Exception as err:  # noqa: BLE001 - a broken queue must not stop the kill below
            log.warning("data loader shutdown failed (%s: %s); killing its workers", type(err).__name__, err)
    for worker in workers:
        if worker.is_alive():
            worker.kill()
            worker.join(timeout)
