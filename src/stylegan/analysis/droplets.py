"""Droplet artifacts (StyleGAN2 Sec. 2, Fig. 1): AdaIN normalizes the mean and variance of every feature map
separately, so the generator can smuggle signal strength past it by planting one strong, localized spike that
dominates the statistics; the spike is visible in the activations (from 64x64 up in the paper) and in the images as
a blob. Weight demodulation (Fig. 2d) removes the data-dependent normalization and with it the spike.

Two numbers per synthesis layer, from forward hooks on fixed seeds:

- spike ratio, per channel: ``max|x| / median|x|`` over the H x W map (median as numpy's: the mean of the two
  middle values for an even count); a channel whose median is 0 is left out (NaN).
- co-location, per image: the fraction of channels whose argmax of ``|x|`` (first one in row-major order on ties)
  lies within 1 px (Chebyshev distance <= 1) of the most common argmax position (the smallest flat index on ties).

The tensor measured is where the paper locates the artifact: for the blocks with a data-dependent normalization
(``adain``, ``stylegan1``, and ``revised``'s Norm std) the activation entering the normalization (their
``pre_norm`` identity module); for ``demod`` and ``modulate`` the layer's output.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..networks import Generator
from ..networks.style_blocks import AdaINLayer, SynthesisLayer
from ..networks.stylegan1 import StyleGAN1Layer
from ..utils.atomic import atomic_open
from . import latents

LAYERS = (SynthesisLayer, AdaINLayer, StyleGAN1Layer)  # RevisedLayer is a SynthesisLayer


def probe_points(G: Generator) -> list[tuple[str, int, nn.Module]]:
    """(layer name, resolution, module to hook) for every synthesis conv layer, in forward order: the layer's
    ``pre_norm`` identity where it has one (the input of its normalization), else the layer itself."""
    return [(name, m.resolution, getattr(m, "pre_norm", m)) for name, m in G.synthesis.named_modules()
            if isinstance(m, LAYERS)]


def _median_last(a: torch.Tensor) -> torch.Tensor:
    k = a.shape[-1]
    return (a.kthvalue((k + 1) // 2, dim=-1).values + a.kthvalue(k // 2 + 1, dim=-1).values) / 2


def spike_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x [N, C, H, W] -> (spike ratio [N, C], co-location [N]) as defined in the module docstring."""
    a = x.detach().abs().to(torch.promote_types(x.dtype, torch.float32)).flatten(2)  # [N, C, H*W]
    median = _median_last(a)
    ratio = torch.where(median > 0, a.amax(dim=-1) / median.clamp_min(torch.finfo(a.dtype).tiny), math.nan)
    width = x.shape[-1]
    idx = a.argmax(dim=-1)  # [N, C]
    mode = torch.stack([torch.bincount(i, minlength=a.shape[-1]).argmax() for i in idx])  # [N]
    near = ((idx // width - mode[:, None] // width).abs() <= 1) & ((idx % width - mode[:, None] % width).abs() <= 1)
    return ratio, near.to(a.dtype).mean(dim=-1)


@dataclass
class Droplets:
    """Per layer: the spike ratios of every (seed, channel) and the co-location of every seed; the mean |x| over
    channels ([K, H, W]) and the images ([K, H, W, C] uint8) of the first K seeds, for the figure."""

    resolution: dict[str, int] = field(default_factory=dict)
    ratios: dict[str, list[torch.Tensor]] = field(default_factory=lambda: defaultdict(list))
    colocation: dict[str, list[torch.Tensor]] = field(default_factory=lambda: defaultdict(list))
    maps: dict[str, list[torch.Tensor]] = field(default_factory=lambda: defaultdict(list))
    images: list[np.ndarray] = field(default_factory=list)

    def rows(self) -> list[dict]:
        """One row per layer (median spike ratio over seeds and channels, median co-location over seeds), then one
        per resolution with layer ``all`` (the medians over all its layers)."""
        rows, by_res = [], defaultdict(lambda: ([], []))
        for name, res in self.resolution.items():
            r, c = torch.cat(self.ratios[name]).flatten().numpy(), torch.cat(self.colocation[name]).numpy()
            rows.append(dict(layer=name, resolution=res, spike_ratio=_nanmedian(r), colocation=float(np.median(c))))
            by_res[res][0].append(r)
            by_res[res][1].append(c)
        for res, (r, c) in sorted(by_res.items()):
            rows.append(dict(layer="all", resolution=res, spike_ratio=_nanmedian(np.concatenate(r)),
                             colocation=float(np.median(np.concatenate(c)))))
        return rows


def _nanmedian(a: np.ndarray) -> float:
    return float(np.nanmedian(a)) if np.isfinite(a).any() else math.nan


@torch.no_grad()
def measure(G: Generator, seeds: list[int], noise_mode: str = "const", class_idx: int | None = None,
            device: torch.device | str = "cpu", batch_size: int = 8, keep: int = 4) -> Droplets:
    """Run G on ``seeds`` (psi 1) with hooks on every :func:`probe_points` module; keep maps of ``keep`` seeds."""
    from ..utils.images import to_uint8

    z_all, c_all = latents(G, seeds, class_idx)
    G = G.to(device).eval()
    out = Droplets()
    kept = [0]

    def hook(name: str):
        def record(module, inputs, output) -> None:
            ratio, coloc = spike_stats(output)
            out.ratios[name].append(ratio.cpu())
            out.colocation[name].append(coloc.cpu())
            if kept[0] < keep:
                out.maps[name].append(output[: keep - kept[0]].detach().abs().float().mean(dim=1).cpu())
        return record

    handles = []
    for name, res, module in probe_points(G):
        out.resolution[name] = res
        handles.append(module.register_forward_hook(hook(name)))
    try:
        for start in range(0, len(seeds), batch_size):
            z, c = z_all[start : start + batch_size].to(device), c_all[start : start + batch_size].to(device)
            img = G(z, c, noise_mode=noise_mode)
            if kept[0] < keep:
                out.images += list(to_uint8(img[: keep - kept[0]]))
            kept[0] += len(z)
    finally:
        for h in handles:
            h.remove()
    out.resolution = {k: v for k, v in out.resolution.items() if out.ratios[k]}  # a progressive G's unused blocks
    return out


def write_csv(rows: list[dict], path: Path) -> Path:
    with atomic_open(path, "w") as f:
        f.write("layer,resolution,spike_ratio,colocation\n")
        for r in rows:
            f.write(f"{r['layer']},{r['resolution']},{r['spike_ratio']!r},{r['colocation']!r}\n")
    return path


def figure(result: Droplets, path: Path) -> Path:
    """Per kept seed: the image, then per resolution the mean |activation| over channels of its last layer
    (nearest-upsampled to the image size, scaled to its own maximum), titled with that layer's spike ratio."""
    from matplotlib.figure import Figure

    last = {res: name for name, res in result.resolution.items()}  # forward order: the last layer per resolution
    summary = {r["layer"]: r for r in result.rows() if r["layer"] != "all"}
    images = result.images
    size = images[0].shape[0]
    cols = 1 + len(last)
    fig = Figure(figsize=(1.6 * cols, 1.7 * len(images) + 0.3))
    axes = fig.subplots(len(images), cols, squeeze=False)
    for i, img in enumerate(images):
        axes[i, 0].imshow(img[..., 0] if img.shape[-1] == 1 else img[..., :3], cmap="gray")
        axes[i, 0].set_title("image" if i == 0 else "", fontsize=8)
        for j, (res, name) in enumerate(sorted(last.items()), start=1):
            m = torch.cat(result.maps[name])[i][None, None]
            m = F.interpolate(m, size=(size, size), mode="nearest")[0, 0].numpy()
            axes[i, j].imshow(m / max(m.max(), 1e-30), cmap="inferno", vmin=0, vmax=1)
            if i == 0:
                axes[i, j].set_title(f"{res}x{res}\nspike {summary[name]['spike_ratio']:.1f}", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("mean |activation| over channels (before the normalization where there is one)", fontsize=8)
    fig.tight_layout()
    with atomic_open(path) as f:
        fig.savefig(f, format="png", dpi=100)
    return path
