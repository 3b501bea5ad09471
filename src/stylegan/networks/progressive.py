"""Progressive growing (Karras et al. 2018, ProGAN; StyleGAN1; StyleGAN2 Table 1 configs A-D): level of detail.

``lod`` counts halvings of the full resolution R: lod 0 is R x R, lod k the resolution R / 2**k. A fractional
lod = k + t (0 < t < 1) fades in the block of resolution R / 2**k: its image is blended with the one of the
resolution below, ``lerp(new, old, t)`` (alpha = 1 - t is the weight of the new block). Every image G makes and D
sees stays R x R: G's output is nearest-upsampled to full resolution and D box-downsamples its input, as the
official ``structure='recursive'`` networks (NVlabs/stylegan ``G_synthesis`` / ``D_basic``, NVlabs/stylegan2
``G_synthesis_stylegan_revised`` / ``D_stylegan``, whose G upsamples the faded-out image with its FIR filter
where this one repeats pixels, so that G's image is continuous in lod). The reals go through the same
fade (:func:`fade_reals`, the official ``process_reals``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def max_lod(img_resolution: int) -> int:
    """The lowest level of detail, 4x4: log2(R) - 2."""
    return img_resolution.bit_length() - 3


def split_lod(lod: float, img_resolution: int) -> tuple[int, float]:
    """``lod`` -> (level k = floor(lod), fade t = lod - k); the current resolution is R >> k."""
    top = max_lod(img_resolution)
    if not (isinstance(lod, (int, float)) and 0 <= lod <= top):
        raise ValueError(f"lod must be a number in [0, {top}] for resolution {img_resolution}, got {lod!r}")
    level = math.floor(lod)
    return level, float(lod) - level


def upsample_nearest(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Each pixel repeated factor x factor times (the official ``upscale2d`` / ``naive_upsample_2d``)."""
    if factor == 1:
        return x
    return x.repeat_interleave(factor, dim=2).repeat_interleave(factor, dim=3)


def downsample_box(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Mean of each factor x factor block (the official ``downscale2d`` / ``naive_downsample_2d``)."""
    return x if factor == 1 else F.avg_pool2d(x, factor)


def fade(new: torch.Tensor, old: torch.Tensor | None, t: float) -> torch.Tensor:
    """``new + t * (old - new)``: ``new`` itself at t = 0, ``old`` itself at t = 1 (torch.lerp is exact at both)."""
    return new if t == 0 or old is None else torch.lerp(new, old, t)


def fade_reals(img: torch.Tensor, lod: float) -> torch.Tensor:
    """Real images at level of detail ``lod``, still R x R: box-averaged to R >> k, faded towards their 2x coarser
    version by t, then nearest-upsampled back to R (official ``process_reals``, FadeLOD + UpscaleLOD)."""
    level, t = split_lod(lod, img.shape[-1])
    if level == 0 and t == 0:
        return img
    x = downsample_box(img, 1 << level)
    if t > 0:
        x = fade(x, upsample_nearest(downsample_box(x, 2), 2), t)
    return upsample_nearest(x, 1 << level)


def set_lod(lod: float, *nets: torch.nn.Module) -> None:
    """Set the level of detail of every progressive network (a ``lod`` attribute, not a weight) inside ``nets``."""
    for net in nets:
        for module in net.modules():
            if getattr(module, "progressive", False):
                module.lod = float(lod)
