"""Projection of an image into W (or W+), StyleGAN2 paper §5 and Appendix D as in the official ``projector.py``.

Adam on one w (start: the mean of 10,000 mapped z) and on the per-layer noise maps, 1000 steps; the learning rate
ramps up over the first 5 % and down (cosine) over the last 25 %; Gaussian noise of scale ``w_std * 0.05 *
max(0, 1 - t / 0.75)**2`` is added to w; the noise maps are regularized (squared autocorrelation at one pixel shift,
over a pyramid down to 8x8, weight 1e5) and renormalized after every step. The distance is LPIPS-VGG16 (Zhang et
al. 2018) on images in [0, 255] downsampled to 256x256. ``pixel`` is the fallback when those weights cannot be
loaded: the squared difference of images in [-1, 1] summed over a pyramid of 2x2 averages (so coarse structure
weighs as much as detail); it reconstructs colours and layout but not perceptual detail. W+ optimizes one w per
layer (Abdal et al. 2019), which fits more closely but leaves the generator's latent distribution.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..networks import Generator
from ..utils.atomic import atomic_open
from ..utils.images import save_image, to_uint8
from .generate import ToolError, class_labels

DISTANCES = ("auto", "lpips", "pixel")


@dataclass
class ProjectionConfig:
    """The official hyper-parameters (``projector.py``)."""

    num_steps: int = 1000
    w_avg_samples: int = 10000
    initial_learning_rate: float = 0.1
    initial_noise_factor: float = 0.05
    lr_rampdown_length: float = 0.25
    lr_rampup_length: float = 0.05
    noise_ramp_length: float = 0.75
    regularize_noise_weight: float = 1e5
    w_plus: bool = False


class PixelDistance(nn.Module):
    """The fallback distance: per image, the summed mean squared difference over a 2x2-average pyramid down to
    8x8 of images scaled from [0, 255] to [-1, 1]."""

    name = "pixel-pyramid"

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        a, b = a / 127.5 - 1, b / 127.5 - 1
        total = (a - b).square().mean([1, 2, 3])
        while a.shape[2] > 8:
            a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
            total = total + (a - b).square().mean([1, 2, 3])
        return total


FALLBACK = "the projection uses the pixel distance, which matches colours and layout, not perceptual detail"


def build_distance(kind: str, fallback: str = FALLBACK) -> nn.Module:
    """``lpips`` (torch-fidelity's LPIPS-VGG16, the ``[metrics]`` extra; a one-line error when it cannot load),
    ``pixel``, or ``auto``: LPIPS when it loads, else ``pixel`` with a warning saying what that means (``fallback``:
    "LPIPS is unavailable, so <fallback>")."""
    from ..metrics.extractors import MetricSetupError, build_lpips

    if kind not in DISTANCES:
        raise ToolError(f"--distance {kind!r}: use one of {', '.join(DISTANCES)}")
    if kind == "pixel":
        return PixelDistance()
    try:
        return build_lpips()
    except MetricSetupError as e:
        if kind == "lpips":
            raise ToolError(f"--distance lpips: {e}") from None
        warnings.warn(f"LPIPS is unavailable, so {fallback}; --distance pixel silences this. Why: {e}", stacklevel=2)
        return PixelDistance()


def noise_regularization(noise: torch.Tensor) -> torch.Tensor:
    """Sum of squared one-pixel autocorrelations (x and y) over the pyramid of 2x2 averages down to 8x8."""
    x = noise[None, None]
    reg = x.new_zeros([])
    while True:
        reg = reg + (x * x.roll(1, dims=3)).mean().square() + (x * x.roll(1, dims=2)).mean().square()
        if x.shape[2] <= 8:
            return reg
        x = F.avg_pool2d(x, 2)


def learning_rate(t: float, cfg: ProjectionConfig) -> float:
    """Linear ramp-up over ``lr_rampup_length``, cosine ramp-down over the last ``lr_rampdown_length`` (t in [0, 1))."""
    ramp = min(1.0, (1.0 - t) / cfg.lr_rampdown_length)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    return cfg.initial_learning_rate * ramp * min(1.0, t / cfg.lr_rampup_length)


def w_statistics(G: Generator, samples: int, device: torch.device, class_idx: int | None = None
                 ) -> tuple[torch.Tensor, float]:
    """(w_avg [1, 1, w_dim], w_std) of ``samples`` mapped z drawn by ``RandomState(123)`` as the official code."""
    z = torch.from_numpy(np.random.RandomState(123).randn(samples, G.z_dim)).float().to(device)
    w = G.mapping(z, class_labels(G, class_idx, samples).to(device))[:, :1].float()
    w_avg = w.mean(0, keepdim=True)
    return w_avg, float((w - w_avg).square().sum().div(samples).sqrt())


def _to_distance_input(img: torch.Tensor) -> torch.Tensor:
    """[-1, 1] G output -> [0, 255], gray repeated to RGB, area-downsampled to 256 (VGG's scale) when larger."""
    img = (img + 1) * 127.5
    img = img.repeat(1, 3, 1, 1) if img.shape[1] == 1 else img
    return F.interpolate(img, size=(256, 256), mode="area") if img.shape[2] > 256 else img


def project(G: Generator, target: torch.Tensor, distance: nn.Module, cfg: ProjectionConfig | None = None,
            seed: int = 303, class_idx: int | None = None, device: torch.device | str = "cpu",
            callback: Callable[[int, float, dict], None] | None = None) -> dict[str, torch.Tensor]:
    """Project ``target`` ([C, R, R] float in [0, 255]) into G's W (or W+). Returns ``ws`` [num_ws, w_dim] and the
    optimized ``noise`` maps (by buffer name), both on the CPU. ``callback(step, dist, state)`` after every step,
    ``state`` the ``{"ws", "noise"}`` of that step (views: copy what you keep; :func:`render` draws it)."""
    cfg = cfg or ProjectionConfig()
    device = torch.device(device)
    torch.manual_seed(seed)
    G = copy.deepcopy(G).eval().requires_grad_(False).to(device).float()
    distance = distance.to(device).eval().requires_grad_(False)
    w_avg, w_std = w_statistics(G, cfg.w_avg_samples, device, class_idx)
    noise = {n: b for n, b in G.synthesis.named_buffers() if n.endswith("noise_const")}
    with torch.no_grad():
        target_img = _to_distance_input(target[None].to(device, torch.float32) / 127.5 - 1)
    w_opt = (w_avg.repeat(1, G.num_ws, 1) if cfg.w_plus else w_avg).clone().requires_grad_(True)
    for buf in noise.values():
        buf.copy_(torch.randn_like(buf)).requires_grad_(True)
    opt = torch.optim.Adam([w_opt, *noise.values()], lr=cfg.initial_learning_rate, betas=(0.9, 0.999))
    for step in range(cfg.num_steps):
        t = step / cfg.num_steps
        for group in opt.param_groups:
            group["lr"] = learning_rate(t, cfg)
        w_noise_scale = w_std * cfg.initial_noise_factor * max(0.0, 1.0 - t / cfg.noise_ramp_length) ** 2
        ws = (w_opt + torch.randn_like(w_opt) * w_noise_scale).expand(1, G.num_ws, -1)
        dist = distance(_to_distance_input(G.synthesis(ws, noise_mode="const")), target_img).sum()
        reg = sum((noise_regularization(b) for b in noise.values()), dist.new_zeros([]))
        opt.zero_grad(set_to_none=True)
        (dist + cfg.regularize_noise_weight * reg).backward()
        opt.step()
        with torch.no_grad():
            for buf in noise.values():
                buf.sub_(buf.mean()).mul_(buf.square().mean().rsqrt())
        if callback is not None:
            callback(step, float(dist.detach()), {"ws": w_opt.detach().expand(1, G.num_ws, -1)[0],
                                                  "noise": {n: b.detach() for n, b in noise.items()}})
    return {"ws": w_opt.detach().expand(1, G.num_ws, -1)[0].cpu().clone(),
            "noise": {n: b.detach().cpu().clone() for n, b in noise.items()}}


def load_target(path: str, G: Generator) -> torch.Tensor:
    """The image as [C, R, R] float in [0, 255]: centre-cropped square, LANCZOS-resized to G's resolution (as the
    official projector), gray or RGB to match G. A file Pillow cannot read is a one-line error."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("L" if G.img_channels == 1 else "RGB")
    except FileNotFoundError:
        raise ToolError(f"--target {path} does not exist") from None
    except (UnidentifiedImageError, OSError) as e:
        raise ToolError(f"--target {path} is not an image Pillow can read ({type(e).__name__}); pass a PNG or JPEG"
                        ) from None
    w, h = im.size
    s = min(w, h)
    im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    im = im.resize((G.img_resolution, G.img_resolution), Image.LANCZOS)
    arr = np.asarray(im, dtype=np.float32)
    return torch.from_numpy(arr[:, :, None] if arr.ndim == 2 else arr).permute(2, 0, 1).contiguous()


def write_projection(outdir: Path, target: torch.Tensor, G: Generator, result: dict[str, torch.Tensor]) -> list[Path]:
    """``target.png``, ``proj.png`` (G's image of the result, with its noise maps), ``side_by_side.png``,
    ``projected_w.npz`` (``w`` [1, num_ws, w_dim], as the official projector; ``stylegan generate --projected-w``
    renders it) and ``projected_w.pt`` (ws and noise maps). Every file is written atomically."""
    target_u8 = target.round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    proj_u8 = render(G, result)
    with atomic_open(outdir / "projected_w.npz") as f:
        np.savez(f, w=result["ws"][None].numpy())
    with atomic_open(outdir / "projected_w.pt") as f:
        torch.save({"ws": result["ws"], "noise": result["noise"]}, f)
    return [save_image(target_u8, outdir / "target.png"), save_image(proj_u8, outdir / "proj.png"),
            save_image(np.concatenate([target_u8, proj_u8], axis=1), outdir / "side_by_side.png"),
            outdir / "projected_w.npz", outdir / "projected_w.pt"]


@torch.no_grad()
def render(G: Generator, result: dict[str, torch.Tensor]) -> np.ndarray:
    """[R, R, C] uint8 image of projected ``ws`` with the projection's own noise maps (G itself is not changed)."""
    G = copy.deepcopy(G).eval().cpu().float()
    buffers = dict(G.synthesis.named_buffers())
    for name, value in result.get("noise", {}).items():
        buffers[name].copy_(value.cpu())
    return to_uint8(G.synthesis(result["ws"][None].float().cpu(), noise_mode="const"))[0]
