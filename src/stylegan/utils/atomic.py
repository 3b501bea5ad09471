"""Atomic file writes: whatever is written appears whole at ``path`` or not at all (checkpoints, caches, JSON,
images). A temp file in the same folder is written, fsynced and ``os.replace``d; on any error it is removed and an
existing ``path`` is left untouched."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO[Any]]:
    """``with atomic_open(path) as f: ...`` writes ``f`` to ``path`` atomically (creating the parent folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
