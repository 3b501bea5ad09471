"""Images from a trained generator, seeded as the official ``gen_images.py``: seed s draws
``z = np.random.RandomState(s).randn(1, z_dim)``, so published seeds give the same latents here."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from ..networks import Generator
from ..utils.images import save_image, tile, to_uint8

NOISE_MODES = ("const", "random", "none")
PSI_RANGE = (-1.0, 2.0)


class ToolError(ValueError):
    """Bad input to a ``stylegan`` tool (seeds, psi, class, model file); reported as one line before any work."""


def parse_seeds(text: str, option: str = "--seeds") -> list[int]:
    """``"0-99,120"`` -> [0, 1, ..., 99, 120] (ranges inclusive, as the official scripts)."""
    seeds: list[int] = []
    for part in str(text).split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not m:
            raise ToolError(f"{option} {text!r}: {part!r} is not a seed or a range; use e.g. 0-99,120")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise ToolError(f"{option} {text!r}: range {part.strip()} runs backwards; use {hi}-{lo}")
        if hi >= 2**32:
            raise ToolError(f"{option} {text!r}: seeds must be < 2**32 (numpy RandomState)")
        seeds += range(lo, hi + 1)
    return seeds


def seed_latents(seeds: list[int], z_dim: int) -> torch.Tensor:
    """[len(seeds), z_dim] float32, one ``RandomState(seed).randn(1, z_dim)`` draw per seed."""
    return torch.from_numpy(np.concatenate([np.random.RandomState(s).randn(1, z_dim) for s in seeds])).float()


def class_labels(G: Generator, class_idx: int | None, n: int) -> torch.Tensor:
    """One-hot labels for a conditional G (``class_idx`` required, in range); empty for an unconditional one."""
    if G.c_dim == 0:
        if class_idx is not None:
            raise ToolError(f"--class {class_idx}: this generator is unconditional (c_dim=0); drop --class")
        return torch.zeros([n, 0])
    if class_idx is None or not 0 <= class_idx < G.c_dim:
        given = "no --class" if class_idx is None else f"--class {class_idx}"
        raise ToolError(f"{given}: this generator is conditional on {G.c_dim} classes; pass --class 0..{G.c_dim - 1}")
    c = torch.zeros([n, G.c_dim])
    c[:, class_idx] = 1
    return c


def check_options(psi: float, noise_mode: str) -> None:
    lo, hi = PSI_RANGE
    if not lo <= psi <= hi:
        raise ToolError(f"--trunc {psi}: truncation psi must be in [{lo}, {hi}] (1 = none, 0.7 typical)")
    if noise_mode not in NOISE_MODES:
        raise ToolError(f"--noise-mode {noise_mode!r}: use one of {', '.join(NOISE_MODES)}")


@torch.no_grad()
def generate(G: Generator, seeds: list[int], psi: float = 1.0, cutoff: int | None = None,
             class_idx: int | None = None, noise_mode: str = "const", batch_size: int = 16,
             device: torch.device | str = "cpu", progress: bool = False) -> Iterator[tuple[int, np.ndarray]]:
    """(seed, [H, W, C] uint8) for every seed, in batches of ``batch_size`` on ``device``."""
    check_options(psi, noise_mode)
    c_all = class_labels(G, class_idx, len(seeds))
    G = G.to(device)
    from tqdm.auto import tqdm

    with tqdm(total=len(seeds), unit="img", disable=not progress) as bar:
        for start in range(0, len(seeds), batch_size):
            chunk = seeds[start : start + batch_size]
            z = seed_latents(chunk, G.z_dim).to(device)
            c = c_all[start : start + len(chunk)].to(device)
            img = G(z, c, truncation_psi=psi, truncation_cutoff=cutoff, noise_mode=noise_mode)
            yield from zip(chunk, to_uint8(img), strict=True)
            bar.update(len(chunk))


def check_outdir(outdir: Path) -> None:
    if outdir.exists() and not outdir.is_dir():
        raise ToolError(f"--outdir {outdir} is a file; pass a folder")


def write_images(images: Iterator[tuple[int, np.ndarray]], outdir: Path, grid: bool) -> list[Path]:
    """``seedNNNN.png`` per image (the official names), or one ``grid.png``."""
    check_outdir(outdir)
    if not grid:
        return [save_image(img, outdir / f"seed{seed:04d}.png") for seed, img in images]
    return [save_image(tile(np.stack([img for _, img in images])), outdir / "grid.png")]
