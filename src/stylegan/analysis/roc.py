"""The ROC curve and its area for telling two sets of scores apart, where the first set should score lower.

Projection attribution (StyleGAN2 Sec. 5) scores every image by its distance to its re-synthesis; generated images
should project better (a smaller distance) than real ones. The classifier "generated if the distance is <= t" sweeps
the threshold t over every distance seen: its true-positive rate is the fraction of generated images at or below t,
its false-positive rate the fraction of real images at or below t. The area under that curve (trapezoids) equals the
Mann-Whitney statistic

    AUC = P(d_generated < d_real) + 1/2 P(d_generated == d_real)

over all (generated, real) pairs: 1 when every generated image projects closer than every real one, 1/2 when the
distance tells nothing, 0 when the real images all project closer. Computed in float64 from average ranks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks in ascending order, tied values sharing the mean of their ranks."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(values)]
    ranks = np.empty(len(values), dtype=np.float64)
    for s, e in zip(starts, ends, strict=True):
        ranks[order[s:e]] = (s + 1 + e) / 2  # mean of ranks s+1 .. e
    return ranks


def auc(lower: Sequence[float], higher: Sequence[float]) -> float:
    """P(a < b) + P(a == b) / 2 for a drawn from ``lower`` and b from ``higher`` (NaN if either is empty or holds
    a NaN)."""
    a, b = np.asarray(lower, dtype=np.float64).ravel(), np.asarray(higher, dtype=np.float64).ravel()
    if not len(a) or not len(b) or np.isnan(a).any() or np.isnan(b).any():
        return math.nan
    ranks = _average_ranks(np.concatenate([a, b]))
    u = ranks[len(a):].sum() - len(b) * (len(b) + 1) / 2  # pairs with b above a, ties as 1/2
    return float(u / (len(a) * len(b)))


def roc_curve(lower: Sequence[float], higher: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """(false-positive rates, true-positive rates) of "from ``lower`` if the score is <= t" for t below every score
    and then at every distinct score, from (0, 0) to (1, 1)."""
    a, b = np.asarray(lower, dtype=np.float64).ravel(), np.asarray(higher, dtype=np.float64).ravel()
    t = np.unique(np.concatenate([a, b]))
    tpr = np.searchsorted(np.sort(a), t, side="right") / len(a)
    fpr = np.searchsorted(np.sort(b), t, side="right") / len(b)
    return np.r_[0.0, fpr], np.r_[0.0, tpr]
