"""Synthesis network g: W+ -> image (StyleGAN2 Sec. 4, Fig. 7 and Table 2).

From a learned 4x4 constant, one block per resolution 4, 8, ..., R. Generator architectures (Fig. 7):
- ``orig``:   conv0 (up) -> conv1, ToRGB at the last block only (the StyleGAN1 layout without progressive growing).
- ``skip``:   every block has a ToRGB; images are up-sampled and summed (Fig. 7b, StyleGAN2's default G).
- ``resnet``: residual blocks, y = (skip(x) + conv1(conv0(x))) / sqrt(2); ToRGB at the last block only.

``style_block='stylegan1'`` swaps the whole block for StyleGAN1's (stylegan1.StyleGAN1Block, Fig. 2a: two styles
per resolution, none on ToRGB); every other style block swaps only the conv layers (style_blocks.py).

``progressive=True`` ('orig' only): a ToRGB at every block, and the output at the level of detail ``self.lod``
(progressive growing, progressive.py; lod 0 is the network without it, bit for bit).
"""

from __future__ import annotations

import torch
from torch import nn

from ..utils.checks import check_resolution
from .layers import SQRT_HALF, Conv2dLayer, channels_last
from .progressive import fade, split_lod, upsample_nearest
from .resample import setup_filter, upsample2d
from .style_blocks import STYLE_BLOCKS, ToRGBLayer, make_style_layer
from .stylegan1 import StyleGAN1Block

ARCHITECTURES = ("orig", "skip", "resnet")
FUSED_MODES = (True, False, "inference_only")
OUTPUT_ACTIVATIONS = ("linear", "tanh")


def check_at_least(minimum: int, **values: int | None) -> None:
    """Each named integer kwarg must be >= ``minimum`` (None is allowed: it means the default)."""
    for key, value in values.items():
        if value is not None and (isinstance(value, bool) or int(value) != value or value < minimum):
            raise ValueError(f"{key} must be an integer >= {minimum}, got {value!r}")


def check_architecture(architecture: str, what: str) -> None:
    if architecture not in ARCHITECTURES:
        raise ValueError(f"{what} architecture {architecture!r} is not one of {ARCHITECTURES}")


