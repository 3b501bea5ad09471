"""Style blocks of the synthesis network (StyleGAN2 Fig. 2), selected by ``style_block``:

- ``demod``    (Fig. 2d, StyleGAN2): modulate the conv weights by the style, demodulate (Eqs. 1-3).
- ``modulate`` (Fig. 2c without the normalization): modulation only, no demodulation.
- ``revised``  (Fig. 2c, the paper's revised StyleGAN): modulate the input by the style (std only, no style bias),
  conv, then normalize each output feature map by its standard deviation alone (no mean removed); noise and bias
  outside the style block. Fig. 2d (``demod``) replaces this data-dependent norm by its estimate from the weights.
- ``adain``    (AdaIN in StyleGAN2's layout): conv, noise, bias, lrelu, then AdaIN = instance-normalize each feature
  map and apply a per-channel scale and bias from the style. The StyleGAN1 network as published (Fig. 2a: styles
  on the constant, bias and noise inside the style block, unstyled ToRGB) is ``stylegan1`` (stylegan1.py).

Every block adds per-pixel noise (``noise_mode`` random / const / none) scaled by a learned strength, then the
bias and the activation (clamped to ``conv_clamp``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .layers import SQRT2, FullyConnectedLayer, bias_act
from .modulation import float32_styles, instance_norm, modulated_conv2d, no_autocast
from .resample import conv_up2, setup_filter

STYLE_BLOCKS = ("demod", "modulate", "revised", "adain", "stylegan1")
NOISE_MODES = ("random", "const", "none")


class _StyleLayer(nn.Module):
    """Shared parts: conv weight, bias, FIR filter, per-layer noise with learned strength."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        resolution: int,
        kernel_size: int,
        up: int,
        use_noise: bool,
        conv_clamp: float | None,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.resolution, self.up, self.use_noise, self.conv_clamp = resolution, up, use_noise, conv_clamp
        self.register_buffer("resample_filter", setup_filter())
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))

    def noise(self, x: torch.Tensor, noise_mode: str) -> torch.Tensor | None:
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        if not self.use_noise or noise_mode == "none":
            return None
        if noise_mode == "random":
            n = torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device)
            return n * self.noise_strength
        return self.noise_const * self.noise_strength

    def clamp_at(self, gain: float) -> float | None:
        return self.conv_clamp * gain if self.conv_clamp is not None else None

    def activate(self, x: torch.Tensor, gain: float) -> torch.Tensor:
        return bias_act(x, self.bias, "lrelu", SQRT2 * gain, self.clamp_at(gain))

    def extra_repr(self) -> str:
        return f"in={self.in_channels}, out={self.out_channels}, res={self.resolution}, up={self.up}"


class SynthesisLayer(_StyleLayer):
    """Modulated 3x3 conv (Fig. 2d; ``demodulate=False`` gives Fig. 2c's modulation without normalization)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        kernel_size: int = 3,
        up: int = 1,
        use_noise: bool = True,
        conv_clamp: float | None = None,
        demodulate: bool = True,
    ) -> None:
        super().__init__(in_channels, out_channels, resolution, kernel_size, up, use_noise, conv_clamp)
        self.demodulate = demodulate
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)

    def forward(
        self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random", fused_modconv: bool = True,
        gain: float = 1.0,
    ) -> torch.Tensor:
        styles = float32_styles(self.affine, w)
        noise = self.noise(x, noise_mode)
        x = modulated_conv2d(  # lrelu's gain (SQRT2 * gain > 0) is applied before it: lrelu(g * y) = g * lrelu(y)
            x, self.weight, styles, noise, up=self.up, demodulate=self.demodulate,
            resample_filter=self.resample_filter, fused=fused_modconv, bias=self.bias, gain=SQRT2 * gain,
        )
        return bias_act(x, None, "lrelu", 1.0, self.clamp_at(gain))


def std_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Fig. 2c's "Norm std": ``x / sqrt(mean_hw(x^2) + eps)`` per feature map, the mean not removed (instance_norm
    without its centring). This is the statistic that demodulation (Eq. 2-3) predicts from the weights."""
    with no_autocast(x.device.type):
        y = x.to(torch.promote_types(x.dtype, torch.float32))
        return (y * (y.square().mean(dim=[2, 3], keepdim=True) + eps).rsqrt()).to(x.dtype)


