"""Perceptual path length (StyleGAN, Karras et al. 2019, Sec. 3; StyleGAN2 Sec. 3.2), as in the official
``metrics/perceptual_path_length.py``.

For latent pairs (z0, z1) and t (0 for sampling 'end', uniform [0, 1) for 'full'), the images at t and
t + epsilon along the path (lerp in W, slerp in Z) are compared with a perceptual distance:
``d = distance(img(t), img(t + eps)) / eps^2``. Each batch uses one random draw of the constant noise inputs,
shared by the two images of a pair. Images are optionally cropped to the central face region (StyleGAN1's
``ppl_*``), area-downsampled to 256 when larger, and scaled to [0, 255]. The result is the mean of the
distances within the [1st, 99th] percentiles (numpy ``method='lower'`` / ``'higher'``).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import torch
from torch import nn

from .generate import LabelSampler, batch_seed, batches_of_rank


def slerp_directions(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of the directions of ``a`` and ``b`` (unit-norm result, as the official PPL); ``t``
    ``[N, 1]``. ``stylegan.tools.video.slerp`` interpolates the lengths too."""
    a = a / a.norm(dim=-1, keepdim=True)
    b = b / b.norm(dim=-1, keepdim=True)
    cos = (a * b).sum(dim=-1, keepdim=True).clamp(-1, 1)
    angle = t * torch.acos(cos)
    ortho = b - cos * a
    ortho = ortho / ortho.norm(dim=-1, keepdim=True)
    out = a * torch.cos(angle) + ortho * torch.sin(angle)
    return out / out.norm(dim=-1, keepdim=True)


def prepare_images(img: torch.Tensor, crop: bool) -> torch.Tensor:
    """Crop (StyleGAN1 face region), area-downsample to 256 if larger, gray -> RGB, scale [-1, 1] -> [0, 255]."""
    if crop:
        c = img.shape[2] // 8
        img = img[:, :, c * 3 : c * 7, c * 2 : c * 6]
    factor = img.shape[2] // 256
    if factor > 1:
        n, ch, h, w = img.shape
        img = img.reshape(n, ch, h // factor, factor, w // factor, factor).mean([3, 5])
    if img.shape[1] == 1:
        img = img.repeat(1, 3, 1, 1)
    return (img + 1) * (255 / 2)


def trim_bounds(dist: torch.Tensor) -> tuple[float, float]:
    """(1st percentile with numpy's method 'lower', 99th with 'higher') of the values, in float64."""
    s = dist.to(torch.float64).flatten().sort().values
    n = len(s)
    return float(s[int((n - 1) * 1 // 100)]), float(s[-((-(n - 1) * 99) // 100)])


def trimmed_mean(dist: torch.Tensor) -> float:
    """Mean of the values within [1st percentile (lower), 99th percentile (higher)]."""
    d = dist.to(torch.float64).flatten()
    lo, hi = trim_bounds(d)
    return float(d[(d >= lo) & (d <= hi)].mean())


def noise_buffers(G: nn.Module) -> list[torch.Tensor]:
    """G's constant noise maps (redrawn in place by :func:`draw_pairs`)."""
    return [b for name, b in G.named_buffers() if name.endswith("noise_const")]


def draw_pairs(G: nn.Module, n: int, g: torch.Generator, labels: LabelSampler, sampling: str
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One batch's random draws from ``g``, in this order: t ``[n, 1]`` (uniform for 'full'; no draw, 0, for
    'end'), z0 and z1 ``[n, z_dim]``, the labels, then every constant noise map of ``G`` (redrawn in place, shared
    by the batch's pairs). Returns (t, z0, z1, c) on the CPU."""
    t = torch.zeros(n, 1) if sampling == "end" else torch.rand(n, 1, generator=g)
    z0, z1 = torch.randn(n, G.z_dim, generator=g), torch.randn(n, G.z_dim, generator=g)
    c = labels.sample(n, g)
    for buf in noise_buffers(G):
        buf.copy_(torch.randn(buf.shape, generator=g))
    return t, z0, z1, c


@torch.no_grad()
def pair_distances(G: nn.Module, distance: nn.Module, t: torch.Tensor, z0: torch.Tensor, z1: torch.Tensor,
                   c: torch.Tensor, device: torch.device, space: str = "w", epsilon: float = 1e-4,
                   crop: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(scaled distances ``[n]`` float64, G's images at t and at t + epsilon ``[2n, C, H, W]``) of the pairs
    (z0, z1, t, c), with G's constant noise as it is (see the module docstring)."""
    param = next(G.parameters(), None)
    dtype = param.dtype if param is not None else torch.float64
    n = len(t)
    t, z0, z1, c = t.to(device), z0.to(device), z1.to(device), c.to(device)
    if space == "w":
        w0, w1 = G.mapping(torch.cat([z0, z1]), torch.cat([c, c])).chunk(2)
        tt = t.to(w0.dtype).unsqueeze(2)
        ws = torch.cat([w0.lerp(w1, tt), w0.lerp(w1, tt + epsilon)])
    else:
        z0, z1, t = z0.double(), z1.double(), t.double()  # the difference of the two points is ~epsilon
        zs = torch.cat([slerp_directions(z0, z1, t), slerp_directions(z0, z1, t + epsilon)]).to(dtype)
        ws = G.mapping(zs, torch.cat([c, c]))
    img = G.synthesis(ws, noise_mode="const")
    d = distance(*prepare_images(img, crop).chunk(2))
    return d.reshape(n).to(torch.float64) / epsilon**2, img


def check_settings(space: str, sampling: str) -> None:
    if space not in ("w", "z") or sampling not in ("end", "full"):
        raise ValueError(f"space must be 'w' or 'z' and sampling 'end' or 'full', got {space!r}, {sampling!r}")


@torch.no_grad()
def path_distances(G: nn.Module, distance: nn.Module, num: int, batch_size: int, seed: int, labels: LabelSampler,
                   device: torch.device, space: str = "w", sampling: str = "end", epsilon: float = 1e-4,
                   crop: bool = False, rank: int = 0, world: int = 1) -> Iterator[torch.Tensor]:
    """This rank's batches of scaled distances ``[n]`` (see the module docstring): batch ``b`` draws from
    ``torch.Generator().manual_seed(batch_seed(seed, b))`` (:func:`draw_pairs`). ``G`` is copied (its constant
    noise is redrawn per batch)."""
    check_settings(space, sampling)
    G = copy.deepcopy(G).eval()
    for b, n in batches_of_rank(num, batch_size, rank, world):
        g = torch.Generator().manual_seed(batch_seed(seed, b))
        t, z0, z1, c = draw_pairs(G, n, g, labels, sampling)
        yield pair_distances(G, distance, t, z0, z1, c, device, space, epsilon, crop)[0]
