"""Slow, explicit float64 reference implementations used by the math tests.

Everything here is written from the formulas in ``shared/reference/OFFICIAL_LAYOUT.md`` with plain indexing,
explicit zero tensors and tap-by-tap loops. Nothing is imported from ``stylegan`` and no ``F.conv*`` /
``F.pad`` call is used, so a test comparing the package against these functions compares two independent
computations.
"""

from __future__ import annotations

import math

import torch

DT = torch.float64


def assert_rel_close(actual: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-10) -> None:
    """``max|actual - expected| <= rtol * max|expected|`` (plus identical shapes and a float64 result)."""
    actual, expected = actual.detach(), expected.detach()
    assert actual.shape == expected.shape, f"shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    scale = max(expected.abs().max().item(), 1e-300)
    err = (actual.to(expected.dtype) - expected).abs().max().item()
    assert err <= rtol * scale, f"max abs err {err:.3e} > {rtol:.1e} * max|expected| ({scale:.3e})"


def lrelu(x: torch.Tensor, alpha: float = 0.2) -> torch.Tensor:
    return torch.where(x >= 0, x, alpha * x)


def fir_taps() -> torch.Tensor:
    """The StyleGAN2 2-D filter, written out: outer([1,3,3,1], [1,3,3,1]) / 64."""
    t = [1.0, 3.0, 3.0, 1.0]
    return torch.tensor([[a * b / 64.0 for b in t] for a in t], dtype=DT)


def zero_stuff(x: torch.Tensor, up: int) -> torch.Tensor:
    """[N, C, H, W] -> [N, C, H*up, W*up] with x at the indices (i*up, j*up) and zeros elsewhere."""
    N, C, H, W = x.shape
    u = torch.zeros(N, C, H * up, W * up, dtype=x.dtype)
    u[:, :, ::up, ::up] = x
    return u


def zero_pad(x: torch.Tensor, pad: tuple[int, int, int, int]) -> torch.Tensor:
    """Pad (x0 = left, x1 = right, y0 = top, y1 = bottom) with zeros; a negative amount crops."""
    x0, x1, y0, y1 = pad
    N, C, H, W = x.shape
    Ho, Wo = H + y0 + y1, W + x0 + x1
    out = torch.zeros(N, C, Ho, Wo, dtype=x.dtype)
    for i in range(H):
        for j in range(W):
            oi, oj = i + y0, j + x0
            if 0 <= oi < Ho and 0 <= oj < Wo:
                out[:, :, oi, oj] = x[:, :, i, j]
    return out


