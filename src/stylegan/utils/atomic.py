"""Atomic file writes: whatever is written appears whole at ``path`` or not at all (checkpoints, caches, JSON,
images). A temp file in the same folder (``.<name>.tmp<pid>``) is written, fsynced and ``os.replace``d; on any error
it is removed and an existing ``path`` is left untouched. Only a process killed mid-write (SIGKILL, power loss)
leaves its temp file behind: :func:`remove_partial_writes` clears them at the next start."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

_TEMP = re.compile(r"\..+\.tmp\d+")


def temp_path(path: str | os.PathLike) -> Path:
    """Where :func:`atomic_open` writes ``path`` before the rename."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO[Any]]:
    """``with atomic_open(path) as f: ...`` writes ``f`` to ``path`` atomically (creating the parent folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        with open(tmp, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def remove_partial_writes(folder: str | os.PathLike) -> list[Path]:
    """Delete the temp files of killed :func:`atomic_open` writes in ``folder`` (not recursive); returns them. Call
    it only where no other process is writing to ``folder`` (a run's own checkpoint folder, at its start)."""
    folder = Path(folder)
    removed = []
    for p in sorted(folder.glob(".*.tmp*")) if folder.is_dir() else []:
        if _TEMP.fullmatch(p.name) and p.is_file():
            with suppress(FileNotFoundError):
                p.unlink()
                removed.append(p)
    return removed
