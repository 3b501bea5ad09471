"""On-disk cache of real-image features / statistics, keyed by what determines them.

The key hashes the dataset fingerprint, resolution, extractor name, item count, whether the dataset is mirrored
(``xflip``: 2N items), which items a partial count takes ('first' / 'random'; 'all') and what is stored ('stats':
float64 mean and covariance; 'features': the float32 feature matrix). Files are written atomically (temp file +
``os.replace``) and read with ``weights_only=True``; a file that does not load or whose stored key differs is
reported and recomputed, never used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import torch

from ..utils.atomic import atomic_open

log = logging.getLogger(__name__)


def cache_path(cache_dir: str | os.PathLike, meta: dict[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:16]
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(meta.get("extractor", "x")))
    return Path(cache_dir) / f"real-{safe}-{meta.get('kind')}-{meta.get('count')}-{digest}.pt"


def load_cached(path: Path, meta: dict[str, Any], keys: tuple[str, ...]) -> dict[str, torch.Tensor] | None:
    """The cached tensors, or None when absent or unusable (which is logged)."""
    if not path.is_file():
        return None
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(blob, dict) or blob.get("meta") != meta or any(not torch.is_tensor(blob.get(k))
                                                                          for k in keys):
            raise ValueError("its stored key or contents do not match")
    except Exception as e:  # any unreadable file is recomputed
        log.warning("metrics cache %s is unusable (%s); recomputing it", path, str(e).splitlines()[0][:200])
        return None
    return {k: blob[k] for k in keys}


def save_cached(path: Path, meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    with atomic_open(path) as f:
        torch.save({"meta": meta, **tensors}, f)
