"""Colour quantization: k-means centres in the ab plane and nearest-centre lookup."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def fit_color_centers(ab_samples: np.ndarray | Tensor, k: int = 16, seed: int = 0, iterations: int = 100) -> Tensor:
    """k-means (k-means++ initialisation, then Lloyd iterations) on ab colours.

    ab_samples: (N, 2). Returns (k, 2) float32 centres, deterministic in (samples, seed). A cluster
    that empties keeps its previous centre. Fewer than k distinct samples give repeated centres.
    """
    points = torch.as_tensor(np.asarray(ab_samples), dtype=torch.float64)
    if points.ndim != 2 or points.shape[1] != 2 or len(points) == 0:
        raise ValueError(f"ab_samples must be (N, 2) with N > 0, got {tuple(points.shape)}")
    generator = torch.Generator().manual_seed(seed)
    centers = _kmeans_plus_plus(points, k, generator)
    for _ in range(iterations):
        assignment = torch.cdist(points, centers).argmin(dim=1)
        updated = _cluster_means(points, assignment, centers)
        if torch.equal(updated, centers):
            break
        centers = updated
    return centers.float()


def quantize(ab: Tensor, centers: Tensor) -> Tensor:
    """ab: (..., 2, h, w); centers: (k, 2). Returns (..., h, w) long: index of the nearest centre."""
    centers = centers.to(ab.device, torch.float32)
    diff = ab.float().unsqueeze(-4) - centers.view(-1, 2, 1, 1)  # (..., k, 2, h, w)
    return diff.square().sum(dim=-3).argmin(dim=-3)


def _kmeans_plus_plus(points: Tensor, k: int, generator: torch.Generator) -> Tensor:
    """(k, 2) initial centres: each drawn with probability proportional to the squared distance
    to the nearest centre already chosen."""
    first = torch.randint(len(points), (1,), generator=generator)
    centers = [points[first[0]]]
    nearest = (points - centers[0]).square().sum(dim=1)
    for _ in range(1, k):
        total = nearest.sum()
        if total <= 0:
            index = torch.randint(len(points), (1,), generator=generator)[0]
        else:
            index = torch.multinomial(nearest / total, 1, generator=generator)[0]
        centers.append(points[index])
        nearest = torch.minimum(nearest, (points - points[index]).square().sum(dim=1))
    return torch.stack(centers)


def _cluster_means(points: Tensor, assignment: Tensor, centers: Tensor) -> Tensor:
    k = len(centers)
    sums = torch.zeros_like(centers).index_add_(0, assignment, points)
    counts = torch.bincount(assignment, minlength=k).unsqueeze(1).to(points.dtype)
    return torch.where(counts > 0, sums / counts.clamp_min(1), centers)
