"""Weight modulation and demodulation (StyleGAN2 Sec. 2.2, Fig. 2c-d, Eqs. 1-3).

Modulation (Eq. 1):   w'_ijk  = s_i * w_ijk
Demodulation (Eq. 3): w''_ijk = w'_ijk / sqrt(sum_{i,k} w'_ijk^2 + eps)

Two equivalent evaluations: *fused* builds one weight per sample and runs a grouped conv; *non-fused* scales the
activations by ``s`` before a shared conv and by the demodulation coefficients after it (faster for training).
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from .resample import conv_up2


def no_autocast(device_type: str):
    """Autocast off inside (a no-op context, with no cost on the hot path, when autocast is not on)."""
    if torch.is_autocast_enabled(device_type):
        return torch.autocast(device_type=device_type, enabled=False)
    return contextlib.nullcontext()


def float32_styles(affine: torch.nn.Module, w: torch.Tensor) -> torch.Tensor:
    """``affine(w)`` in float32 with autocast off: under bf16/fp16 autocast the styles (and the demodulation
    coefficients computed from them) stay float32 and are cast only where they scale the activations, as in the
    official mixed-precision layers."""
    with no_autocast(w.device.type):
        return affine(w.to(torch.promote_types(w.dtype, torch.float32)))


def demodulation_coefficients(weight: torch.Tensor, styles: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Eq. 3 denominator as a multiplier: ``rsqrt(sum_{in,kh,kw} (s_in * w_out,in,kh,kw)^2 + eps)`` -> [N, O].

    Evaluated as ``s^2 @ (sum_k w^2)^T``, without materializing the per-sample weights [N, O, I, k, k].
    """
    return (styles.square() @ weight.square().sum(dim=[2, 3]).T + eps).rsqrt()


def _conv(x: torch.Tensor, w: torch.Tensor, f: torch.Tensor | None, up: int, groups: int,
          bias: torch.Tensor | None = None) -> torch.Tensor:
    """Same-size conv (``up=1``; the conv adds ``bias`` itself) or conv on the 2x grid (``up=2``; bias added after)."""
    if up == 2:
        x = conv_up2(x, w, f, groups=groups)
        return x if bias is None else x + bias.to(x.dtype).reshape(1, -1, 1, 1)
    return F.conv2d(x, w, bias, padding=w.shape[-1] // 2, groups=groups)


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    noise: torch.Tensor | None = None,
    up: int = 1,
    demodulate: bool = True,
    resample_filter: torch.Tensor | None = None,
    fused: bool = True,
    bias: torch.Tensor | None = None,
    gain: float = 1.0,
) -> torch.Tensor:
    """Modulated (and optionally demodulated) conv of ``x`` [N, I, H, W] with ``weight`` [O, I, k, k] by
    per-sample ``styles`` [N, I]; returns ``(conv + noise + bias) * gain`` (noise after demodulation, as
    Fig. 2d). ``up=2`` convolves on the 2x grid. ``gain`` and ``bias`` ride on the demodulation multiply (or on the
    conv's own weight and bias), so they cost no extra pass over the activations."""
    N, I, H, W = x.shape
    O = weight.shape[0]
    if up == 2 and resample_filter is None:
        raise ValueError("modulated_conv2d with up=2 needs a resample_filter")
    d = None
    if demodulate:  # [N, O], at least float32 (a float64 run stays float64), outside autocast
        with no_autocast(x.device.type):
            dtype = torch.promote_types(torch.promote_types(weight.dtype, styles.dtype), torch.float32)
            d = demodulation_coefficients(weight.to(dtype), styles.to(dtype))
    weight = weight.to(x.dtype)
    styles = styles.to(x.dtype)
    b = None if bias is None else bias.to(x.dtype) * gain
    if not fused:
        x = x * styles[:, :, None, None]
        if d is None:
            x = _conv(x, weight * gain if gain != 1 else weight, resample_filter, up, groups=1, bias=b)
        else:
            x = _conv(x, weight, resample_filter, up, groups=1)
            scale = d.to(x.dtype)[:, :, None, None] * gain
            x = x * scale if b is None else torch.addcmul(b.to(x.dtype).reshape(1, -1, 1, 1), x, scale)
    else:
        w = weight[None] * styles[:, None, :, None, None]  # [N, O, I, k, k]
        if d is not None or gain != 1:
            w = w * (gain if d is None else d.to(w.dtype)[:, :, None, None, None] * gain)
        x = _conv(x.reshape(1, N * I, H, W), w.reshape(N * O, I, *weight.shape[2:]), resample_filter, up, groups=N,
                  bias=None if b is None else b.repeat(N))
        x = x.reshape(N, O, *x.shape[2:])
    if noise is None:
        return x
    return x + (noise.to(x.dtype) * gain if gain != 1 else noise.to(x.dtype))


def instance_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Normalize each feature map to zero mean and unit variance (AdaIN's "Norm mean/std", Fig. 2a)."""
    x = x - x.mean(dim=[2, 3], keepdim=True)
    return x * (x.square().mean(dim=[2, 3], keepdim=True) + eps).rsqrt()
