"""Many processes, one result: split render work across ranks and assemble it into the same file.

Launched by ``torchrun`` or ``accelerate launch`` (both set ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``),
the ranks agree on one list of work units ``(batch, tile)`` (every rank builds it the same way) and
take them round-robin (``assign``). A batch whose tiles all fall to one rank is written by that rank
directly. A batch shared by several ranks (one large image) is sampled and decoded by its owner
(the rank of its first tile), which broadcasts the field ``phi``, so every rank renders the same
field. The image is assembled in a ``TileStore``: a raw pre-allocated ``(H, W, 3)`` file beside the
output, memory-mapped by every rank, each filling the pixels of its own tiles (disjoint, so no
locking); after a barrier the owner streams the store into the final sink, exactly as a one-process
render would stream its tiles, and removes it.
Pixels are quantised before they enter the store, so the file is byte-identical to a one-process
render run with the same number of threads per process (CPU kernels round differently with other
thread counts; ``torchrun`` sets ``OMP_NUM_THREADS=1`` per worker). Without a launcher
``DistContext()`` is a world of one and nothing here is used.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from infd.devices import dist_timeout
from infd.renderers.coords import Region


@dataclass
class DistContext:
    """This process's place among the ranks (a world of one by default)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world_size > 1:
            torch.distributed.barrier()

    def broadcast(self, tensor: torch.Tensor, src: int) -> torch.Tensor:
        """``tensor`` as held by rank ``src``, on every rank (same shape and dtype everywhere)."""
        if self.world_size == 1:
            return tensor
        device = torch.device("cuda", self.local_rank) if self.backend == "nccl" else torch.device("cpu")
        buffer = tensor.to(device).contiguous()
        torch.distributed.broadcast(buffer, src)
        return buffer.to(tensor.device)

    def broadcast_int(self, value: int, src: int = 0) -> int:
        return int(self.broadcast(torch.tensor([value], dtype=torch.int64), src).item())

    def close(self) -> None:
        if self.world_size > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def init_distributed(device_type: str = "cpu") -> DistContext:
    """Join the process group the launcher describes in the environment (gloo on CPU, nccl on CUDA)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext()
    backend = "nccl" if device_type == "cuda" else "gloo"
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend, timeout=dist_timeout())
    return DistContext(torch.distributed.get_rank(), world_size, int(os.environ.get("LOCAL_RANK", "0")), backend)


def assign(num_units: int, rank: int, world_size: int) -> list[int]:
    """The unit indices rank ``rank`` works on: every ``world_size``-th, starting at ``rank``."""
    return list(range(rank, num_units, world_size))


def owner_of(unit: int, world_size: int) -> int:
    return unit % world_size


def store_path(output: str | Path) -> Path:
    """The tile store of ``output``: a hidden file beside it (every rank derives the same name)."""
    output = Path(output)
    return output.parent / f".{output.name}.store"


class TileStore:
    """A raw ``(H, W, 3)`` array of quantised pixels in a file, filled tile by tile by any rank."""

    def __init__(self, path: str | Path, size: tuple[int, int], dtype: np.dtype, create: bool = False):
        self.path, self.size, self.dtype = Path(path), tuple(size), np.dtype(dtype)
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.array = np.memmap(self.path, dtype=self.dtype, mode="w+" if create else "r+", shape=(*self.size, 3))

    def write(self, region: Region, pixels: np.ndarray) -> None:
        """Store ``pixels (h, w, 3)`` at ``region`` (of the output)."""
        self.array[region.top:region.bottom, region.left:region.right] = pixels

    def flush(self) -> None:
        self.array.flush()

    def iter_bands(self, rows: int = 256) -> Iterator[tuple[Region, np.ndarray]]:
        """The stored image as full-width bands ``(region, (1, rows, W, 3))``, for ``FileSink.write_quantized``."""
        H, W = self.size
        for top in range(0, H, rows):
            band = np.array(self.array[top:top + rows])  # a copy: the map's pages can be dropped again
            yield Region(top, 0, band.shape[0], W), band[None]

    def remove(self) -> None:
        del self.array
        self.path.unlink(missing_ok=True)
