"""Equalized-learning-rate building blocks (Karras et al. 2018, Sec. 4.1; used throughout StyleGAN2).

Weights are stored with unit-variance init and scaled by ``lr_multiplier / sqrt(fan_in)`` at run time, so Adam
sees the same dynamic range for every layer. State-dict names follow the official StyleGAN2 code.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .resample import blur_pool_down2, conv_down2, conv_up2, downsample2d, setup_filter, upsample2d

DOWNSAMPLINGS = ("fir", "blur_pool")

SQRT2 = math.sqrt(2.0)
SQRT_HALF = math.sqrt(0.5)


def bias_act(
    x: torch.Tensor,
    b: torch.Tensor | None = None,
    act: str = "linear",
    gain: float = 1.0,
    clamp: float | None = None,
) -> torch.Tensor:
    """``clamp(act(x + b) * gain)`` in exactly this order; ``gain`` already includes lrelu's sqrt(2).

    The clamp is ``hardtanh``: the same values as ``x.clamp``, with one fused backward kernel (its gradient is 0
    where ``|x|`` equals the bound exactly, where ``clamp``'s is 1: a measure-zero set)."""
    if b is not None:
        x = x + b.reshape([1, -1] + [1] * (x.ndim - 2)).to(x.dtype)
    if act == "lrelu":
        x = F.leaky_relu(x, 0.2)
    elif act != "linear":
        raise ValueError(f"unknown activation {act!r}; expected 'linear' or 'lrelu'")
    if gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = F.hardtanh(x, -clamp, clamp)
    return x


_CHANNELS_LAST = [True]


def set_channels_last(enabled: bool) -> None:
    """Whether :func:`channels_last` converts (default) or leaves tensors as they are: a benchmark lever
    (``benchmarks/train_throughput.py --memory-format``); the values computed are the same either way."""
    _CHANNELS_LAST[0] = bool(enabled)


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """The same values in NHWC memory order. The networks run their conv stacks in it (set once at the input;
    convs and element-wise ops keep it): oneDNN's convolutions and their backward are 1.2-3.5x faster on CPU
    than on NCHW at these sizes (benchmarks/RESULTS.md)."""
    return x.contiguous(memory_format=torch.channels_last) if _CHANNELS_LAST[0] else x


def default_gain(act: str) -> float:
    return SQRT2 if act == "lrelu" else 1.0


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Pixel-norm of the latent: ``x / sqrt(mean(x^2) + eps)`` (StyleGAN mapping input)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


class FullyConnectedLayer(nn.Module):
    """Dense layer with equalized lr: ``y = act(x @ (W * lr/sqrt(in)).T + b * lr)``."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        activation: str = "linear",
        lr_multiplier: float = 1.0,
        bias_init: float = 0.0,
    ) -> None:
        super().__init__()
        self.in_features, self.out_features, self.activation = in_features, out_features, activation
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = None if self.bias is None else self.bias.to(x.dtype) * self.bias_gain
        if self.activation == "linear":
            return F.linear(x, w, b)
        return bias_act(F.linear(x, w), b, self.activation, default_gain(self.activation))

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, act={self.activation}"


class Conv2dLayer(nn.Module):
    """Plain (unmodulated) conv with equalized lr and optional 2x FIR up/down-sampling.

    Used by every D layer and the G ResNet skip. ``up``: transposed conv then FIR (true convolution);
    ``down``: FIR then stride 2 (cross-correlation), both as in the official ``conv2d_resample``; or, with
    ``downsampling='blur_pool'``, StyleGAN1's [1,2,1] blur, conv, 2x2 average (resample.blur_pool_down2).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        bias: bool = True,
        activation: str = "linear",
        up: int = 1,
        down: int = 1,
        conv_clamp: float | None = None,
        downsampling: str = "fir",
    ) -> None:
        super().__init__()
        if downsampling not in DOWNSAMPLINGS:
            raise ValueError(f"downsampling must be one of {DOWNSAMPLINGS}, got {downsampling!r}")
        if up not in (1, 2) or down not in (1, 2) or (up > 1 and down > 1):
            raise ValueError(f"Conv2dLayer supports up=2 or down=2 (not both), got up={up}, down={down}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.activation, self.up, self.down, self.conv_clamp = activation, up, down, conv_clamp
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)
        self.act_gain = default_gain(activation)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels])) if bias else None
        self.blur_pool = down == 2 and downsampling == "blur_pool"
        self.register_buffer("resample_filter", setup_filter((1, 2, 1) if self.blur_pool else (1, 3, 3, 1)))

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        # act(y) * g == act(g * y) for lrelu/linear and g > 0: the output gain rides on the (run-time scaled)
        # weight and bias, and the bias is added by the conv itself where the conv comes last
        g = self.act_gain * gain
        w = self.weight.to(x.dtype) * (self.weight_gain * g)
        b = None if self.bias is None else self.bias.to(x.dtype) * g
        f = self.resample_filter
        k = w.shape[-1]
        if self.up == 2:
            x = upsample2d(F.conv2d(x, w), f) if k == 1 else conv_up2(x, w, f)
            x = x if b is None else x + b.reshape(1, -1, 1, 1)
        elif self.blur_pool:
            x = blur_pool_down2(x, w, f, b)
        elif self.down == 2:
            x = F.conv2d(downsample2d(x, f), w, b) if k == 1 else conv_down2(x, w, f, b)
        else:
            x = F.conv2d(x, w, b, padding=self.padding)
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, None, self.activation, 1.0, clamp)

    def extra_repr(self) -> str:
        return (
            f"in={self.in_channels}, out={self.out_channels}, act={self.activation}, "
            f"up={self.up}, down={self.down}, clamp={self.conv_clamp}"
        )
