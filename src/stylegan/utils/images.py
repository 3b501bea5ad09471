"""Image grids written with Pillow (no torchvision on the core path)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .atomic import atomic_open


def quantize(img: torch.Tensor, drange: tuple[float, float] = (-1, 1)) -> torch.Tensor:
    """Float images in ``drange`` -> uint8, same layout, with the official convention (stylegan2-ada / stylegan3
    metrics and generate scripts): ``(x * 127.5 + 128).clamp(0, 255)`` truncated, i.e. rounding half up. The one
    quantization used for sample grids, saved images and metric features."""
    lo, hi = drange
    scale = 255 / (hi - lo)
    return (img.detach() * scale + (0.5 - lo * scale)).clamp(0, 255).to(torch.uint8)  # (-1, 1): x * 127.5 + 128


def to_uint8(img: torch.Tensor, drange: tuple[float, float] = (-1, 1)) -> np.ndarray:
    """[N, C, H, W] float in ``drange`` -> [N, H, W, C] uint8 numpy (:func:`quantize`), for image files and grids;
    the metrics' extractors take torch ``[N, 3, H, W]`` from ``stylegan.metrics.extractors.to_rgb_uint8``."""
    return quantize(img.cpu().to(torch.promote_types(img.dtype, torch.float32)), drange).permute(0, 2, 3, 1).numpy()


def tile(x: np.ndarray, cols: int | None = None) -> np.ndarray:
    """[N, H, W, C] uint8 -> one [rows*H, cols*W, C] array (``cols`` default: ceil(sqrt(N)))."""
    N, H, W, C = x.shape
    cols = cols or math.ceil(math.sqrt(N))
    rows = math.ceil(N / cols)
    grid = np.zeros([rows * H, cols * W, C], dtype=np.uint8)
    for i in range(N):
        r, c = divmod(i, cols)
        grid[r * H : (r + 1) * H, c * W : (c + 1) * W] = x[i]
    return grid


def make_grid(img: torch.Tensor, cols: int | None = None, drange: tuple[float, float] = (-1, 1)) -> np.ndarray:
    """Tile a float batch into one [rows*H, cols*W, C] uint8 array (C = 1 or 3)."""
    return tile(to_uint8(img, drange), cols)


def save_image(array: np.ndarray, path: str | os.PathLike) -> Path:
    """Write an [H, W, C] uint8 array as PNG atomically (temp file, then rename)."""
    path = Path(path)
    mode = "L" if array.shape[2] == 1 else "RGB"
    with atomic_open(path) as f:
        Image.fromarray(array[:, :, 0] if mode == "L" else array, mode).save(f, format="PNG")
    return path

