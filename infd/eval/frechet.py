"""Feature statistics and the Frechet distance between two Gaussians (the "F" of FID).

    d^2 = |mu_1 - mu_2|^2 + tr(Sigma_1 + Sigma_2 - 2 (Sigma_1 Sigma_2)^(1/2))     (Heusel et al. 2017, Eq. 6)

Everything is float64. ``tr (Sigma_1 Sigma_2)^(1/2)`` comes from ``scipy.linalg.sqrtm`` of the product
when scipy is installed (the usual FID code path, so numbers compare with published ones), otherwise
from symmetric eigen-decompositions: ``Sigma_1 Sigma_2`` is similar to the symmetric positive
semi-definite ``A = Sigma_1^(1/2) Sigma_2 Sigma_1^(1/2)``, so the trace is ``sum_i sqrt(lambda_i(A))``.
The eigen route is also the fallback when ``sqrtm`` fails (non-finite or clearly complex result, e.g.
for the rank-deficient covariances of fewer samples than feature dimensions).
"""
from __future__ import annotations

import importlib.util
from typing import Literal

import numpy as np
import torch

Method = Literal["auto", "scipy", "eigh"]
SQRTM_OFFSET = 1e-6  # added to the diagonals when sqrtm of the product is not finite (as common FID code does)
IMAGINARY_TOLERANCE = 1e-3  # a larger imaginary part of sqrtm's diagonal means sqrtm failed


class FeatureStats:
    """Running mean and covariance of feature vectors, in float64, with memory flat in the count.

    ``add(features (N, D))`` any number of times; ``mean (D,)`` and ``cov (D, D)`` (unbiased, like
    ``np.cov(rowvar=False)``) need at least two vectors. Sums are taken around the first batch's mean
    (a shift that does not change the covariance) to avoid cancellation.
    """

    def __init__(self, keep: bool = False):
        self.keep = keep  # also keep the vectors (float32) for KID and nearest-neighbour checks
        self._kept: list[torch.Tensor] = []
        self.count = 0
        self._origin = None  # (D,)
        self._sum = None  # (D,) of x - origin
        self._outer = None  # (D, D) of (x - origin)^T (x - origin)

    def add(self, features: torch.Tensor | np.ndarray) -> None:
        x = torch.as_tensor(features).detach().to("cpu", torch.float64)
        if x.ndim != 2 or x.shape[0] == 0:
            raise ValueError(f"features must be a non-empty (N, D) batch, got shape {tuple(x.shape)}")
        if not torch.isfinite(x).all():
            raise ValueError("features contain NaN or infinity")
        if self._origin is None:
            self._origin = x.mean(dim=0)
            self._sum = torch.zeros_like(self._origin)
            self._outer = torch.zeros(x.shape[1], x.shape[1], dtype=torch.float64)
        elif x.shape[1] != self._origin.shape[0]:
            raise ValueError(f"features have {x.shape[1]} dimensions, earlier ones {self._origin.shape[0]}")
        if self.keep:
            self._kept.append(x.float())
        d = x - self._origin
        self._sum += d.sum(dim=0)
        self._outer += d.T @ d
        self.count += x.shape[0]

    @property
    def features(self) -> torch.Tensor:
        """The added vectors ``(count, D)`` (float32); only with ``keep=True``."""
        if not self.keep:
            raise ValueError("these feature statistics were collected without keep=True")
        if not self._kept:
            raise ValueError("no feature vectors were added")
        return torch.cat(self._kept)

    def _check(self) -> None:
        if self.count < 2:
            raise ValueError(f"feature statistics need at least 2 vectors, got {self.count}")

    @property
    def mean(self) -> np.ndarray:
        self._check()
        return (self._origin + self._sum / self.count).numpy()

    @property
    def cov(self) -> np.ndarray:
        self._check()
        centred = self._outer - torch.outer(self._sum, self._sum) / self.count
        cov = centred / (self.count - 1)
        return (0.5 * (cov + cov.T)).numpy()  # exactly symmetric


def has_scipy() -> bool:
    return importlib.util.find_spec("scipy") is not None


def _psd_sqrt(sigma: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix (negative rounding-error eigenvalues -> 0)."""
    w, v = np.linalg.eigh(0.5 * (sigma + sigma.T))
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def trace_sqrt_product_eigh(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """``tr (Sigma_1 Sigma_2)^(1/2)`` via ``A = Sigma_1^(1/2) Sigma_2 Sigma_1^(1/2)`` (symmetric PSD)."""
    root = _psd_sqrt(sigma1)
    a = root @ sigma2 @ root
    eig = np.linalg.eigvalsh(0.5 * (a + a.T))
    return float(np.sqrt(np.clip(eig, 0.0, None)).sum())


def trace_sqrt_product_scipy(sigma1: np.ndarray, sigma2: np.ndarray) -> float | None:
    """``tr sqrtm(Sigma_1 Sigma_2)`` with scipy; ``None`` if sqrtm fails even with a diagonal offset."""
    import scipy.linalg

    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = SQRTM_OFFSET * np.eye(sigma1.shape[0])
        covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if not np.isfinite(covmean).all():
        return None
    if np.iscomplexobj(covmean):
        if np.abs(np.diagonal(covmean).imag).max() > IMAGINARY_TOLERANCE:
            return None
        covmean = covmean.real
    return float(np.trace(covmean))


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     method: Method = "auto") -> float:
    """Squared Frechet distance between ``N(mu1, sigma1)`` and ``N(mu2, sigma2)``; ``mu (D,)``, ``sigma (D, D)``.

    ``method``: "scipy" (``sqrtm`` of the product, falling back to "eigh" if it fails), "eigh", or
    "auto" (scipy when installed). Both agree to ~1e-12 on full-rank covariances; for D = 2048 "eigh" is
    about 4x faster (scipy 1.17, one thread: ~5 s vs ~20 s).
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    D = mu1.shape[0]
    if mu1.shape != (D,) or mu2.shape != (D,) or sigma1.shape != (D, D) or sigma2.shape != (D, D):
        raise ValueError(f"frechet_distance needs mu (D,) and sigma (D, D) of one D, got {mu1.shape}, "
                         f"{sigma1.shape}, {mu2.shape}, {sigma2.shape}")
    trace_root = None
    if resolve_method(method) == "scipy":
        trace_root = trace_sqrt_product_scipy(sigma1, sigma2)
    if trace_root is None:
        trace_root = trace_sqrt_product_eigh(sigma1, sigma2)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_root)


def resolve_method(method: Method) -> str:
    """The square-root route ``method`` takes: "auto" is "scipy" when scipy is installed, else "eigh"."""
    if method not in ("auto", "scipy", "eigh"):
        raise ValueError(f"method must be 'auto', 'scipy' or 'eigh', got {method!r}")
    if method == "scipy" and not has_scipy():
        raise ValueError("the 'scipy' matrix square root needs scipy (python3 -m pip install scipy), or use 'eigh'")
    return ("scipy" if has_scipy() else "eigh") if method == "auto" else method


def fid_of_stats(a: FeatureStats, b: FeatureStats, method: Method = "auto") -> float:
    """Frechet distance between the Gaussians fitted to two feature sets."""
    return frechet_distance(a.mean, a.cov, b.mean, b.cov, method)
