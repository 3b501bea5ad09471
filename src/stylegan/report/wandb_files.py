"""Scalars from a job's local W&B run files (``<job>/wandb/[offline-]run-*/run-*.wandb``), for sweeps logged with
``logger=wandb`` alone. W&B writes these files offline and online alike; they are read here without network or
account.

A run file is W&B's transaction log: a 7-byte header (``:W&B``, a 2-byte magic, a version byte), then records in
LevelDB's log format (32 KiB blocks; each record a 7-byte header: CRC32 (4), length (2), type (1); a record that
does not fit a block is split FULL | FIRST, MIDDLE..., LAST; a block tail shorter than a header is padding). Each
reassembled record is a ``wandb_internal_pb2.Record`` (from the installed ``wandb``); its ``history`` rows hold the
logged scalars as JSON. A file cut short (a killed run) yields the rows before the cut.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

BLOCK, HEADER, FILE_HEADER = 32768, 7, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
SKIP = {"epoch", "kimg", "trainer/global_step", "_step", "_runtime", "_timestamp"}


class WandbFileError(ValueError):
    """A file that is not a W&B run file, or no ``wandb`` package to decode it."""


def run_files(job_dir: Path) -> list[Path]:
    """The job's run files, oldest run first (a resumed job has one per attempt; ``latest-run`` is a link)."""
    root = job_dir / "wandb"
    if not root.is_dir():
        return []
    runs = [d for d in root.iterdir() if d.is_dir() and not d.is_symlink() and d.name != "latest-run"]
    runs.sort(key=lambda d: d.name.removeprefix("offline-"))  # run-<date>_<time>-<id>
    return [f for d in runs for f in sorted(d.glob("run-*.wandb"))]


def records(path: Path) -> list[bytes]:
    """The file's records (reassembled payloads) in order."""
    data = Path(path).read_bytes()
    if data[:4] != b":W&B":
        raise WandbFileError(f"{path} is not a W&B run file (no :W&B header)")
    out, pos, parts = [], FILE_HEADER, b""
    while pos + HEADER <= len(data):
        if BLOCK - pos % BLOCK < HEADER:  # block trailer padding
            pos += BLOCK - pos % BLOCK
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        if (kind == 0 and length == 0) or pos + HEADER + length > len(data):  # zero fill or a cut-off record
            break
        chunk = data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        parts = chunk if kind in (FULL, FIRST) else parts + chunk
        if kind in (FULL, LAST):
            out.append(parts)
    return out


def history(path: Path) -> list[dict[str, float]]:
    """Every ``history`` row of a run file as {key: number} (nested values such as images left out)."""
    try:
        from wandb.proto import wandb_internal_pb2
    except ImportError as e:
        raise WandbFileError(f"reading {path} needs the wandb package ({e}): pip install wandb") from None
    rows = []
    for raw in records(path):
        record = wandb_internal_pb2.Record()
        try:
            record.ParseFromString(raw)
        except Exception:  # a damaged record: the rest of the file may still be good
            continue
        if record.WhichOneof("record_type") != "history":
            continue
        row = {}
        for item in record.history.item:
            key = item.key or ("/".join(item.nested_key) if len(item.nested_key) == 1 else "")
            try:
                value = json.loads(item.value_json)
            except ValueError:
                continue
            if key and isinstance(value, (int, float)) and not isinstance(value, bool):
                row[key] = float(value)
        rows.append(row)
    return rows


def curves(job_dir: Path) -> dict[str, list[tuple[float, float]]]:
    """{column: [(kimg, value)]} from the job's run files, as :func:`stylegan.report.collect` reads the CSV log."""
    out: dict[str, list[tuple[float, float]]] = {}
    for path in run_files(job_dir):
        for row in history(path):
            kimg = row.get("kimg", math.nan)
            for key, value in row.items():
                if key not in SKIP and not key.startswith("_"):
                    out.setdefault(key, []).append((kimg, value))
    return out
