"""Read an offline W&B run file (``run-*.wandb``) back into its protobuf records, for tests.

The file is a LevelDB-style log (7-byte ``:W&B`` header, 32 KiB blocks, records of checksum(4) length(2) type(1)
split FULL / FIRST / MIDDLE / LAST across blocks); each reassembled payload is a ``wandb_internal_pb2.Record``.
Checksums are not verified: the tests only need the content.
"""

from __future__ import annotations

import struct
from pathlib import Path

from wandb.proto import wandb_internal_pb2

BLOCK, HEADER, FILE_HEADER = 32768, 7, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def payloads(path: Path) -> list[bytes]:
    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    out, pos, parts = [], FILE_HEADER, b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # block trailer padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        chunk = data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind == 0 and length == 0:
            break
        parts = chunk if kind in (FULL, FIRST) else parts + chunk
        if kind in (FULL, LAST):
            out.append(parts)
    return out


def records(path: Path) -> list:
    result = []
    for raw in payloads(path):
        rec = wandb_internal_pb2.Record()
        rec.ParseFromString(raw)
        result.append(rec)
    return result
