"""Winograd F(4x4, 3x3): a 3x3 convolution with 2.25 instead of 9 multiplies per output and channel pair.

Lavin & Gray (2016): split the output into 4x4 tiles; each tile is ``A^T [(G g G^T) * (B^T d B)] A``
where ``d`` is the 6x6 input patch around the tile, ``g`` the 3x3 kernel, and ``*`` is the elementwise
product, which over channels becomes 36 independent ``(tiles, C) @ (C, D)`` matrix products. The
result equals the direct convolution up to float rounding (a few 1e-6 relative in fp32). It is used
for CLIF's hidden 256 -> 256 convs in inference on CPU, where the matrix products run near the
machine's peak while oneDNN has no Winograd kernel for AVX2.

Layout: activations are ``(B, H, W, C)`` contiguous, which is the memory of a channels_last NCHW
tensor. Work is done in bands of tiles, each from its own small padded patch of the input, so that
the transformed tiles stay in cache and no padded copy of the whole input is made.
"""
from __future__ import annotations

import torch

from .threads import run_chunks

# Transform matrices for m = 4, r = 3 (interpolation points 0, +-1, +-2, inf).
_G = [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
      [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]
TILE, PATCH = 4, 6
_BAND_ELEMENTS = 1 << 16  # batch x tiles x channels per band: the transformed input is 36 x this


def winograd_weight(weight: torch.Tensor) -> torch.Tensor:
    """Transformed kernel ``U = G g G^T`` of a ``(D, C, 3, 3)`` conv weight, as ``(36, C, D)``."""
    D, C = weight.shape[:2]
    G = torch.tensor(_G, dtype=torch.float64, device=weight.device)
    U = torch.einsum("ik,dckl,jl->ijcd", G, weight.detach().double(), G)  # (6, 6, C, D)
    return U.reshape(PATCH * PATCH, C, D).to(weight.dtype).contiguous()


def _input_transform(d, out, tmp):
    """``out[i] = sum_k B^T[i, k] d[k]`` for the six ``d[k]`` (same shapes), common terms shared.

    ``tmp`` holds two scratch tensors shaped like ``d[k]``.
    """
    d0, d1, d2, d3, d4, d5 = d
    s12, s34 = tmp
    torch.add(d4, d0, alpha=4, out=out[0]).add_(d2, alpha=-5)  # 4 d0 - 5 d2 + d4
    torch.add(d1, d2, out=s12)
    torch.add(d3, d4, out=s34)
    torch.add(s34, s12, alpha=-4, out=out[1])  # -4 d1 - 4 d2 + d3 + d4
    torch.sub(d1, d2, out=s12)
    torch.sub(d4, d3, out=s34)
    torch.add(s34, s12, alpha=4, out=out[2])  # 4 d1 - 4 d2 - d3 + d4
    torch.sub(d4, d2, out=s12)
    torch.sub(d3, d1, out=s34)
    torch.add(s12, s34, alpha=2, out=out[3])  # -2 d1 - d2 + 2 d3 + d4
    torch.add(s12, s34, alpha=-2, out=out[4])  # 2 d1 - d2 - 2 d3 + d4
    torch.add(d5, d1, alpha=4, out=out[5]).add_(d3, alpha=-5)  # 4 d1 - 5 d3 + d5


def _output_transform(m, out, tmp):
    """``out[p] = sum_i A^T[p, i] m[i]`` for the four outputs of six ``m[i]``, common terms shared.

    ``tmp`` holds four scratch tensors shaped like ``m[i]``.
    """
    m0, m1, m2, m3, m4, m5 = m
    s12, d12, s34, d34 = tmp
    torch.add(m1, m2, out=s12)
    torch.sub(m1, m2, out=d12)
    torch.add(m3, m4, out=s34)
    torch.sub(m3, m4, out=d34)
    torch.add(s12, s34, out=out[0]).add_(m0)  # m0 + m1 + m2 + m3 + m4
    torch.add(d12, d34, alpha=2, out=out[1])  # m1 - m2 + 2 (m3 - m4)
    torch.add(s12, s34, alpha=4, out=out[2])  # m1 + m2 + 4 (m3 + m4)
    torch.add(d12, d34, alpha=8, out=out[3]).add_(m5)  # m1 - m2 + 8 (m3 - m4) + m5


class _Workspace:
    """Scratch buffers of one thread for bands of up to ``nr x nc`` tiles, reused band after band.

    Reuse matters on CPU: a big fresh allocation is new pages that the kernel must fault in and zero.
    """

    def __init__(self, like: torch.Tensor, B: int, nr: int, nc: int, C: int, D: int):
        n, width = B * nr * nc, TILE * nc + 2
        self.key = (B, nr, nc, C, D, like.dtype, like.device)
        self.patch = like.new_empty(B * (TILE * nr + 2) * width * C)
        self.U = like.new_empty(PATCH * B * nr * width * C)
        self.V = like.new_empty(PATCH * PATCH * n * C)
        self.M = like.new_empty(PATCH * PATCH * n * D)
        self.Z = like.new_empty(TILE * PATCH * n * D)
        self.Y = like.new_empty(n * TILE * TILE * D)
        self.tmp = like.new_empty(4 * max(B * nr * width * C, PATCH * n * D))

    def views(self, B, nr, nc, C, D):
        """Buffers shaped for a band of ``nr x nc`` tiles (at most the allocated shape)."""
        n, width = B * nr * nc, TILE * nc + 2
        patch = self.patch[:B * (TILE * nr + 2) * width * C].view(B, TILE * nr + 2, width, C)
        U = self.U[:PATCH * B * nr * width * C].view(PATCH, B, nr, width, C)
        V = self.V[:PATCH * PATCH * n * C].view(PATCH, PATCH, B, nr, nc, C)
        M = self.M[:PATCH * PATCH * n * D].view(PATCH * PATCH, n, D)
        Z = self.Z[:TILE * PATCH * n * D].view(TILE, PATCH, B, nr, nc, D)
        Y = self.Y[:n * TILE * TILE * D].view(B, nr, TILE, nc, TILE, D)
        return patch, U, V, M, Z, Y

    def scratch(self, count: int, shape) -> list[torch.Tensor]:
        """``count`` scratch tensors of ``shape``, views of one buffer."""
        size = 1
        for s in shape:
            size *= s
        return [self.tmp[k * size:(k + 1) * size].view(shape) for k in range(count)]


def conv3x3_winograd(x: torch.Tensor, weight_t: torch.Tensor, bias: torch.Tensor | None = None, *,
                     pre_silu: bool = False, accumulate: torch.Tensor | None = None,
                     out: torch.Tensor | None = None, workspaces: list | None = None,
                     workers: int = 1) -> torch.Tensor:
    """``conv3x3(silu(x) if pre_silu else x)`` with zero padding 1, in ``(B, H, W, C)`` layout.

    Args:
        x: input ``(B, H, W, C)``, contiguous.
        weight_t: ``winograd_weight(conv.weight)``, ``(36, C, D)``.
        bias: ``(D,)`` or ``None``.
        accumulate: a ``(B, H, W, D)`` tensor to add the result to in place (a residual), or
        out: a ``(B, H, W, D)`` tensor to write the result to (not overlapping ``x``).
        workspaces: a list to keep scratch buffers in between calls of the same shape.
        workers: Python threads for the bands (``threads.run_chunks``); the result does not depend on it.

    Returns:
        ``(B, H, W, D)``: ``accumulate`` or ``out`` when given, else a new contiguous tensor.
    """
    B, H, W, C = x.shape
    D = weight_t.shape[-1]
    ty, tx = -(-H // TILE), -(-W // TILE)
    if accumulate is not None:
        out = accumulate
    elif out is None:
        out = x.new_empty(B, H, W, D)
    # Bands of about ``tiles`` tiles, square-ish so that the 2-pixel overlap of their patches is small.
    tiles = max(4, _BAND_ELEMENTS // (B * max(C, D)))
    cols = max(1, min(tx, int(tiles ** 0.5)))
    rows = max(1, min(ty, tiles // cols))
    bands = [(t0, min(rows, ty - t0), c0, min(cols, tx - c0))
             for t0 in range(0, ty, rows) for c0 in range(0, tx, cols)]
    pool = [] if workspaces is None else workspaces
    key = (B, rows, cols, C, D, x.dtype, x.device)
    free = [ws for ws in pool if ws.key == key]

    def make_workspace():
        try:
            return free.pop()
        except IndexError:
            ws = _Workspace(x, B, rows, cols, C, D)
            pool.append(ws)
            return ws

    run_chunks(bands, lambda band, ws: _band(x, pre_silu, weight_t, bias, out, accumulate is not None, *band, ws),
               make_workspace, elements=B * H * W * max(C, D), workers=workers)
    return out


def _band(x, pre_silu, weight_t, bias, out, add, t0, nr, c0, nc, ws):
    """Convolve the ``nr x nc`` tiles starting at tile ``(t0, c0)`` into ``out``."""
    B, H, W, C = x.shape
    D = out.shape[-1]
    y0, x0 = t0 * TILE, c0 * TILE
    span_y, span_x = TILE * (nr - 1) + 1, TILE * (nc - 1) + 1
    patch, U, V, M, Z, Y = ws.views(B, nr, nc, C, D)
    # The (4 nr + 2) x (4 nc + 2) input patch around the tiles, zero outside the image, SiLU applied.
    top, left = y0 - 1, x0 - 1
    r0, r1 = max(top, 0), min(top + patch.shape[1], H)
    q0, q1 = max(left, 0), min(left + patch.shape[2], W)
    if r1 - r0 < patch.shape[1] or q1 - q0 < patch.shape[2]:
        patch.zero_()
    inside = patch[:, r0 - top:r1 - top, q0 - left:q1 - left]
    if pre_silu:
        torch.ops.aten.silu.out(x[:, r0:r1, q0:q1], out=inside)
    else:
        inside.copy_(x[:, r0:r1, q0:q1])
    # B^T d B: first along rows (6 strided row sets), then along columns.
    _input_transform([patch[:, k:k + span_y:TILE] for k in range(PATCH)], U, ws.scratch(2, U.shape[1:]))
    _input_transform([U[:, :, :, k:k + span_x:TILE] for k in range(PATCH)], V.transpose(0, 1),
                     ws.scratch(2, V.shape[:1] + V.shape[2:]))  # V: (i, j, B, nr, nc, C)
    torch.bmm(V.view(PATCH * PATCH, B * nr * nc, C), weight_t, out=M)  # (36, tiles, D)
    if bias is not None:
        M[PATCH + 1].add_(bias)  # A^T e_1 = (1, 1, 1, 1): lands on all 16 outputs of the tile
    M = M.view(PATCH, PATCH, B, nr, nc, D)
    # A^T M A: combine rows (i -> p), then columns (j -> q) into a (B, nr, 4, nc, 4, D) tile grid.
    _output_transform(list(M), Z, ws.scratch(4, M.shape[1:]))
    _output_transform(list(Z.transpose(0, 1)), Y.permute(4, 2, 0, 1, 3, 5),
                      ws.scratch(4, Z.shape[:1] + Z.shape[2:]))
    Y = Y.view(B, nr * TILE, nc * TILE, D)[:, :min(H - y0, nr * TILE), :min(W - x0, nc * TILE)]
    dest = out[:, y0:y0 + Y.shape[1], x0:x0 + Y.shape[2]]
    dest.add_(Y) if add else dest.copy_(Y)
