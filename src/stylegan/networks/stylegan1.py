"""The StyleGAN1 synthesis network as published (StyleGAN2 paper Fig. 2a-b; Karras et al. 2019, Fig. 1b),
``style_block='stylegan1'``: Table 1's config A.

Per resolution two layers, each ending in the same *epilogue* (Fig. 2b):
``x + B * noise`` (per-channel learned scale B, init 0) -> ``+ b`` -> lrelu -> instance norm (mean and std per
feature map) -> ``y_s * x + y_b`` (AdaIN's style scale and bias from the affine A). At 4x4 the first layer is the
epilogue applied to the learned constant (init ones), the second a 3x3 conv; above, an up-sampling 3x3 conv and a
3x3 conv. So there are two styles per resolution, 2 * log2(R) - 2 ws (18 at 1024). ToRGB is a plain 1x1 conv
with bias and no style.

Details as in NVlabs/stylegan ``G_synthesis``: He-gain sqrt(2) in the conv weights (the activation has no gain),
up-sampling = nearest 2x then the 3x3 conv, then a [1, 2, 1] blur. (From 128 px up the official code fuses the
first two into a stride-2 transposed conv with the 4x4 sum of the shifted kernel: the same maps up to a spatial flip
of the learned kernel, which the randn init does not see.) Not applied: ``conv_clamp`` (StyleGAN1 has none; the instance
norm bounds every activation anyway) and ``fused_modconv`` (nothing is modulated). The 'orig' architecture (ToRGB
at the last block) is the published network without progressive growing; 'skip' and 'resnet' wrap the same layers
in StyleGAN2's Fig. 7 layouts (unstyled ToRGBs summed with FIR up-sampling; a 1x1 up-sampling skip conv).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .layers import SQRT2, SQRT_HALF, Conv2dLayer, FullyConnectedLayer, channels_last
from .modulation import float32_styles, instance_norm, no_autocast
from .resample import filter2d, setup_filter, upsample2d
from .style_blocks import NOISE_MODES


def upsample_nearest2d(x: torch.Tensor) -> torch.Tensor:
    """Each pixel repeated 2x2 (the official ``upscale2d``)."""
    return x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)


class StyleGAN1Layer(nn.Module):
    """[conv] -> noise (per channel) -> bias -> lrelu -> instance norm -> AdaIN style (Fig. 2b, one gray box).

    ``in_channels=0``: no conv (the epilogue of the constant input). ``up=2``: nearest 2x, conv, [1,2,1] blur.
    """

    def __init__(
        self, in_channels: int, out_channels: int, w_dim: int, resolution: int, up: int = 1, use_noise: bool = True
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.resolution = in_channels, out_channels, resolution
        self.up, self.use_noise = up, use_noise
        if in_channels:
            self.weight = nn.Parameter(torch.randn([out_channels, in_channels, 3, 3]))
            self.weight_gain = SQRT2 / math.sqrt(in_channels * 9)
            if up == 2:
                self.register_buffer("blur_filter", setup_filter((1, 2, 1)))
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = nn.Parameter(torch.zeros([out_channels]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.affine = FullyConnectedLayer(w_dim, 2 * out_channels, bias_init=1)  # [scale (init 1), shift (init 0)]
        with torch.no_grad():
            self.affine.bias[out_channels:] = 0
        self.pre_norm = nn.Identity()  # a hook point (stylegan.analysis: droplets); no parameters

    def conv(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight.to(x.dtype) * self.weight_gain
        if self.up == 2:
            x = F.conv2d(upsample_nearest2d(x), weight, padding=1)
            return filter2d(x, self.blur_filter, pad=1)
        return F.conv2d(x, weight, padding=1)

    def forward(
        self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random", fused_modconv: bool = True,
        gain: float = 1.0,
    ) -> torch.Tensor:
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        if self.in_channels:
            x = self.conv(x)
        if self.use_noise and noise_mode != "none":
            if noise_mode == "random":
                noise = torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device)
            else:
                noise = self.noise_const[None, None]
            x = x + noise.to(x.dtype) * self.noise_strength.to(x.dtype)[None, :, None, None]
        x = F.leaky_relu(x + self.bias.to(x.dtype)[None, :, None, None], 0.2)
        with no_autocast(x.device.type):  # the statistics in at least float32, as the official instance_norm
            dtype = torch.promote_types(x.dtype, torch.float32)
            x = instance_norm(self.pre_norm(x.to(dtype)))
            scale, shift = float32_styles(self.affine, w).to(dtype).chunk(2, dim=1)
            x = x * scale[:, :, None, None] + shift[:, :, None, None]
        x = x * gain if gain != 1 else x
        return x

    def extra_repr(self) -> str:
        return f"in={self.in_channels}, out={self.out_channels}, res={self.resolution}, up={self.up}"


class StyleGAN1Block(nn.Module):
    """One resolution of Fig. 2a: (constant + epilogue | up-conv) -> conv, each with its own style.

    Same interface as ``synthesis.SynthesisBlock``: ``num_conv`` ws (always 2) and ``num_torgb`` (0: ToRGB has
    no style); ``forward(x, img, ws) -> (x, img)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        img_channels: int,
        is_last: bool,
        architecture: str = "orig",
        use_noise: bool = True,
        progressive: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels, self.resolution, self.is_last = in_channels, resolution, is_last
        self.architecture = architecture
        layer = dict(w_dim=w_dim, resolution=resolution, use_noise=use_noise)
        if in_channels == 0:
            self.const = nn.Parameter(torch.ones([out_channels, resolution, resolution]))
            self.const_style = StyleGAN1Layer(0, out_channels, **layer)
        else:
            self.conv0 = StyleGAN1Layer(in_channels, out_channels, up=2, **layer)
        self.conv1 = StyleGAN1Layer(out_channels, out_channels, **layer)
        self.num_conv, self.num_torgb = 2, 0
        self.has_torgb = is_last or architecture == "skip" or progressive
        if self.has_torgb:
            self.torgb = Conv2dLayer(out_channels, img_channels, kernel_size=1)
        if architecture == "skip" and in_channels != 0:
            self.register_buffer("resample_filter", setup_filter())
        if architecture == "resnet" and in_channels != 0:
            self.skip = Conv2dLayer(in_channels, out_channels, kernel_size=1, bias=False, up=2)

    def forward(
        self,
        x: torch.Tensor | None,
        img: torch.Tensor | None,
        ws: torch.Tensor,
        noise_mode: str = "random",
        fused_modconv: bool = True,
        rgb: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        w0, w1 = ws.unbind(dim=1)
        if self.in_channels == 0:
            x = channels_last(self.const.unsqueeze(0).repeat([ws.shape[0], 1, 1, 1]))
            x = self.conv1(self.const_style(x, w0, noise_mode), w1, noise_mode)
        elif self.architecture == "resnet":
            y = self.skip(x, gain=SQRT_HALF)
            x = y + self.conv1(self.conv0(x, w0, noise_mode), w1, noise_mode, gain=SQRT_HALF)
        else:
            x = self.conv1(self.conv0(x, w0, noise_mode), w1, noise_mode)
        if self.has_torgb and rgb:
            y = self.torgb(x)
            img = y if img is None else upsample2d(img, self.resample_filter) + y
        return x, img
