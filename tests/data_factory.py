"""Helpers for the data tests: write real image files (PNG/JPEG/WebP, broken ones too) into tmp folders."""

from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def pattern(size: int | tuple[int, int], channels: int = 3, seed: int = 0) -> np.ndarray:
    """A random uint8 image ``[H, W, C]`` (or ``[H, W]`` for one channel)."""
    w, h = (size, size) if isinstance(size, int) else size
    arr = np.random.default_rng(seed).integers(0, 256, size=(h, w, channels), dtype=np.uint8)
    return arr[..., 0] if channels == 1 else arr


def save(path: Path, arr: np.ndarray, mode: str | None = None, **params: object) -> Path:
    """Write ``arr`` with Pillow (format from the suffix; WebP is written lossless)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(arr)
    if mode is not None:
        img = img.convert(mode)
    if path.suffix == ".webp":
        params.setdefault("lossless", True)
    img.save(path, **params)
    return path


def png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def truncate(path: Path, keep: float = 0.5) -> Path:
    """Cut a file to ``keep`` of its bytes, as an interrupted download would."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def write_png16_rgb(path: Path, arr: np.ndarray) -> Path:
    """Write a 16-bit-per-channel RGB PNG (Pillow cannot), chunk by chunk."""
    h, w, _ = arr.shape
    raw = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in arr)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    png = (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )
    path.write_bytes(png)
    return path


def image_folder(
    root: Path, n: int = 4, size: int = 8, channels: int = 3, ext: str = "png"
) -> list[np.ndarray]:
    """``n`` lossless random images ``img{i}.{ext}``; returns their pixels in file order."""
    arrays = [pattern(size, channels, seed=i) for i in range(n)]
    for i, arr in enumerate(arrays):
        save(root / f"img{i}.{ext}", arr)
    return arrays


def write_labels(root: Path, labels: dict[str, int] | None) -> None:
    """Write ``dataset.json`` in the NVlabs layout."""
    entries = None if labels is None else [[name, lab] for name, lab in labels.items()]
    (root / "dataset.json").write_text(json.dumps({"labels": entries}))


def nvlabs_zip(path: Path, arrays: list[np.ndarray], labels: list[int] | None) -> list[str]:
    """A zip in dataset_tool's layout (``00000/img00000000.png`` + ``dataset.json``); returns member names."""
    names = [f"{i // 1000:05d}/img{i:08d}.png" for i in range(len(arrays))]
    with zipfile.ZipFile(path, "w") as zf:
        for name, arr in zip(names, arrays, strict=True):
            zf.writestr(name, png_bytes(arr))
        entries = None if labels is None else [[n, lab] for n, lab in zip(names, labels, strict=True)]
        zf.writestr("dataset.json", json.dumps({"labels": entries}))
    return names


def expected(arr: np.ndarray) -> np.ndarray:
    """The float CHW tensor values the loader must produce for uint8 ``arr``."""
    chw = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return chw.astype(np.float32) / 127.5 - 1.0
