"""The reference render of the tests: one renderer call on the whole query grid plus a margin of
``radius`` queries mirrored about the image edges (the engine's border), built here independently of
``infd.renderers.coords`` (index by index), then cropped to the image."""
import torch

from infd.renderers.coords import make_cell


def mirror(i: int, n: int) -> int:
    """Symmetric reflection of pixel ``i`` into ``0 .. n - 1`` (edge pixel repeated), as often as needed."""
    while not 0 <= i < n:
        i = -1 - i if i < 0 else 2 * n - 1 - i
    return i


def mirrored_query(size, radius: int, batch: int = 1, dtype=torch.float32):
    """``coord (B, H + 2r, W + 2r, 2)`` and ``cell (B, 2)`` of the whole image with its mirrored margin."""
    H, W = size
    ys = torch.tensor([-1 + (2 * mirror(i, H) + 1) / H for i in range(-radius, H + radius)], dtype=torch.float64)
    xs = torch.tensor([-1 + (2 * mirror(j, W) + 1) / W for j in range(-radius, W + radius)], dtype=torch.float64)
    coord = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).to(dtype)
    return coord.expand(batch, *coord.shape), make_cell(size, dtype=dtype).expand(batch, 2)


def full_render(renderer, phi: torch.Tensor, size) -> torch.Tensor:
    """``(B, 3, H, W)``: the whole image in one renderer call (no tiling, no window code)."""
    r = int(renderer.radius)
    coord, cell = mirrored_query(size, r, phi.shape[0], torch.float64 if phi.dtype == torch.float64 else torch.float32)
    with torch.no_grad():
        rgb = renderer(phi, coord, cell)
    return rgb[:, :, r:r + size[0], r:r + size[1]]
