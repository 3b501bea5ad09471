"""Improved precision and recall (Kynkaanniemi et al. 2019), as in the official ``metrics/precision_recall.py``.

Each set's manifold is the union of balls around its features with radius the distance to the k-th nearest
neighbour (the point itself excluded). Precision: the fraction of generated features inside the real manifold;
recall: the fraction of real features inside the generated manifold. Distances are Euclidean, computed in
row/column blocks (memory ~ ``row_batch * col_batch``) in float32 by default, float64 on request.
"""

from __future__ import annotations

import torch


def _distances(rows: torch.Tensor, cols: torch.Tensor, col_batch: int) -> torch.Tensor:
    return torch.cat([torch.cdist(rows, c) for c in cols.split(col_batch)], dim=1)


def kth_radii(manifold: torch.Tensor, k: int, row_batch: int = 10_000, col_batch: int = 10_000) -> torch.Tensor:
    """Distance from each feature to its k-th nearest other feature of ``manifold``."""
    if len(manifold) <= k:
        raise ValueError(f"k={k} needs more than {k} features, got {len(manifold)}")
    # the smallest distance of each row is the point itself (0); kthvalue(k + 1) skips it
    return torch.cat([_distances(r, manifold, col_batch).kthvalue(k + 1, dim=1).values
                      for r in manifold.split(row_batch)])


def coverage(probes: torch.Tensor, manifold: torch.Tensor, radii: torch.Tensor, row_batch: int = 10_000,
             col_batch: int = 10_000) -> float:
    """Fraction of ``probes`` within ``radii[j]`` of some ``manifold[j]``."""
    inside = [(_distances(p, manifold, col_batch) <= radii).any(dim=1) for p in probes.split(row_batch)]
    return float(torch.cat(inside).to(torch.float64).mean())


def precision_recall(real: torch.Tensor, gen: torch.Tensor, k: int = 3, row_batch: int = 10_000,
                     col_batch: int = 10_000, dtype: torch.dtype = torch.float32) -> tuple[float, float]:
    """(precision, recall) of generated features ``gen`` against ``real``."""
    real, gen = real.to(dtype), gen.to(dtype)
    precision = coverage(gen, real, kth_radii(real, k, row_batch, col_batch), row_batch, col_batch)
    recall = coverage(real, gen, kth_radii(gen, k, row_batch, col_batch), row_batch, col_batch)
    return precision, recall
