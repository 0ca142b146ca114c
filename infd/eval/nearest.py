"""The memorisation check as a picture: the samples nearest to the training set, beside the training views
they are nearest to (Inception features, L2, as ``kid.memorisation_ratio`` measures the medians).

A prior that copies shows its copies here first: the closest pairs are where a sample would repeat a
training view. The distances are reported over the median held-out distance (a new photo's distance to
the training set), so a pair at 0.5 sits twice as close as a typical new photo.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from ..rendering.sinks import save_grid
from . import kid as kid_lib

PAIRS_PER_ROW = 4


def nearest_samples(samples, train, count: int) -> list[tuple[int, int, float]]:
    """``(sample row, training row, distance)`` of the ``count`` samples nearest to a training image
    (features ``(n, d)`` and ``(m, d)``), the nearest first."""
    distances, indices = kid_lib.nearest_neighbours(samples, train)
    return [(int(r), int(indices[r]), float(distances[r])) for r in torch.argsort(distances)[:count]]


def save_pairs(samples: np.ndarray, views: np.ndarray, path: str | Path, per_row: int = PAIRS_PER_ROW) -> Path:
    """PNG of ``(sample, view)`` pairs (``(n, h, w, 3)`` uint8 each), ``per_row`` pairs a row in reading
    order, the last row padded with white."""
    if samples.shape != views.shape:
        raise ValueError(f"pairs of different shapes: {samples.shape} and {views.shape}")
    per_row = max(1, min(per_row, len(samples)))
    pad = math.ceil(len(samples) / per_row) * per_row - len(samples)
    white = np.full((pad, *samples.shape[1:]), 255, np.uint8)
    samples, views = np.concatenate([samples, white]), np.concatenate([views, white])
    return save_grid([images[j::per_row] for j in range(per_row) for images in (samples, views)], path)


def nearest_figure(sample_images: np.ndarray, sample_features, seeds: list[int], train_images: np.ndarray,
                   train_features, real_views: int, heldout_median: float, count: int, path: str | Path) -> dict:
    """Write the ``count`` nearest ``(sample, training view)`` pairs to ``path`` (``save_pairs``); returns
    what the report says of them: per pair the sample's seed, the training photo and view (``real_views``
    per photo; 0: whole photos), the distance and its ratio to ``heldout_median``."""
    pairs = nearest_samples(sample_features, train_features, count)
    rows, views = [r for r, _, _ in pairs], [t for _, t, _ in pairs]
    save_pairs(sample_images[rows], train_images[views], path)
    per_photo = max(real_views, 1)
    return {"file": Path(path).name, "seeds": [seeds[r] for r in rows],
            "train_photo": [t // per_photo for t in views], "train_view": [t % per_photo for t in views],
            "distance": [d for _, _, d in pairs],
            "ratio": [d / heldout_median if heldout_median > 0 else float("nan") for _, _, d in pairs]}
