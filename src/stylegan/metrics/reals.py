"""Which real images the metrics use: the official semantics (stylegan2-ada-pytorch
``metric_utils.compute_feature_stats_for_dataset`` over ``training/dataset.py``'s ``Dataset``).

* The metrics see the training dataset as training sees it: ``data.max_images`` applied first, then ``data.xflip``,
  which doubles it, so a mirrored dataset of N images has 2N items: items ``0..N-1`` the images, ``N..2N-1`` their
  mirror images in the same order (the datamodule's ``ImageDataset``).
* ``*_full`` metrics use every item, flips included (``fid50k_full`` on mirrored 70k FFHQ: 140k reals).
* A metric with ``max_real`` below the item count (``fid50k``) uses the first ``max_real`` items in dataset order
  (``real_subset='first'``, the official choice). ``real_subset='random'`` instead keeps a fixed random subset
  (``RandomState(0)``, back in dataset order), so that a class-sorted dataset still gives every class.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from ..data.sources import subset_indices
from ..data.stream import to_float

SUBSETS = ("first", "random")


def check_subset(value: str, key: str = "real_subset") -> str:
    from .extractors import MetricSetupError

    if value not in SUBSETS:
        raise MetricSetupError(f"{key}={value!r} must be one of {list(SUBSETS)} (first: the official first N items)")
    return value


def num_real_items(dm) -> int:
    """How many real items the metrics can use: the images, twice with ``data.xflip``."""
    dm.setup()
    return len(dm.dataset)


def real_indices(total: int, count: int, subset: str = "first") -> np.ndarray:
    """Item indices (into the ``2N``-item mirrored dataset, or the N-item plain one) of ``min(count, total)`` reals."""
    count = min(int(count), int(total))
    if count == total or subset == "first":
        return np.arange(count)
    return subset_indices(total, count, seed=0)  # the datamodule's max_images draw, from RandomState(0)


def subset_label(total: int, count: int, subset: str) -> str:
    """What the cache key records about the choice: 'all' when every item is used (both choices agree)."""
    return "all" if int(count) >= int(total) else subset


def real_batches(dm, indices: np.ndarray, batch_size: int, rank: int = 0, world: int = 1) -> Iterator[torch.Tensor]:
    """This rank's batches (global batches ``rank, rank + world, ...`` of ``batch_size`` items) as float ``[B, C, R,
    R]`` in [-1, 1]; only this rank's images are read."""
    for b, start in enumerate(range(0, len(indices), batch_size)):
        if b % world != rank:
            continue
        items = [dm.dataset[int(i)][0] for i in indices[start : start + batch_size]]
        yield to_float(np.stack(items))  # as the training batches