class RevisedLayer(SynthesisLayer):
    """Fig. 2c: Mod std (input scaled by the style, affine bias init 1) -> 3x3 conv -> Norm std, then noise, bias
    and lrelu outside the style block. Sec. 2.1: "it is sufficient for the normalization and modulation to operate
    on the standard deviation alone (i.e., the mean is not needed)"."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, demodulate=False, **kwargs)
        self.pre_norm = nn.Identity()  # a hook point (stylegan.analysis: droplets); no parameters

    def forward(
        self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random", fused_modconv: bool = True,
        gain: float = 1.0,
    ) -> torch.Tensor:
        styles = float32_styles(self.affine, w)
        x = modulated_conv2d(x, self.weight, styles, up=self.up, demodulate=False,
                             resample_filter=self.resample_filter, fused=fused_modconv)
        x = std_norm(self.pre_norm(x))
        noise = self.noise(x, noise_mode)
        if noise is not None:
            x = x + noise.to(x.dtype)
        return self.activate(x, gain)


class AdaINLayer(_StyleLayer):
    """AdaIN (Fig. 2a's op) in StyleGAN2's layout: conv -> noise -> bias -> lrelu -> instance norm -> ``y_s * x + y_b``.
    For StyleGAN1's own wiring (styled constant, per-channel noise, unstyled ToRGB) see stylegan1.py.

    The affine maps w to a scale (bias init 1) and a shift (bias init 0) per output channel.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        kernel_size: int = 3,
        up: int = 1,
        use_noise: bool = True,
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__(in_channels, out_channels, resolution, kernel_size, up, use_noise, conv_clamp)
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)
        self.affine = FullyConnectedLayer(w_dim, 2 * out_channels, bias_init=1)
        with torch.no_grad():
            self.affine.bias[out_channels:] = 0
        self.pre_norm = nn.Identity()  # a hook point (stylegan.analysis: droplets); no parameters

    def forward(
        self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random", fused_modconv: bool = True,
        gain: float = 1.0,
    ) -> torch.Tensor:
        weight = self.weight.to(x.dtype) * self.weight_gain
        if self.up == 2:
            x = conv_up2(x, weight, self.resample_filter)
        else:
            x = F.conv2d(x, weight, padding=weight.shape[-1] // 2)
        noise = self.noise(x, noise_mode)
        if noise is not None:
            x = x + noise.to(x.dtype)
        x = instance_norm(self.pre_norm(self.activate(x, 1.0)))
        scale, shift = float32_styles(self.affine, w).to(x.dtype).chunk(2, dim=1)
        x = x * scale[:, :, None, None] + shift[:, :, None, None]
        return x * gain if gain != 1 else x


class ToRGBLayer(nn.Module):
    """1x1 modulated conv to image channels, not demodulated; 1/sqrt(fan_in) folded into the styles."""

    def __init__(
        self, in_channels: int, out_channels: int, w_dim: int, conv_clamp: float | None = None
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.conv_clamp = in_channels, out_channels, conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, 1, 1]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused_modconv: bool = True) -> torch.Tensor:
        styles = float32_styles(self.affine, w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused=fused_modconv, bias=self.bias)
        return bias_act(x, clamp=self.conv_clamp)


def make_style_layer(style_block: str, **kwargs) -> nn.Module:
    """Build the synthesis conv layer for ``style_block`` (one of STYLE_BLOCKS)."""
    if style_block == "demod":
        return SynthesisLayer(demodulate=True, **kwargs)
    if style_block == "modulate":
        return SynthesisLayer(demodulate=False, **kwargs)
    if style_block == "revised":
        return RevisedLayer(**kwargs)
    if style_block == "adain":
        return AdaINLayer(**kwargs)
    if style_block == "stylegan1":
        raise ValueError("style_block 'stylegan1' is a whole block layout (stylegan1.StyleGAN1Block), not a layer")
    raise ValueError(f"unknown style_block {style_block!r}; expected one of {STYLE_BLOCKS}")
