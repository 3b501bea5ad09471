"""Mapping network f: Z -> W (StyleGAN Sec. 2, Fig. 1b), with the truncation trick (StyleGAN Sec. 3.3).

An MLP with lr multiplier 0.01; z (and the class embedding, if any) are pixel-normalised first. ``w_avg`` is an
EMA of W, updated only when asked (``update_emas=True``, the official D-main pass) and used as the truncation
centre: ``w' = w_avg + psi * (w - w_avg)`` on the first ``truncation_cutoff`` ws.

Labels (``label_embedding``): ``embed`` (official PyTorch code) normalises z and an equalized-lr FC embedding of c
apart and concatenates them; ``concat`` (the official TF StyleGAN and StyleGAN2 code, 'LabelConcat') concatenates z
with ``c @ E`` (E a plain [c_dim, z_dim] matrix drawn from N(0, 1), trained at the full learning rate) and
normalises the two together.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import FullyConnectedLayer, normalize_2nd_moment


class MappingNetwork(nn.Module):
    """``z_dim=0`` gives the label-only mapping of the conditional discriminator (no w_avg, no broadcast)."""

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        num_ws: int | None,
        num_layers: int = 8,
        embed_features: int | None = None,
        layer_features: int | None = None,
        activation: str = "lrelu",
        lr_multiplier: float = 0.01,
        w_avg_beta: float | None = 0.998,
        label_embedding: str = "embed",
    ) -> None:
        super().__init__()
        if label_embedding not in ("embed", "concat"):
            raise ValueError(f"label_embedding must be 'embed' or 'concat', got {label_embedding!r}")
        if label_embedding == "concat" and (z_dim == 0 or embed_features is not None):
            raise ValueError("label_embedding='concat' embeds labels in z's space: it needs z_dim > 0 and no "
                             "embed_features")
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.num_layers, self.w_avg_beta = num_layers, w_avg_beta
        self.label_embedding = label_embedding
        if c_dim == 0:
            embed_features = 0
        elif embed_features is None:
            embed_features = z_dim if label_embedding == "concat" else w_dim
        layer_features = w_dim if layer_features is None else layer_features
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        if c_dim > 0 and label_embedding == "concat":
            self.label_concat = nn.Parameter(torch.randn([c_dim, embed_features]))
        elif c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for i in range(num_layers):
            fc = FullyConnectedLayer(features[i], features[i + 1], activation=activation, lr_multiplier=lr_multiplier)
            setattr(self, f"fc{i}", fc)
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(
        self,
        z: torch.Tensor | None,
        c: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        update_emas: bool = False,
    ) -> torch.Tensor:
        x = None
        # float32 normally (as the official code); float64 for .double() tests. The first parameter, not fc0: a
        # label mapping may have no layer (num_layers=0, StyleGAN2-ADA TF conditional D: embed, normalize)
        dtype = next(self.parameters(), torch.empty(0)).dtype
        if self.c_dim > 0 and (c is None or c.ndim != 2 or c.shape[1] != self.c_dim):
            got = None if c is None else tuple(c.shape)
            raise ValueError(f"mapping expects labels c of shape [N, {self.c_dim}], got {got}")
        if self.c_dim > 0 and self.label_embedding == "concat":
            x = normalize_2nd_moment(torch.cat([z.to(dtype), c.to(dtype) @ self.label_concat], dim=1))
        else:
            if self.z_dim > 0:
                x = normalize_2nd_moment(z.to(dtype))
            if self.c_dim > 0:
                y = normalize_2nd_moment(self.embed(c.to(dtype)))
                x = y if x is None else torch.cat([x, y], dim=1)
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        if update_emas and self.w_avg_beta is not None:
            # in w_avg's dtype: under bf16 autocast the FC outputs are bf16, the running mean stays float32
            self.w_avg.copy_(x.detach().to(self.w_avg.dtype).mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat([1, self.num_ws, 1])
        if truncation_psi != 1:
            if self.w_avg_beta is None:
                raise ValueError("truncation needs a tracked w_avg (w_avg_beta is None)")
            x = x.to(self.w_avg.dtype)
            if self.num_ws is None or truncation_cutoff is None:
                x = self.w_avg.lerp(x, truncation_psi)
            else:
                x = x.clone()
                x[:, :truncation_cutoff] = self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
        return x

    def extra_repr(self) -> str:
        return f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}"
