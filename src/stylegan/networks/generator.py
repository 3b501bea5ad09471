"""StyleGAN2 generator: mapping network + synthesis network (StyleGAN Fig. 1b, StyleGAN2 Fig. 2d / Fig. 7).

The API matches the official code so that StyleGAN users feel at home::

    ws  = G.mapping(z, c, truncation_psi=1, truncation_cutoff=None)   # [N, G.num_ws, G.w_dim]
    img = G.synthesis(ws, noise_mode='random' | 'const' | 'none')     # [N, C, R, R], nominal range [-1, 1]
    img = G(z, c, truncation_psi, truncation_cutoff, noise_mode)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .kwargs import recorded_kwargs
from .mapping import MappingNetwork
from .synthesis import SynthesisNetwork, check_at_least


class Generator(nn.Module):
    def __init__(
        self,
        z_dim: int = 512,
        c_dim: int = 0,
        w_dim: int = 512,
        img_resolution: int = 256,
        img_channels: int = 3,
        channel_base: int = 32768,
        channel_max: int = 512,
        architecture: str = "skip",
        style_block: str = "demod",
        conv_clamp: float | None = 256,
        use_noise: bool = True,
        fused_modconv_default: bool | str = "inference_only",
        mapping_kwargs: dict[str, Any] | None = None,
        output_activation: str = "linear",
        progressive: bool = False,
    ) -> None:
        """``style_block``: demod | modulate | revised | adain (style_blocks.py) or stylegan1 (StyleGAN1's own
        network, stylegan1.py). ``fused_modconv_default`` and ``output_activation``: see SynthesisNetwork.
        ``progressive``: a ToRGB per resolution and ``synthesis.lod`` (progressive growing; networks/progressive.py).
        ``mapping_kwargs``: num_layers (8), lr_multiplier (0.01), w_avg_beta (0.998), embed_features, layer_features,
        label_embedding (embed | concat: mapping.py)."""
        super().__init__()
        mapping_kwargs = dict(mapping_kwargs or {})
        official_mapping = {k: v for k, v in mapping_kwargs.items() if k != "label_embedding"}
        embedding = {"label_embedding": (mapping_kwargs.get("label_embedding", "embed"), "embed")}
        self.init_kwargs = recorded_kwargs(  # networks/kwargs.py: the official kwargs, extensions when not default
            dict(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels,
                 channel_base=channel_base, channel_max=channel_max, architecture=architecture,
                 style_block=style_block, conv_clamp=conv_clamp, use_noise=use_noise,
                 fused_modconv_default=fused_modconv_default,
                 mapping_kwargs=recorded_kwargs(official_mapping, embedding)),
            {"output_activation": (output_activation, "linear"), "progressive": (progressive, False)},
        )
        check_at_least(1, z_dim=z_dim, w_dim=w_dim, img_channels=img_channels, channel_base=channel_base,
                       channel_max=channel_max, mapping_num_layers=mapping_kwargs.get("num_layers"))
        check_at_least(0, c_dim=c_dim)
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.synthesis = SynthesisNetwork(
            w_dim, img_resolution, img_channels, channel_base=channel_base, channel_max=channel_max,
            architecture=architecture, style_block=style_block, conv_clamp=conv_clamp, use_noise=use_noise,
            fused_modconv_default=fused_modconv_default, output_activation=output_activation,
            progressive=progressive,
        )
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, c_dim, w_dim, num_ws=self.num_ws, **mapping_kwargs)

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: str = "random",
        update_emas: bool = False,
        fused_modconv: bool | None = None,
    ) -> torch.Tensor:
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                          update_emas=update_emas)
        return self.synthesis(ws, noise_mode=noise_mode, fused_modconv=fused_modconv)