def true_conv_valid(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Depthwise *true* convolution with the 2-D filter f, 'valid' part only:
    ``out[p, q] = sum_{a, b} f[a, b] * x[p + kh - 1 - a, q + kw - 1 - b]``, evaluated pixel by pixel."""
    N, C, H, W = x.shape
    kh, kw = f.shape
    Ho, Wo = H - kh + 1, W - kw + 1
    out = torch.zeros(N, C, Ho, Wo, dtype=x.dtype)
    for p in range(Ho):
        for q in range(Wo):
            acc = torch.zeros(N, C, dtype=x.dtype)
            for a in range(kh):
                for b in range(kw):
                    acc = acc + f[a, b] * x[:, :, p + kh - 1 - a, q + kw - 1 - b]
            out[:, :, p, q] = acc
    return out


def upfirdn2d_ref(
    x: torch.Tensor,
    f: torch.Tensor,
    up: int = 1,
    down: int = 1,
    pad: tuple[int, int, int, int] = (0, 0, 0, 0),
    gain: float = 1.0,
) -> torch.Tensor:
    """Zero-stuff, pad, true-convolve with ``f * gain``, keep every ``down``-th sample starting at 0."""
    y = true_conv_valid(zero_pad(zero_stuff(x, up), pad), f.to(DT) * gain)
    return y[:, :, ::down, ::down]


def conv2d_ref(
    x: torch.Tensor, w: torch.Tensor, stride: int = 1, padding: int = 0, groups: int = 1
) -> torch.Tensor:
    """Cross-correlation (what deep-learning frameworks call conv2d), explicit tap loop:
    ``out[n, o, p, q] = sum_{i, a, b} xpad[n, g*I_g + i, p*s + a, q*s + b] * w[o, i, a, b]``."""
    xp = zero_pad(x, (padding,) * 4) if padding else x
    N, C, H, W = xp.shape
    O, Ig, kh, kw = w.shape
    Og = O // groups
    assert Ig * groups == C and Og * groups == O
    Ho, Wo = (H - kh) // stride + 1, (W - kw) // stride + 1
    out = torch.zeros(N, O, Ho, Wo, dtype=x.dtype)
    for g in range(groups):
        xs = xp[:, g * Ig : (g + 1) * Ig]
        wg = w[g * Og : (g + 1) * Og]
        for a in range(kh):
            for b in range(kw):
                rows = slice(a, a + stride * (Ho - 1) + 1, stride)
                cols = slice(b, b + stride * (Wo - 1) + 1, stride)
                patch = xs[:, :, rows, cols]
                out[:, g * Og : (g + 1) * Og] += torch.einsum("nihw,oi->nohw", patch, wg[:, :, a, b])
    return out


def conv_up2_ref(x: torch.Tensor, w: torch.Tensor, f: torch.Tensor, groups: int = 1) -> torch.Tensor:
    """OFFICIAL_LAYOUT "Up-sampling conv, exact semantics" (k = 3, padding 1): zero-stuff with samples at
    even positions, pad (3, 2, 3, 2), depthwise FIR with 4 * f, then conv2d with the flipped weight."""
    u = zero_pad(zero_stuff(x, 2), (3, 2, 3, 2))
    u = true_conv_valid(u, 4 * f.to(DT))
    return conv2d_ref(u, w.flip([2, 3]), groups=groups)


def conv_down2_ref(x: torch.Tensor, w: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """OFFICIAL_LAYOUT D conv1 (k = 3, padding 1, down 2): upfirdn2d with pad 2 (filter only), then a stride-2
    cross-correlation."""
    return conv2d_ref(upfirdn2d_ref(x, f, pad=(2, 2, 2, 2)), w, stride=2)


def modulated_conv2d_ref(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    noise: torch.Tensor | None = None,
    up: int = 1,
    demodulate: bool = True,
    f: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per sample: w' = s_i * w_oikk (Eq. 1), w'' = w' / sqrt(sum_{i,k} w'^2 + 1e-8) (Eq. 3), a plain
    (k//2-padded) cross-correlation, or the official up-sampling conv for ``up=2``; noise added afterwards."""
    outs = []
    for n in range(x.shape[0]):
        wn = weight * styles[n][None, :, None, None]
        if demodulate:
            sums = [float((wn[o] ** 2).sum()) for o in range(wn.shape[0])]
            norms = torch.tensor([math.sqrt(v + 1e-8) for v in sums], dtype=DT)
            wn = wn / norms[:, None, None, None]
        xn = x[n : n + 1]
        if up == 2:
            outs.append(conv_up2_ref(xn, wn, f))
        else:
            outs.append(conv2d_ref(xn, wn, padding=weight.shape[-1] // 2))
    y = torch.cat(outs)
    return y if noise is None else y + noise


def minibatch_std_ref(x: torch.Tensor, group_size: int | None, num_channels: int) -> torch.Tensor:
    """Official minibatch stddev with explicit loops: sample i is in group j = i % (N // G); per group, per
    channel part f: mean over (C/F, H, W) of sqrt(population variance over the G members + 1e-8)."""
    N, C, H, W = x.shape
    G = N if group_size is None else min(group_size, N)
    M = N // G
    Fc = num_channels
    Cf = C // Fc
    extra = torch.zeros(N, Fc, H, W, dtype=x.dtype)
    for i in range(N):
        members = [k for k in range(N) if k % M == i % M]
        assert len(members) == G
        for f in range(Fc):
            total = 0.0
            for c in range(f * Cf, (f + 1) * Cf):
                for h in range(H):
                    for w in range(W):
                        vals = [float(x[k, c, h, w]) for k in members]
                        mu = sum(vals) / G
                        var = sum((v - mu) ** 2 for v in vals) / G
                        total += math.sqrt(var + 1e-8)
            extra[i, f] = total / (Cf * H * W)
    return torch.cat([x, extra], dim=1)
