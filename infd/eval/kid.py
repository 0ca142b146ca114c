"""KID and a memorisation check, on feature vectors (Inception features of ``infd.eval.inception``).

**KID** (Binkowski et al. 2018): the squared MMD between the feature distributions of two sets with the
cubic polynomial kernel ``k(x, y) = (x . y / d + 1)^3``, estimated without bias (the diagonal terms of
the within-set kernel sums left out), so its expectation is 0 for two samples of one distribution at
any set size; that is why it is the metric of small sets, where FID's covariances are rank-deficient and
its bias depends on the set size. Reported as the mean and standard deviation over ``subsets`` random
subsets of ``subset_size`` vectors of each set (torch-fidelity / clean-fid: 100 subsets of 1000), drawn
from ``seed``. Values are often quoted x 1000.

**Memorisation ratio**: the median distance from each sample to its nearest training image, over the
median distance from each held-out real image to its nearest training image (features, L2). Samples that
copy training images sit closer to them than new real images do: a ratio well below 1 is memorisation.
Held-out photos of another collection sit farther from the training set than new photos of the same
collection would, so with the training images' photo indices a second ratio is reported: over the median
distance from each training image to its nearest image *of another training photo* (leave one photo out),
how near a new photo like the training ones comes to the rest of the set.
"""
from __future__ import annotations

import torch


def _float64(x) -> torch.Tensor:
    return torch.as_tensor(x).detach().to("cpu", torch.float64)


def _as_features(x) -> torch.Tensor:
    x = _float64(x)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"KID needs at least 2 feature vectors (N, D), got shape {tuple(x.shape)}")
    return x


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor) -> float:
    """Unbiased squared MMD of ``x (m, d)`` and ``y (n, d)`` with the cubic polynomial kernel."""
    d = x.shape[1]
    kxx, kyy, kxy = ((a @ b.T / d + 1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
    m, n = x.shape[0], y.shape[0]
    within_x = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
    within_y = (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
    return float(within_x + within_y - 2 * kxy.mean())


def kid(fake, real, subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """``(mean, std)`` of the unbiased squared MMD over random subsets (module doc). The subset size is
    capped at the smaller set; with one subset of whole sets the std is 0."""
    x, y = _as_features(fake), _as_features(real)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"feature sets of different dimensions: {x.shape[1]} and {y.shape[1]}")
    size = min(subset_size, x.shape[0], y.shape[0])
    gen = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(max(subsets, 1)):
        xi = x[torch.randperm(x.shape[0], generator=gen)[:size]]
        yi = y[torch.randperm(y.shape[0], generator=gen)[:size]]
        values.append(mmd2_unbiased(xi, yi))
    v = torch.tensor(values, dtype=torch.float64)
    return float(v.mean()), float(v.std(unbiased=False))


def nearest_neighbours(queries, references) -> tuple[torch.Tensor, torch.Tensor]:
    """L2 distance from each query ``(n, d)`` to its nearest reference ``(m, d)`` and that reference's
    index: ``(n,)`` each."""
    q, r = _float64(queries), _float64(references)
    distances = torch.cdist(q, r, compute_mode="donot_use_mm_for_euclid_dist")  # exact 0 for copies
    nearest = distances.min(dim=1)
    return nearest.values, nearest.indices


def nearest_distances(queries, references) -> torch.Tensor:
    """L2 distance from each query ``(n, d)`` to its nearest reference ``(m, d)``: ``(n,)``."""
    return nearest_neighbours(queries, references)[0]


def nearest_other_group_distances(features, groups) -> torch.Tensor:
    """L2 distance from each row of ``features (n, d)`` to its nearest row of another group (``groups``: n
    ids, e.g. the photo of each view): ``(n,)``; needs at least two groups."""
    f, g = _float64(features), torch.as_tensor(groups)
    if g.shape != (f.shape[0],) or g.unique().numel() < 2:
        raise ValueError(f"need one group id per feature vector and at least two groups, got {tuple(g.shape)} ids "
                         f"for {f.shape[0]} vectors")
    d = torch.cdist(f, f, compute_mode="donot_use_mm_for_euclid_dist")
    return d.masked_fill(g[:, None] == g[None, :], float("inf")).min(dim=1).values


def memorisation_ratio(samples, train, heldout, train_groups=None) -> dict[str, float]:
    """Median nearest-training distance of the samples and of held-out real images, and their ratio; with
    ``train_groups`` (the photo of each training image) also the leave-one-photo-out distance of the
    training images and the samples' ratio to it (module doc)."""
    to_train = float(nearest_distances(samples, train).median())
    real = float(nearest_distances(heldout, train).median())
    out = {"sample_to_train": to_train, "heldout_to_train": real, "ratio": to_train / real if real > 0 else float("nan")}
    if train_groups is not None:
        within = float(nearest_other_group_distances(train, train_groups).median())
        out.update(train_to_other_photos=within, ratio_within=to_train / within if within > 0 else float("nan"))
    return out
