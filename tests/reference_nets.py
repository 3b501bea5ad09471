"""Whole-network float64 forward passes of the StyleGAN2 G and D written from the formulas of
``shared/reference/OFFICIAL_LAYOUT.md`` ("Exact formulas"), reading only a state_dict: nothing is imported from
``stylegan``. Convolutions use ``F.conv2d``; every padding, flip, gain, clamp and the order of the operations are
spelled out here, so a test comparing the package with these functions compares two separate compositions.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

DT = torch.float64
SQRT2, SQRT_HALF = math.sqrt(2), math.sqrt(0.5)


def _fir() -> torch.Tensor:
    t = torch.tensor([1.0, 3.0, 3.0, 1.0], dtype=DT)
    f = torch.outer(t, t)
    return f / f.sum()


def _lrelu(x: torch.Tensor, gain: float, clamp: float | None) -> torch.Tensor:
    """bias_act's order after the bias: activation, gain, clamp."""
    y = torch.where(x >= 0, x, 0.2 * x) * gain
    return y if clamp is None else y.clamp(-clamp, clamp)


def _clamp(x: torch.Tensor, clamp: float | None) -> torch.Tensor:
    return x if clamp is None else x.clamp(-clamp, clamp)


def upfirdn(x: torch.Tensor, up: int = 1, down: int = 1, pad: tuple[int, int, int, int] = (0, 0, 0, 0),
            gain: float = 1.0) -> torch.Tensor:
    """Zero-stuff by ``up`` (samples at multiples of ``up``), zero-pad (left, right, top, bottom), convolve each
    channel with the [1,3,3,1] filter times ``gain`` (symmetric: correlation = convolution), keep every ``down``-th
    sample from 0."""
    N, C, H, W = x.shape
    if up > 1:
        u = x.new_zeros(N, C, H * up, W * up)
        u[:, :, ::up, ::up] = x
        x = u
    x = F.pad(x, list(pad))
    f = (_fir() * gain)[None, None].repeat(C, 1, 1, 1)
    return F.conv2d(x, f, groups=C)[:, :, ::down, ::down]


def _fc(sd: dict, key: str, x: torch.Tensor, lr: float = 1.0) -> torch.Tensor:
    w, b = sd[f"{key}.weight"], sd.get(f"{key}.bias")
    y = x @ (w * (lr / math.sqrt(w.shape[1]))).T
    return y if b is None else y + b * lr


def mapping(sd: dict, z: torch.Tensor, num_ws: int, num_layers: int, prefix: str = "mapping.",
            c: torch.Tensor | None = None) -> torch.Tensor:
    """normalize_2nd_moment(z) (and of the embedded label), ``num_layers`` lrelu FCs with lr multiplier 0.01,
    broadcast to ``num_ws`` (truncation psi = 1)."""
    def norm(v: torch.Tensor) -> torch.Tensor:
        return v * (v.square().mean(1, keepdim=True) + 1e-8).rsqrt()

    x = norm(z) if z.shape[1] else None
    if c is not None:
        y = norm(_fc(sd, f"{prefix}embed", c))
        x = y if x is None else torch.cat([x, y], 1)
    for i in range(num_layers):
        x = _lrelu(_fc(sd, f"{prefix}fc{i}", x, lr=0.01), SQRT2, None)
    return x[:, None].repeat(1, num_ws, 1)


