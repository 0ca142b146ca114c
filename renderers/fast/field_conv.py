"""CLIF's first conv computed at field resolution, exactly, for a regular query grid.

CLIF's first layer is ``conv3x3`` over the query grid of ``[phi[iy, ix], rel_y, rel_x, cell_y, cell_x]``
(Sec. 3.1). On a regular grid the nearest-field index is per axis, so the feature part is a 3x3 conv of
the nearest-neighbour upsampled field ``phi[iy[y], ix[x]]``. With ``W_t`` the kernel's 9 taps and zero
padding at the grid border::

    out[y, x] = sum_{dy, dx} [y + dy, x + dx inside] W_t[dy, dx] phi[iy[y + dy], ix[x + dx]]

1. ``T[dy, dx] = W_t[dy, dx] phi`` for the touched field cells (one matmul at field resolution);
2. output columns with the same ``(ix[x-1], ix[x], ix[x+1])`` share ``R_dy = sum_dx T[dy, dx][:, ix[x+dx]]``;
3. output rows with the same ``(iy[y-1], iy[y], iy[y+1])`` share ``P = sum_dy R_dy[iy[y+dy]]``;
4. one gather of ``P`` per pixel.

The 4 geometric channels are linear in a per-row term (``rel_y``, cell) and a per-column term
(``rel_x``): their conv is a row vector plus a column vector, corrected in the border rows/columns.
An upsampling factor ``s`` leaves about ``3 h x 3 w`` distinct patterns, so the conv's field part costs
``9 C D`` multiply-adds per *field* cell instead of per output pixel.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..gather import cell_centre, nearest_index
from .threads import run_chunks

_CHUNK_ELEMENTS = 1 << 23  # output rows per chunk: about this many (pixels x channels) values


def axis_patterns(index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Distinct ``(index[i-1], index[i], index[i+1])`` triples (``-1`` past either end) of ``index (n,)``.

    Returns ``patterns (P, 3)`` and ``inverse (n,)`` with ``patterns[inverse[i]]`` the triple of ``i``.
    """
    edge = index.new_full((1,), -1)
    key = torch.stack([torch.cat([edge, index[:-1]]), index, torch.cat([index[1:], edge])], dim=1)
    return torch.unique(key, dim=0, return_inverse=True)


def _geometry_terms(weight, C, rel_y, rel_x, cell):
    """The geometric channels' conv: per-row ``a (H, 3, D)`` (by dx) and per-column ``b (W, 3, D)`` (by dy).

    ``a[y, dx]`` sums the taps ``(dy, dx)`` of the ``rel_y`` and cell channels over the rows inside the
    grid; ``b[x, dy]`` sums the taps ``(dy, dx)`` of ``rel_x`` over the columns inside the grid.
    """
    w_ry, w_rx, w_cy, w_cx = (weight[:, C + k] for k in range(4))  # (D, 3, 3) each, indexed [d, dy, dx]
    pad_y, pad_x = F.pad(rel_y, (1, 1)), F.pad(rel_x, (1, 1))
    inside = F.pad(torch.ones_like(rel_y), (1, 1))
    H, W = rel_y.shape[0], rel_x.shape[0]
    rows = torch.stack([pad_y[k:k + H] for k in range(3)] + [inside[k:k + H] for k in range(3)], 1)  # (H, 6)
    w_cell = w_cy * cell[0] + w_cx * cell[1]  # (D, 3, 3)
    w_rows = torch.cat([w_ry.permute(1, 2, 0), w_cell.permute(1, 2, 0)], 0)  # (6 = (value, dy), 3 dx, D)
    a = (rows @ w_rows.flatten(1)).view(H, 3, -1)
    cols = torch.stack([pad_x[k:k + W] for k in range(3)], 1)  # (W, 3 dx)
    b = (cols @ w_rx.permute(2, 1, 0).flatten(1)).view(W, 3, -1)  # taps as (dx, dy, D)
    return a, b


@dataclass
class _Plan:
    """Everything one image's chunks share: the field columns used and the patterns of both axes."""

    field: torch.Tensor  # (h, w' + 1, C): the touched field columns, channels last, then a zero column
    col_pat: torch.Tensor  # (Q, 3) positions in ``field``'s columns; w' (outside the grid) = the zero column
    col_inv: torch.Tensor  # (W,) pattern of each output column
    row_pat: torch.Tensor  # (P, 3) field rows, -1 outside the grid
    row_inv: torch.Tensor  # (H,) pattern of each output row
    row_term: torch.Tensor  # (H, D) geometric channels' per-row part, plus the bias
    col_term: torch.Tensor  # (W, D) geometric channels' per-column part


