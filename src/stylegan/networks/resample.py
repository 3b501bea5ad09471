"""FIR up/down-sampling (StyleGAN2 Sec. 4 / Appendix B: bilinear [1,3,3,1] filtering, as in Zhang 2019).

Pure PyTorch, no compiled extensions. ``upfirdn2d`` is the general, readable definition (zero-stuff, pad,
convolve with the FIR filter, decimate); the layers use the fused fast paths (``upsample2d``,
``downsample2d``, ``conv_up2``, ``conv_down2``), which compute the same linear maps with
``conv_transpose2d`` / strided ``conv2d`` and are tested against ``upfirdn2d`` in float64.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def setup_filter(taps: tuple[float, ...] = (1, 3, 3, 1)) -> torch.Tensor:
    """2-D separable FIR filter: outer product of ``taps`` normalised to sum 1 ([4, 4] for [1,3,3,1])."""
    f = torch.as_tensor(taps, dtype=torch.float32)
    f = torch.outer(f, f)
    return f / f.sum()


def _depthwise(
    f: torch.Tensor, channels: int, like: torch.Tensor, gain: float = 1.0, flip: bool = True
) -> torch.Tensor:
    """Depthwise weight for ``f``; flipped for ``conv2d`` (a true convolution), not for ``conv_transpose2d``
    (which already convolves)."""
    f = (f * gain).to(dtype=like.dtype, device=like.device)
    return (f.flip([0, 1]) if flip else f)[None, None].expand(channels, 1, *f.shape)


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor,
    up: int = 1,
    down: int = 1,
    pad: tuple[int, int, int, int] = (0, 0, 0, 0),
    gain: float = 1.0,
) -> torch.Tensor:
    """Zero-stuff by ``up``, pad (x0, x1, y0, y1; negative crops), convolve with ``f * gain``, keep every
    ``down``-th sample. The reference definition of all resampling in the networks."""
    N, C, H, W = x.shape
    if up > 1:
        x = x.reshape(N, C, H, 1, W, 1)
        x = F.pad(x, (0, up - 1, 0, 0, 0, up - 1))
        x = x.reshape(N, C, H * up, W * up)
    x0, x1, y0, y1 = pad
    x = F.pad(x, (max(x0, 0), max(x1, 0), max(y0, 0), max(y1, 0)))
    x = x[:, :, max(-y0, 0) : x.shape[2] - max(-y1, 0), max(-x0, 0) : x.shape[3] - max(-x1, 0)]
    x = F.conv2d(x, _depthwise(f, C, x, gain), groups=C)  # flipped weight: a true convolution
    return x[:, :, ::down, ::down]


def filter2d(x: torch.Tensor, f: torch.Tensor, pad: int, gain: float = 1.0) -> torch.Tensor:
    """FIR filter with symmetric zero padding ``pad`` on every side (no resampling)."""
    return F.conv2d(x, _depthwise(f, x.shape[1], x, gain), padding=pad, groups=x.shape[1])


def upsample2d(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """2x FIR up-sampling, [H, W] -> [2H, 2W]; equals ``upfirdn2d(x, f, up=2, pad=(2, 1, 2, 1), gain=4)``."""
    C = x.shape[1]
    return F.conv_transpose2d(x, _depthwise(f, C, x, 4.0, flip=False), stride=2, padding=1, groups=C)


def downsample2d(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """2x FIR down-sampling, [H, W] -> [H/2, W/2]; equals ``upfirdn2d(x, f, down=2, pad=(1, 1, 1, 1))``."""
    C = x.shape[1]
    return F.conv2d(x, _depthwise(f, C, x), stride=2, padding=1, groups=C)


def conv_up2(x: torch.Tensor, w: torch.Tensor, f: torch.Tensor, groups: int = 1) -> torch.Tensor:
    """3x3 (odd k) convolution on the 2x up-sampled grid, [H, W] -> [2H, 2W] (StyleGAN2 conv0 of a block).

    The weight acts as a true convolution (the official ``flip_weight=False`` for up-sampling layers):
    a stride-2 transposed conv ([2H + k - 2]) then the 4-tap FIR with gain 4 and padding (5 - k) / 2 equals
    zero-stuffing, padding (k//2 + 2, k//2 + 1), FIR, and a flipped-kernel conv.
    """
    O, I, kh, kw = w.shape  # w: [O, I, k, k] with O = groups * O_g
    wt = w.reshape(groups, O // groups, I, kh, kw).transpose(1, 2).reshape(groups * I, O // groups, kh, kw)
    x = F.conv_transpose2d(x, wt, stride=2, groups=groups)
    return filter2d(x, f, pad=(5 - kw) // 2, gain=4.0)


def conv_down2(x: torch.Tensor, w: torch.Tensor, f: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """3x3 (odd k) convolution followed by 2x decimation, [H, W] -> [H/2, W/2] (D conv1 of a block):
    FIR with padding (k - 1) // 2 + 1, then a stride-2 cross-correlation (adding ``bias``, if given)."""
    kw = w.shape[-1]
    x = filter2d(x, f, pad=(kw - 1) // 2 + 1)
    return F.conv2d(x, w, bias, stride=2)


def blur_pool_down2(x: torch.Tensor, w: torch.Tensor, f: torch.Tensor, bias: torch.Tensor | None = None,
                    ) -> torch.Tensor:
    """StyleGAN1's down-sampling conv (D_basic ``Conv1_down``, Karras 2019): blur with the 3-tap ``f`` ([1,2,1],
    same size), k x k conv (same size, adding ``bias``), then 2x2 average pooling, [H, W] -> [H/2, W/2]. (Its
    "fused" form, one 4x4 stride-2 conv, is the same linear map.)"""
    x = filter2d(x, f, pad=f.shape[-1] // 2)
    return F.avg_pool2d(F.conv2d(x, w, bias, padding=w.shape[-1] // 2), 2)