def _modconv(x: torch.Tensor, weight: torch.Tensor, s: torch.Tensor, demodulate: bool, up: int) -> torch.Tensor:
    """Per sample: weights scaled by the styles, demodulated (eps 1e-8 inside the rsqrt); up=2 as the official
    up-sampling conv (zero-stuff at even positions, pad (3, 2, 3, 2), FIR x4, then a true convolution)."""
    out = []
    for n in range(x.shape[0]):
        w = weight * s[n][None, :, None, None]
        if demodulate:
            w = w * (w.square().sum([1, 2, 3]) + 1e-8).rsqrt()[:, None, None, None]
        xn = x[n:n + 1]
        if up == 2:
            out.append(F.conv2d(upfirdn(xn, up=2, pad=(3, 2, 3, 2), gain=4), w.flip([2, 3])))
        else:
            out.append(F.conv2d(xn, w, padding=w.shape[-1] // 2))
    return torch.cat(out)


def _synthesis_layer(sd: dict, key: str, x: torch.Tensor, w: torch.Tensor, up: int, clamp: float | None,
                     gain: float = 1.0) -> torch.Tensor:
    s = _fc(sd, f"{key}.affine", w)
    y = _modconv(x, sd[f"{key}.weight"], s, True, up)
    y = y + sd[f"{key}.noise_const"][None, None] * sd[f"{key}.noise_strength"]  # noise_mode='const'
    return _lrelu(y + sd[f"{key}.bias"][None, :, None, None], SQRT2 * gain, None if clamp is None else clamp * gain)


def _torgb(sd: dict, key: str, x: torch.Tensor, w: torch.Tensor, clamp: float | None) -> torch.Tensor:
    weight = sd[f"{key}.weight"]
    s = _fc(sd, f"{key}.affine", w) / math.sqrt(weight.shape[1])
    return _clamp(_modconv(x, weight, s, False, 1) + sd[f"{key}.bias"][None, :, None, None], clamp)


def generator(sd: dict, z: torch.Tensor, arch: str, resolution: int, num_layers: int,
              clamp: float | None = 256, c: torch.Tensor | None = None) -> torch.Tensor:
    """G(z, c, truncation_psi=1, noise_mode='const') from the state_dict ``sd`` (float64 tensors)."""
    blocks = [2**i for i in range(2, int(math.log2(resolution)) + 1)]
    num_ws = 2 * len(blocks)
    ws = mapping(sd, z, num_ws, num_layers, c=c)
    x = img = None
    w_idx = 0
    for r in blocks:
        b = f"synthesis.b{r}"
        last = r == resolution
        if r == 4:
            x = sd[f"{b}.const"][None].repeat(z.shape[0], 1, 1, 1)
            x = _synthesis_layer(sd, f"{b}.conv1", x, ws[:, w_idx], 1, clamp)
            torgb_w, w_idx = ws[:, w_idx + 1], w_idx + 1
        else:
            y = None
            if arch == "resnet":  # 1x1 conv (gain 1/sqrt(I)), then upsample2d; no bias, no clamp
                weight = sd[f"{b}.skip.weight"]
                y = F.conv2d(x, weight / math.sqrt(weight.shape[1])) * SQRT_HALF
                y = upfirdn(y, up=2, pad=(2, 1, 2, 1), gain=4)
            x = _synthesis_layer(sd, f"{b}.conv0", x, ws[:, w_idx], 2, clamp)
            x = _synthesis_layer(sd, f"{b}.conv1", x, ws[:, w_idx + 1], 1, clamp,
                                 gain=SQRT_HALF if arch == "resnet" else 1.0)
            if y is not None:
                x = y + x
            torgb_w, w_idx = ws[:, w_idx + 2], w_idx + 2
        if img is not None:
            img = upfirdn(img, up=2, pad=(2, 1, 2, 1), gain=4)
        if last or arch == "skip":
            rgb = _torgb(sd, f"{b}.torgb", x, torgb_w, clamp)
            img = rgb if img is None else img + rgb
    assert w_idx == num_ws - 1
    return img


def _conv(sd: dict, key: str, x: torch.Tensor, act: bool, clamp: float | None, gain: float = 1.0,
          down: int = 1) -> torch.Tensor:
    """Conv2dLayer: weight / sqrt(I k k); a 3x3 down-2 conv filters with pad 2 first, then strides 2; a 1x1
    down-2 conv downsamples first (pad 1)."""
    weight = sd[f"{key}.weight"]
    weight = weight / math.sqrt(weight[0].numel())
    k = weight.shape[-1]
    if down == 2 and k == 3:
        y = F.conv2d(upfirdn(x, pad=(2, 2, 2, 2)), weight, stride=2)
    elif down == 2:
        y = F.conv2d(upfirdn(x, down=2, pad=(1, 1, 1, 1)), weight)
    else:
        y = F.conv2d(x, weight, padding=k // 2)
    bias = sd.get(f"{key}.bias")
    if bias is not None:
        y = y + bias[None, :, None, None]
    if act:
        return _lrelu(y, SQRT2 * gain, None if clamp is None else clamp * gain)
    return _clamp(y * gain, None if clamp is None else clamp * gain)


def _mbstd(x: torch.Tensor, group: int) -> torch.Tensor:
    """Sample i is in group i % (N / G); the mean over C, H, W of the population std over the group (eps 1e-8
    inside the sqrt), appended as one more channel."""
    N, _, H, W = x.shape
    G = min(group, N)
    M = N // G
    stds = torch.stack([(x[j::M].var(0, unbiased=False) + 1e-8).sqrt().mean() for j in range(M)])
    extra = stds[torch.arange(N) % M][:, None, None, None].expand(N, 1, H, W)
    return torch.cat([x, extra], 1)


def discriminator(sd: dict, img: torch.Tensor, arch: str, resolution: int, mbstd_group: int,
                  clamp: float | None = 256, c: torch.Tensor | None = None) -> torch.Tensor:
    """D(img, c) from the state_dict ``sd`` (float64 tensors)."""
    x = None
    r = resolution
    while r >= 8:
        b = f"b{r}"
        if x is None or arch == "skip":
            y = _conv(sd, f"{b}.fromrgb", img, True, clamp)
            x = y if x is None else x + y
            if arch == "skip":
                img = upfirdn(img, down=2, pad=(1, 1, 1, 1))
        if arch == "resnet":
            y = _conv(sd, f"{b}.skip", x, False, None, gain=SQRT_HALF, down=2)
            x = _conv(sd, f"{b}.conv0", x, True, clamp)
            x = y + _conv(sd, f"{b}.conv1", x, True, clamp, gain=SQRT_HALF, down=2)
        else:
            x = _conv(sd, f"{b}.conv1", _conv(sd, f"{b}.conv0", x, True, clamp), True, clamp, down=2)
        r //= 2
    if arch == "skip":
        x = x + _conv(sd, "b4.fromrgb", img, True, None)
    x = _conv(sd, "b4.conv", _mbstd(x, mbstd_group), True, clamp)
    x = _lrelu(_fc(sd, "b4.fc", x.flatten(1)), SQRT2, None)
    x = _fc(sd, "b4.out", x)
    if c is not None:
        cmap = mapping(sd, torch.zeros(c.shape[0], 0, dtype=DT), 1, 8, prefix="mapping.", c=c)[:, 0]
        x = (x * cmap).sum(1, keepdim=True) / math.sqrt(cmap.shape[1])
    return x


def perturbed(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """``module`` in float64 with random values added to every bias, noise strength and w_avg (all zero at
    initialization, where they would not be exercised), as the official reference dumps do."""
    g = torch.Generator().manual_seed(seed)
    net = module.double()
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if name.endswith((".bias", "noise_strength", "w_avg")):
                t.add_(torch.randn(t.shape, generator=g, dtype=DT) * 0.5)
    return net