def first_conv_regular(conv: torch.nn.Conv2d, phi: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor,
                       cell: torch.Tensor, workers: int = 1) -> torch.Tensor:
    """``conv(query_features)`` of CLIF on a regular grid, as ``(B, H, W, D)`` (channels-last memory).

    Args:
        conv: the first ``Conv2d(C + 4, D, 3, padding=1)``.
        phi: field ``(B, C, h, w)``.
        ys, xs: query centres per axis, ``(B, H)`` and ``(B, W)``.
        cell: one query cell per image ``(B, 2)``.
        workers: Python threads for the chunks of output rows (``threads.run_chunks``).
    """
    B, C, h, w = phi.shape
    H, W = ys.shape[1], xs.shape[1]
    weight = conv.weight.to(phi.dtype)
    D = weight.shape[0]
    taps = weight[:, :C].permute(3, 1, 2, 0).reshape(3, C, 3 * D)  # (dx, C, (dy, D))
    bias = conv.bias.to(phi.dtype) if conv.bias is not None else weight.new_zeros(D)
    out = phi.new_empty(B, H, W, D)
    plans, borders = [], []
    for b in range(B):
        iy, ix = nearest_index(ys[b], h), nearest_index(xs[b], w)
        rel_y = (ys[b] - cell_centre(iy, h, ys.dtype)) * h
        rel_x = (xs[b] - cell_centre(ix, w, xs.dtype)) * w
        a, bx = _geometry_terms(weight, C, rel_y.to(phi.dtype), rel_x.to(phi.dtype),
                                (cell[b] * cell.new_tensor([h, w])).to(phi.dtype))
        cols, col_of = torch.unique(ix, return_inverse=True)  # touched field columns
        col_pat, col_inv = axis_patterns(col_of)
        row_pat, row_inv = axis_patterns(iy)
        field = F.pad(phi[b][:, :, cols], (0, 1)).permute(1, 2, 0)  # (h, w' + 1, C)
        plans.append(_Plan(field, torch.where(col_pat < 0, cols.numel(), col_pat),
                           col_inv, row_pat, row_inv, a.sum(1) + bias, bx.sum(1)))
        borders.append((a, bx))
    rows_per_chunk = max(1, _CHUNK_ELEMENTS // (W * D))
    jobs = [(b, y0, min(H, y0 + rows_per_chunk)) for b in range(B) for y0 in range(0, H, rows_per_chunk)]
    run_chunks(jobs, lambda job, bufs: _feature_rows(plans[job[0]], taps, job[1], job[2], out[job[0]], bufs),
               dict, elements=out.numel(), workers=workers)
    for b, (a, bx) in enumerate(borders):
        # Border rows/columns: the geometric taps that fall outside the grid were counted above.
        out[b, :, 0].sub_(a[:, 0])
        out[b, :, W - 1].sub_(a[:, 2])
        out[b, 0].sub_(bx[:, 0])
        out[b, H - 1].sub_(bx[:, 2])
    return out


def _buffer(buffers: dict, name: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """A scratch tensor of ``shape`` kept in ``buffers`` and reused by later chunks (grown if needed).

    Reuse matters on CPU: a big fresh allocation is new pages that the kernel must fault in and zero.
    """
    size = 1
    for s in shape:
        size *= s
    flat = buffers.get(name)
    if flat is None or flat.numel() < size:
        flat = buffers[name] = like.new_empty(size)
    return flat[:size].view(shape)


def _feature_rows(plan: _Plan, taps: torch.Tensor, y0: int, y1: int, out: torch.Tensor, buffers: dict) -> None:
    """Output rows ``y0 .. y1 - 1`` of one image into ``out (H, W, D)``: field part plus geometric terms.

    ``taps (3 dx, C, 3 dy x D)``; ``buffers`` holds this thread's scratch tensors.
    """
    W, D = out.shape[1:]
    field, col_pat = plan.field, plan.col_pat
    pats, inv = torch.unique(plan.row_inv[y0:y1], return_inverse=True)
    triples = plan.row_pat[pats]  # (p, 3): field rows above / at / below, -1 outside the grid
    need, where = torch.unique(triples.clamp(min=0), return_inverse=True)
    where = torch.where(triples < 0, need.numel(), where)  # -1 -> the zero row of R
    n, cols, Q, p = need.numel(), field.shape[1], col_pat.shape[0], pats.numel()
    rows = field[need].flatten(0, 1)  # (n x cols, C): the needed field cells; the last column is zero
    # 1-2. Taps of one dx at a time, T (n, cols, dy, D), gathered at the column patterns:
    #      R[r, q, dy] = sum_dx T_dx[r, col_pat[q, dx], dy]; R's last row is zero (outside the grid).
    R = _buffer(buffers, "R", (n + 1, Q, 3, D), out)
    R[-1].zero_()
    T = _buffer(buffers, "T", (n, cols, 3, D), out)
    gathered = _buffer(buffers, "gathered", (n, Q, 3, D), out)
    for dx in range(3):
        torch.mm(rows, taps[dx], out=T.view(n * cols, 3 * D))
        torch.index_select(T, 1, col_pat[:, dx], out=R[:-1] if dx == 0 else gathered)
        if dx:
            R[:-1].add_(gathered)
    # 3. Row patterns: P[p, q] = sum_dy R[where[p, dy], q, dy].
    P = _buffer(buffers, "P", (p, Q, D), out)
    picked = _buffer(buffers, "picked", (p, Q, D), out)
    torch.index_select(R[:, :, 0], 0, where[:, 0], out=P)
    for dy in (1, 2):
        P.add_(torch.index_select(R[:, :, dy], 0, where[:, dy], out=picked))
    # 4. Spread over the pixels, adding the column and row terms of the geometric channels.
    spread = torch.index_select(P, 1, plan.col_inv, out=_buffer(buffers, "spread", (p, W, D), out))
    spread.add_(plan.col_term)
    torch.index_select(spread, 0, inv, out=out[y0:y1]).add_(plan.row_term[y0:y1, None])
