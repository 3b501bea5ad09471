"""Per-resolution contributions of a skip generator (StyleGAN2 Sec. 4.1, Fig. 8).

The skip G (Fig. 7b) sums one ToRGB output per resolution, each up-sampled with the FIR filter to the next one:
``img = sum_r U^(log2(R/r)) y_r``. Fig. 8 shows how much each resolution contributes to the output over training
(at 1024 the 1024x1024 ToRGB contributed little: the network did not use its full resolution). Measured here: for
each resolution r, the contribution ``U^(log2(R/r)) y_r`` exactly as the network adds it (so the contributions sum to
the image before any output activation), its standard deviation over N fixed latents at every output pixel and
channel (``ddof=1``), averaged over pixels and channels; the shares are these values normalized to sum to 100 %.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from ..networks import Generator
from ..networks.resample import upsample2d
from ..utils.atomic import atomic_open
from . import latents


def needs_skip(G: Generator) -> str | None:
    """Why G cannot be measured (not the skip architecture), or None."""
    arch = G.synthesis.architecture
    if arch == "skip":
        return None
    return (f"this generator's architecture is {arch!r}: the per-resolution contributions (StyleGAN2 Fig. 8) need the "
            "skip architecture (a ToRGB at every resolution, summed), as model/generator=skip trains")


@torch.no_grad()
def torgb_contributions(G: Generator, z: torch.Tensor, c: torch.Tensor, noise_mode: str = "const"
                        ) -> tuple[dict[int, torch.Tensor], torch.Tensor]:
    """({resolution: its ToRGB output up-sampled to the image size as the skip G adds it}, G's image)."""
    syn = G.synthesis
    outputs: dict[int, torch.Tensor] = {}
    handles = []
    for res in syn.block_resolutions:
        def record(module, inputs, output, res=res) -> None:
            outputs[res] = output
        handles.append(getattr(syn, f"b{res}").torgb.register_forward_hook(record))
    try:
        img = G(z, c, noise_mode=noise_mode)
    finally:
        for h in handles:
            h.remove()
    up = {}
    for res, y in outputs.items():
        for above in syn.block_resolutions:
            if above > res:
                y = upsample2d(y, getattr(syn, f"b{above}").resample_filter)
        up[res] = y
    return up, img


@torch.no_grad()
def contribution_stds(G: Generator, seeds: list[int], noise_mode: str = "const", class_idx: int | None = None,
                      device: torch.device | str = "cpu", batch_size: int = 16) -> dict[int, float]:
    """{resolution: the mean over pixels and channels of the std (ddof=1) over ``seeds`` of its contribution}."""
    if len(seeds) < 2:
        raise ValueError("a standard deviation needs at least 2 seeds")
    z_all, c_all = latents(G, seeds, class_idx)
    G = G.to(device).eval()
    s1: dict[int, torch.Tensor] = {}
    s2: dict[int, torch.Tensor] = {}
    for start in range(0, len(seeds), batch_size):
        z, c = z_all[start : start + batch_size].to(device), c_all[start : start + batch_size].to(device)
        up, _ = torgb_contributions(G, z, c, noise_mode)
        for res, y in up.items():
            y = y.double()
            s1[res] = s1.get(res, 0) + y.sum(dim=0)
            s2[res] = s2.get(res, 0) + y.square().sum(dim=0)
    n = len(seeds)
    return {res: float(((s2[res] - s1[res].square() / n) / (n - 1)).clamp_min(0).sqrt().mean())
            for res in sorted(s1)}


def shares(stds: dict[int, float]) -> dict[int, float]:
    """The stds normalized to sum to 100 (NaN if they are all 0)."""
    total = sum(stds.values())
    return {res: 100 * s / total if total > 0 else math.nan for res, s in stds.items()}


def snapshots(run_dir: Path) -> list[Path]:
    """A run folder's ``checkpoints/snapshot-*.ckpt`` (written with ``callbacks.checkpoint.keep_snapshots=true``)."""
    return sorted((Path(run_dir) / "checkpoints").glob("snapshot-*.ckpt"))


def write_csv(rows: list[tuple[float | None, dict[int, float]]], path: Path) -> Path:
    """``resolution,share,std`` (share in percent); with a leading ``kimg`` column for a series of snapshots."""
    series = rows[0][0] is not None
    with atomic_open(path, "w") as f:
        f.write(("kimg," if series else "") + "resolution,share,std\n")
        for kimg, stds in rows:
            for res, share in shares(stds).items():
                f.write((f"{kimg!r}," if series else "") + f"{res},{share!r},{stds[res]!r}\n")
    return path


def figure(rows: list[tuple[float | None, dict[int, float]]], path: Path) -> Path:
    """One model: a bar per resolution. A series: Fig. 8's stacked areas of the shares against kimg."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 4))
    ax = fig.subplots()
    resolutions = list(rows[0][1])
    if rows[0][0] is None:
        share = shares(rows[0][1])
        ax.bar(range(len(resolutions)), [share[r] for r in resolutions], color="tab:blue")
        ax.set_xticks(range(len(resolutions)), [str(r) for r in resolutions])
        ax.set_xlabel("resolution")
    else:
        kimg = [k for k, _ in rows]
        stacked = np.array([[shares(stds)[r] for _, stds in rows] for r in resolutions])
        ax.stackplot(kimg, stacked, labels=[f"{r}x{r}" for r in resolutions])
        ax.set_xlabel("kimg")
        if len(kimg) > 1 and all(np.isfinite(kimg)):
            ax.set_xlim(min(kimg), max(kimg))
        ax.set_ylim(0, 100)
        ax.legend(loc="upper left", fontsize=7, reverse=True)
    ax.set_ylabel("contribution (% of the summed std)")
    ax.set_title("per-resolution contribution of each ToRGB (StyleGAN2 Fig. 8)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_open(path) as f:
        fig.savefig(f, format="png", dpi=100)
    return path
