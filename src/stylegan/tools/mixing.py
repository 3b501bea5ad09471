"""Style mixing figure (StyleGAN, Karras et al. 2019, Fig. 3; StyleGAN2 Fig. 1 of the official ``style_mixing.py``).

Each row seed gives the destination ws, each column seed the source: tile (r, c) is ``synthesis(ws_r)`` with the
chosen style layers taken from ``ws_c``. The figure has the column sources along the top and the row sources down
the left. Layers are chosen by index (``0-6``, the official default) or by the paper's bands, named after the
resolution of the convolutions a w drives: coarse 4²–8², middle 16²–32², fine 64² and up.
"""

from __future__ import annotations

import re

import numpy as np
import torch

from ..networks import Generator
from ..utils.images import tile, to_uint8
from .generate import ToolError, class_labels, seed_latents

BANDS = {"coarse": (4, 8), "middle": (16, 32), "fine": (64, 1 << 30)}


def w_resolutions(G: Generator) -> list[int]:
    """For each of G's ``num_ws`` ws, the resolution of the layer it drives: a block's convolutions take one w each
    and its ToRGB the next block's first (official ``SynthesisNetwork``); the last w drives only the last ToRGB."""
    out: list[int] = []
    for res in G.synthesis.block_resolutions:
        out += [res] * getattr(G.synthesis, f"b{res}").num_conv
    out += [G.img_resolution] * (G.num_ws - len(out))
    return out


def parse_styles(text: str, G: Generator) -> list[int]:
    """``"coarse"``, ``"middle,fine"``, ``"0-6"``, ``"0-3,8"`` -> sorted w indices, checked against G."""
    res = w_resolutions(G)
    chosen: set[int] = set()
    for part in str(text).split(","):
        part = part.strip()
        if part in BANDS:
            lo, hi = BANDS[part]
            band = {i for i, r in enumerate(res) if lo <= r <= hi}
            if not band:
                span = f"{lo}x{lo} and up" if hi > 1024 else f"{lo}x{lo} to {hi}x{hi}"
                raise ToolError(f"--styles {text!r}: this {G.img_resolution}x{G.img_resolution} generator has no "
                                f"{part} layers ({span}); use indices 0-{G.num_ws - 1}")
            chosen |= band
            continue
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise ToolError(f"--styles {text!r}: {part!r} is neither coarse|middle|fine nor an index range like 0-6")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if not lo <= hi < G.num_ws:
            raise ToolError(f"--styles {text!r}: {part} is outside this generator's ws 0-{G.num_ws - 1}")
        chosen |= set(range(lo, hi + 1))
    return sorted(chosen)


def mix(row_ws: torch.Tensor, col_ws: torch.Tensor, styles: list[int]) -> torch.Tensor:
    """[R, C, num_ws, w_dim]: row r's ws with the ``styles`` layers replaced by column c's."""
    R, C = len(row_ws), len(col_ws)
    ws = row_ws[:, None].repeat(1, C, 1, 1)
    ws[:, :, styles] = col_ws[None, :, styles].expand(R, -1, -1, -1)
    return ws


@torch.no_grad()
def mixing_images(G: Generator, row_seeds: list[int], col_seeds: list[int], styles: list[int], psi: float = 1.0,
                  class_idx: int | None = None, noise_mode: str = "const", batch_size: int = 16,
                  device: torch.device | str = "cpu") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row sources [R, H, W, C], column sources [C', H, W, C], mixed [R, C', H, W, C]) as uint8. Seeds follow the
    official convention (``RandomState(seed)``); all sources are mapped in one batch."""
    G = G.to(device)
    seeds = row_seeds + col_seeds
    z = seed_latents(seeds, G.z_dim).to(device)
    ws = G.mapping(z, class_labels(G, class_idx, len(seeds)).to(device), truncation_psi=psi)
    row_ws, col_ws = ws[: len(row_seeds)], ws[len(row_seeds):]
    flat = torch.cat([ws, mix(row_ws, col_ws, styles).flatten(0, 1)])
    images = np.concatenate([to_uint8(G.synthesis(flat[i : i + batch_size], noise_mode=noise_mode))
                             for i in range(0, len(flat), batch_size)])
    R, C = len(row_seeds), len(col_seeds)
    return images[:R], images[R : R + C], images[R + C :].reshape(R, C, *images.shape[1:])


def mixing_figure(G: Generator, row_seeds: list[int], col_seeds: list[int], styles: list[int], psi: float = 1.0,
                  class_idx: int | None = None, noise_mode: str = "const", batch_size: int = 16,
                  device: torch.device | str = "cpu") -> np.ndarray:
    """The figure as one [(R+1)*H, (C+1)*W, C] uint8 array: sources on the top row and left column, the top-left
    corner black, and the mixed images inside (the layout of the official ``grid.png``)."""
    rows, cols, mixed = mixing_images(G, row_seeds, col_seeds, styles, psi, class_idx, noise_mode, batch_size, device)
    return figure(rows, cols, mixed)


def figure(rows: np.ndarray, cols: np.ndarray, mixed: np.ndarray) -> np.ndarray:
    R, C = mixed.shape[:2]
    cells = np.zeros((R + 1, C + 1, *rows.shape[1:]), dtype=np.uint8)
    cells[0, 1:], cells[1:, 0], cells[1:, 1:] = cols, rows, mixed
    return tile(cells.reshape(-1, *rows.shape[1:]), cols=C + 1)


def official_files(row_seeds: list[int], col_seeds: list[int], rows: np.ndarray, cols: np.ndarray,
                   mixed: np.ndarray) -> dict[str, np.ndarray]:
    """The per-image files of the official ``style_mixing.py``: ``{s}-{s}.png`` for every source seed and
    ``{row}-{col}.png`` for every mixed image (a seed that is both a row and a column: the mixed image, as there)."""
    files = {f"{s}-{s}.png": img for s, img in zip(row_seeds + col_seeds, [*rows, *cols], strict=True)}
    for r, row_seed in enumerate(row_seeds):
        for c, col_seed in enumerate(col_seeds):
            files[f"{row_seed}-{col_seed}.png"] = mixed[r, c]
    return files
