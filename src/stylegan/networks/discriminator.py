"""StyleGAN2 discriminator (StyleGAN2 Sec. 4, Fig. 7 and Table 2).

One block per resolution R, R/2, ..., 8, then the 4x4 epilogue (minibatch stddev, conv, fc, out).
Architectures (Fig. 7):
- ``orig``:   FromRGB at the input only, conv0 -> conv1 (down).
- ``skip``:   FromRGB at every resolution from a down-sampled image (Fig. 7b).
- ``resnet``: residual blocks, (skip(x) + conv1(conv0(x))) / sqrt(2) (Fig. 7c, StyleGAN2's default D).
``progressive=True`` ('orig' only): a FromRGB at every resolution, and D at the level of detail ``self.lod``
(progressive growing, progressive.py; lod 0 is the network without it, bit for bit).
``downsampling='blur_pool'`` ('orig' only): StyleGAN1's D (D_basic): each block's down-sampling conv blurs with
[1,2,1], convolves and averages 2x2, where StyleGAN2's filters with [1,3,3,1] and convolves with stride 2.
Conditional (``c_dim > 0``), ``label_conditioning``:
- ``projection`` (official PyTorch code): the output is ``<out(x), cmap(c)> / sqrt(cmap_dim)``, cmap a label mapping.
- ``switch`` (the official TF StyleGAN and StyleGAN2 code, configs A-F; Mescheder et al. 2018): ``out`` has one
  logit per class and the output is ``<out(x), c>``, the logit of the sample's class.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .kwargs import recorded_kwargs
from .layers import SQRT_HALF, Conv2dLayer, FullyConnectedLayer, channels_last
from .mapping import MappingNetwork
from .progressive import downsample_box, fade, split_lod
from .resample import downsample2d, setup_filter
from .synthesis import channels_per_resolution, check_architecture, check_at_least, check_resolution


class MinibatchStdLayer(nn.Module):
    """Minibatch standard deviation (Karras 2018 Sec. 3) over groups of ``group_size`` samples.

    Sample i belongs to group i % (N // G) (strided, as the official code); the std is averaged over
    channels (split into ``num_channels`` parts) and pixels and appended as extra feature maps.
    """

    def __init__(self, group_size: int | None, num_channels: int = 1) -> None:
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        N, C, H, W = x.shape
        G = min(self.group_size, N) if self.group_size is not None else N
        F = self.num_channels
        if N % G:
            raise ValueError(f"minibatch stddev: batch size {N} is not divisible by group size {G}")
        y = x.reshape(G, -1, F, C // F, H, W)
        y = y - y.mean(dim=0)
        y = (y.square().mean(dim=0) + 1e-8).sqrt()  # [N/G, F, C/F, H, W]
        y = y.mean(dim=[2, 3, 4]).reshape(-1, F, 1, 1).repeat(G, 1, H, W)
        return torch.cat([x, y], dim=1)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels}"


class DiscriminatorBlock(nn.Module):
    def __init__(
        self,
        in_channels: int,
        tmp_channels: int,
        out_channels: int,
        img_channels: int,
        architecture: str = "resnet",
        conv_clamp: float | None = None,
        progressive: bool = False,
        downsampling: str = "fir",
    ) -> None:
        super().__init__()
        self.in_channels, self.architecture = in_channels, architecture
        self.register_buffer("resample_filter", setup_filter())
        if in_channels == 0 or architecture == "skip" or progressive:
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, 1, activation="lrelu", conv_clamp=conv_clamp)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, 3, activation="lrelu", conv_clamp=conv_clamp)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, 3, activation="lrelu", down=2, conv_clamp=conv_clamp,
                                 downsampling=downsampling)
        if architecture == "resnet":
            self.skip = Conv2dLayer(tmp_channels, out_channels, 1, bias=False, down=2)

    def forward(
        self, x: torch.Tensor | None, img: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.in_channels == 0 or self.architecture == "skip":
            y = self.fromrgb(img)
            x = y if x is None else x + y
            img = downsample2d(img, self.resample_filter) if self.architecture == "skip" else None
        if self.architecture == "resnet":
            y = self.skip(x, gain=SQRT_HALF)
            x = self.conv0(x)
            x = self.conv1(x, gain=SQRT_HALF)
            return y + x, img
        return self.conv1(self.conv0(x)), img


class DiscriminatorEpilogue(nn.Module):
    """4x4 head: [skip: + fromrgb(img)] -> mbstd -> conv 3x3 -> fc -> out (1 logit, or cmap_dim, projected on
    ``cmap``: scaled by 1/sqrt(cmap_dim) for the projection D, not for the label switch)."""

    def __init__(
        self,
        in_channels: int,
        cmap_dim: int,
        img_channels: int,
        architecture: str = "resnet",
        mbstd_group_size: int | None = 4,
        mbstd_num_channels: int = 1,
        conv_clamp: float | None = None,
        progressive: bool = False,
        projection: bool = True,
    ) -> None:
        super().__init__()
        self.architecture, self.cmap_dim = architecture, cmap_dim
        self.cmap_scale = 1 / cmap_dim**0.5 if projection and cmap_dim > 0 else 1.0
        if architecture == "skip" or progressive:
            self.fromrgb = Conv2dLayer(img_channels, in_channels, 1, activation="lrelu")
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels > 0 else None
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, 3, activation="lrelu",
                                conv_clamp=conv_clamp)
        self.fc = FullyConnectedLayer(in_channels * 16, in_channels, activation="lrelu")
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(self, x: torch.Tensor, img: torch.Tensor | None, cmap: torch.Tensor | None) -> torch.Tensor:
        if self.architecture == "skip":
            x = x + self.fromrgb(img)
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.conv(x)
        x = self.out(self.fc(x.flatten(1)))
        if self.cmap_dim > 0:
            x = (x * cmap).sum(dim=1, keepdim=True) * self.cmap_scale
        return x


def _check_arguments(kw: dict[str, Any], progressive: bool, downsampling: str, label_conditioning: str) -> None:
    """The Discriminator's arguments that cannot work together: ValueError naming them."""
    architecture = kw["architecture"]
    if label_conditioning not in ("projection", "switch"):
        raise ValueError(f"label_conditioning must be 'projection' or 'switch', got {label_conditioning!r}")
    if label_conditioning == "switch" and (kw["cmap_dim"] is not None or kw["mapping_kwargs"]):
        raise ValueError("label_conditioning='switch' has no label mapping: leave cmap_dim and mapping_kwargs "
                         "unset")
    check_resolution(kw["img_resolution"], "img_resolution")
    check_architecture(architecture, "discriminator")
    if downsampling != "fir" and architecture != "orig":
        raise ValueError(f"downsampling={downsampling!r} (StyleGAN1's D) needs the 'orig' discriminator "
                         f"architecture, got {architecture!r}")
    if progressive and architecture != "orig":
        raise ValueError(f"progressive growing needs the 'orig' discriminator architecture, got {architecture!r}")
    check_at_least(1, img_channels=kw["img_channels"], channel_base=kw["channel_base"],
                   channel_max=kw["channel_max"], mbstd_group_size=kw["mbstd_group_size"])
    check_at_least(0, c_dim=kw["c_dim"], mbstd_num_channels=kw["mbstd_num_channels"])


class Discriminator(nn.Module):
    """``D(img, c) -> logits [N, 1]``. ``mapping_kwargs`` configure the label mapping of a conditional D."""

    def __init__(
        self,
        c_dim: int = 0,
        img_resolution: int = 256,
        img_channels: int = 3,
        channel_base: int = 32768,
        channel_max: int = 512,
        architecture: str = "resnet",
        conv_clamp: float | None = 256,
        cmap_dim: int | None = None,
        mbstd_group_size: int | None = 4,
        mbstd_num_channels: int = 1,
        mapping_kwargs: dict[str, Any] | None = None,
        progressive: bool = False,
        downsampling: str = "fir",
        label_conditioning: str = "projection",
    ) -> None:
        super().__init__()
        self.init_kwargs = recorded_kwargs(  # networks/kwargs.py: the official kwargs, extensions when not default
            dict(c_dim=c_dim, img_resolution=img_resolution, img_channels=img_channels, channel_base=channel_base,
                 channel_max=channel_max, architecture=architecture, conv_clamp=conv_clamp, cmap_dim=cmap_dim,
                 mbstd_group_size=mbstd_group_size, mbstd_num_channels=mbstd_num_channels,
                 mapping_kwargs=dict(mapping_kwargs or {})),
            {"progressive": (progressive, False), "downsampling": (downsampling, "fir"),
             "label_conditioning": (label_conditioning, "projection")},
        )
        _check_arguments(self.init_kwargs, progressive, downsampling, label_conditioning)
        self.progressive, self.lod = progressive, 0.0
        self.c_dim, self.img_resolution, self.img_channels = c_dim, img_resolution, img_channels
        self.architecture, self.label_conditioning = architecture, label_conditioning
        channels = channels_per_resolution(img_resolution, channel_base, channel_max)
        self.block_resolutions = [r for r in reversed(channels) if r > 4]
        if c_dim == 0:
            cmap_dim = 0
        elif label_conditioning == "switch":
            cmap_dim = c_dim
        elif cmap_dim is None:
            cmap_dim = channels[4]
        self.cmap_dim = cmap_dim
        for res in self.block_resolutions:
            in_channels = channels[res] if res < img_resolution else 0
            block = DiscriminatorBlock(in_channels, channels[res], channels[res // 2], img_channels,
                                       architecture=architecture, conv_clamp=conv_clamp, progressive=progressive,
                                       downsampling=downsampling)
            setattr(self, f"b{res}", block)
        if c_dim > 0 and label_conditioning == "projection":
            self.mapping = MappingNetwork(0, c_dim, cmap_dim, num_ws=None, w_avg_beta=None,
                                          **dict(mapping_kwargs or {}))
        self.b4 = DiscriminatorEpilogue(channels[4], cmap_dim, img_channels, architecture=architecture,
                                        mbstd_group_size=mbstd_group_size, mbstd_num_channels=mbstd_num_channels,
                                        conv_clamp=conv_clamp, progressive=progressive,
                                        projection=label_conditioning == "projection")

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        expected = (self.img_channels, self.img_resolution, self.img_resolution)
        if img.ndim != 4 or tuple(img.shape[1:]) != expected:
            raise ValueError(f"discriminator expects images of shape [N, {', '.join(map(str, expected))}], "
                             f"got {tuple(img.shape)}")
        img = channels_last(img)
        if self.progressive:
            x, img = self.features_at(img, *split_lod(self.lod, self.img_resolution)), None
        else:
            x = None
            for res in self.block_resolutions:
                x, img = getattr(self, f"b{res}")(x, img)
        return self.b4(x, img, self.label_map(c) if self.c_dim > 0 else None)

    def label_map(self, c: torch.Tensor | None) -> torch.Tensor:
        """What the epilogue's output is projected on: the label mapping's cmap, or the labels themselves."""
        if self.label_conditioning == "projection":
            return self.mapping(None, c)
        if c is None or c.ndim != 2 or c.shape[1] != self.c_dim:
            raise ValueError(f"discriminator expects labels c of shape [N, {self.c_dim}], "
                             f"got {None if c is None else tuple(c.shape)}")
        return c.to(self.b4.out.weight.dtype)

    def features_at(self, img: torch.Tensor, level: int, t: float) -> torch.Tensor:
        """The 4x4 features at resolution R >> level: the image box-downsampled there, FromRGB, the blocks from
        there down; the current block's output faded by t towards the FromRGB of the 2x coarser image."""
        cur = self.img_resolution >> level

        def fromrgb(res: int) -> torch.Tensor:
            layer = self.b4.fromrgb if res == 4 else getattr(self, f"b{res}").fromrgb
            return layer(downsample_box(img, self.img_resolution // res))

        x = fromrgb(cur)
        for res in self.block_resolutions:
            if res <= cur:
                block = getattr(self, f"b{res}")
                x = block.conv1(block.conv0(x))
                if res == cur and t > 0:
                    x = fade(x, fromrgb(res // 2), t)
        return x

    def extra_repr(self) -> str:
        extra = f", labels={self.label_conditioning}" if self.c_dim else ""
        return f"res={self.img_resolution}, arch={self.architecture}, c_dim={self.c_dim}{extra}"