def channels_per_resolution(resolution: int, channel_base: int, channel_max: int) -> dict[int, int]:
    """``min(channel_base // res, channel_max)`` for res = 4 .. resolution (the official channel schedule)."""
    res = [2**i for i in range(2, resolution.bit_length())]
    channels = {r: min(channel_base // r, channel_max) for r in res}
    if min(channels.values()) < 1:
        raise ValueError(f"channel_base={channel_base} gives 0 channels at resolution {resolution} "
                         f"(channel_base // res); use channel_base >= {resolution}")
    return channels


class SynthesisBlock(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        img_channels: int,
        is_last: bool,
        architecture: str = "skip",
        style_block: str = "demod",
        conv_clamp: float | None = None,
        use_noise: bool = True,
        progressive: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels, self.resolution, self.is_last = in_channels, resolution, is_last
        self.architecture = architecture
        self.register_buffer("resample_filter", setup_filter())
        layer = dict(w_dim=w_dim, resolution=resolution, use_noise=use_noise, conv_clamp=conv_clamp)
        self.num_conv = self.num_torgb = 0
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = make_style_layer(style_block, in_channels=in_channels, out_channels=out_channels,
                                          up=2, **layer)
            self.num_conv += 1
        self.conv1 = make_style_layer(style_block, in_channels=out_channels, out_channels=out_channels, **layer)
        self.num_conv += 1
        if is_last or architecture == "skip" or progressive:
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp)
            self.num_torgb += 1
        if in_channels != 0 and architecture == "resnet":
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
        """``rgb=False``: skip the ToRGB (a progressive G's blocks below the current level of detail)."""
        w = iter(ws.unbind(dim=1))
        kw = dict(noise_mode=noise_mode, fused_modconv=fused_modconv)
        if self.in_channels == 0:
            x = channels_last(self.const.unsqueeze(0).repeat([ws.shape[0], 1, 1, 1]))
            x = self.conv1(x, next(w), **kw)
        elif self.architecture == "resnet":
            y = self.skip(x, gain=SQRT_HALF)
            x = self.conv0(x, next(w), **kw)
            x = self.conv1(x, next(w), gain=SQRT_HALF, **kw)
            x = y + x
        else:
            x = self.conv0(x, next(w), **kw)
            x = self.conv1(x, next(w), **kw)
        if img is not None:
            img = upsample2d(img, self.resample_filter)
        if self.num_torgb and rgb:
            y = self.torgb(x, next(w), fused_modconv=fused_modconv)
            img = y if img is None else img + y
        return x, img


class SynthesisNetwork(nn.Module):
    def __init__(
        self,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        channel_base: int = 32768,
        channel_max: int = 512,
        architecture: str = "skip",
        style_block: str = "demod",
        conv_clamp: float | None = 256,
        use_noise: bool = True,
        fused_modconv_default: bool | str = "inference_only",
        output_activation: str = "linear",
        progressive: bool = False,
    ) -> None:
        """``fused_modconv_default``: True, False or 'inference_only' (grouped conv in eval mode only, as the
        official training config). ``output_activation``: 'linear' (the paper's and official G: the summed ToRGB
        outputs as they are) or 'tanh' (squashed into (-1, 1), as DCGAN; not in the paper, and such a G cannot
        be exported to the official format). tanh lets G reach a flat black background, which matters on data
        that is mostly exact -1 (MNIST): see conf/experiment/mnist_demo.yaml."""
        super().__init__()
        if output_activation not in OUTPUT_ACTIVATIONS:
            raise ValueError(f"output_activation must be one of {OUTPUT_ACTIVATIONS}, got {output_activation!r}")
        self.output_activation = output_activation
        if fused_modconv_default not in FUSED_MODES:
            raise ValueError(f"fused_modconv_default must be one of {FUSED_MODES}, got {fused_modconv_default!r}")
        self.fused_modconv_default = fused_modconv_default
        check_resolution(img_resolution, "img_resolution")
        check_architecture(architecture, "generator")
        if progressive and architecture != "orig":
            raise ValueError(f"progressive growing needs the 'orig' generator architecture, got {architecture!r}")
        self.progressive, self.lod = progressive, 0.0
        if style_block not in STYLE_BLOCKS:
            raise ValueError(f"unknown style_block {style_block!r}; expected one of {STYLE_BLOCKS}")
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.architecture, self.style_block = architecture, style_block
        channels = channels_per_resolution(img_resolution, channel_base, channel_max)
        self.block_resolutions = list(channels)
        self.num_ws = 0
        for res in self.block_resolutions:
            args = (channels[res // 2] if res > 4 else 0, channels[res], w_dim, res, img_channels)
            kw = dict(is_last=res == img_resolution, architecture=architecture, use_noise=use_noise,
                      progressive=progressive)
            if style_block == "stylegan1":
                block = StyleGAN1Block(*args, **kw)
            else:
                block = SynthesisBlock(*args, style_block=style_block, conv_clamp=conv_clamp, **kw)
            self.num_ws += block.num_conv + (block.num_torgb if block.is_last else 0)
            setattr(self, f"b{res}", block)

    def forward(
        self, ws: torch.Tensor, noise_mode: str = "random", fused_modconv: bool | None = None
    ) -> torch.Tensor:
        if fused_modconv is None:
            fused = self.fused_modconv_default
            fused_modconv = (not self.training) if fused == "inference_only" else bool(fused)
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"synthesis expects ws of shape [N, {self.num_ws}, {self.w_dim}], got {tuple(ws.shape)}")
        if self.progressive:
            img = self.synthesize_at(ws, *split_lod(self.lod, self.img_resolution), noise_mode, fused_modconv)
            return torch.tanh(img) if self.output_activation == "tanh" else img
        x = img = None
        w_idx = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            x, img = block(x, img, ws.narrow(1, w_idx, block.num_conv + block.num_torgb), noise_mode, fused_modconv)
            w_idx += block.num_conv
        img = img.contiguous()  # NCHW out, whatever the layout inside
        return torch.tanh(img) if self.output_activation == "tanh" else img

    def synthesize_at(self, ws: torch.Tensor, level: int, t: float, noise_mode: str = "random",
                      fused_modconv: bool = True) -> torch.Tensor:
        """The image at resolution R >> level (the blocks above it skipped), faded by t towards the ToRGB of the
        resolution below (nearest 2x), then nearest-upsampled to R x R."""
        cur = self.img_resolution >> level
        x = img = prev = None
        w_idx = 0
        for res in self.block_resolutions:
            if res > cur:
                break
            block = getattr(self, f"b{res}")
            rgb = res == cur or (t > 0 and res == cur // 2)
            x, img = block(x, None, ws.narrow(1, w_idx, block.num_conv + block.num_torgb), noise_mode,
                           fused_modconv, rgb=rgb)
            w_idx += block.num_conv
            if res == cur // 2:
                prev = img
        img = fade(img, None if prev is None else upsample_nearest(prev, 2), t)
        return upsample_nearest(img, 1 << level).contiguous()

    def extra_repr(self) -> str:
        return (f"res={self.img_resolution}, arch={self.architecture}, style={self.style_block}, "
                f"num_ws={self.num_ws}, output={self.output_activation}")
