"""AdaIN style block (style_blocks.AdaINLayer, StyleGAN1 Fig. 2a) and modulation.instance_norm, in float64."""

from __future__ import annotations

import math

import pytest
import torch

from naive_ops import DT, assert_rel_close, conv2d_ref, conv_up2_ref, fir_taps, lrelu
from stylegan.networks import style_blocks
from stylegan.networks.modulation import instance_norm
from stylegan.networks.style_blocks import AdaINLayer

I, O, W_DIM, N = 3, 4, 5, 2


def _layer(up: int = 1, res: int = 8, seed: int = 0, clamp: float | None = None) -> AdaINLayer:
    torch.manual_seed(seed)
    layer = AdaINLayer(I, O, W_DIM, resolution=res, up=up, conv_clamp=clamp).double()
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():  # exercise noise and bias, which a fresh layer leaves at zero
        layer.bias.copy_(torch.randn(O, generator=g, dtype=DT))
        layer.noise_strength.fill_(0.8)
    return layer


def _inputs(res: int, up: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, I, res // up, res // up, generator=g, dtype=DT) * 2 + 0.5
    w = torch.randn(N, W_DIM, generator=g, dtype=DT)
    return x, w


def _pre_norm_reference(layer: AdaINLayer, x: torch.Tensor, up: int) -> torch.Tensor:
    """conv (weight / sqrt(I*3*3)) -> + const noise -> + bias -> lrelu * sqrt(2) [-> clamp]."""
    weight = layer.weight.detach() / math.sqrt(I * 9)
    y = conv_up2_ref(x, weight, fir_taps()) if up == 2 else conv2d_ref(x, weight, padding=1)
    y = y + layer.noise_const.detach()[None, None] * float(layer.noise_strength)
    y = lrelu(y + layer.bias.detach()[None, :, None, None]) * math.sqrt(2)
    if layer.conv_clamp is not None:
        y = y.clamp(-layer.conv_clamp, layer.conv_clamp)
    return y


def _instance_norm_by_loops(y: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    out = torch.empty_like(y)
    for n in range(y.shape[0]):
        for c in range(y.shape[1]):
            vals = y[n, c]
            mu = float(vals.sum()) / vals.numel()
            var = float(((vals - mu) ** 2).sum()) / vals.numel()
            out[n, c] = (vals - mu) / math.sqrt(var + eps)
    return out


def test_instance_norm_zero_mean_unit_variance():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 7, 6, generator=g, dtype=DT) * torch.rand(3, 5, 1, 1, generator=g, dtype=DT) * 10
    x = x + torch.randn(3, 5, 1, 1, generator=g, dtype=DT) * 100
    y = instance_norm(x)
    assert float(y.mean(dim=[2, 3]).abs().max()) < 1e-12
    assert float((y.var(dim=[2, 3], unbiased=False) - 1).abs().max()) < 1e-6
    assert_rel_close(y, _instance_norm_by_loops(x), rtol=1e-12)


@torch.no_grad()
@pytest.mark.parametrize("up", [1, 2])
def test_adain_identity_style_gives_normalised_maps(up):
    # affine weight 0 and bias [1]*O + [0]*O: scale 1, shift 0, so the output IS the normalised activation
    layer = _layer(up)
    layer.affine.weight.zero_()
    layer.affine.bias.copy_(torch.cat([torch.ones(O, dtype=DT), torch.zeros(O, dtype=DT)]))
    x, w = _inputs(8, up)
    y = layer(x, w, noise_mode="const")
    assert y.shape == (N, O, 8, 8)
    assert float(y.mean(dim=[2, 3]).abs().max()) < 1e-6
    assert float((y.var(dim=[2, 3], unbiased=False) - 1).abs().max()) < 1e-6


def test_adain_fresh_init_has_identity_style_bias():
    layer = AdaINLayer(I, O, W_DIM, resolution=8)
    b = layer.affine.bias.detach()
    assert torch.equal(b, torch.cat([torch.ones(O), torch.zeros(O)]))
    assert layer.affine.weight.shape == (2 * O, W_DIM)


@torch.no_grad()
@pytest.mark.parametrize("up", [1, 2])
def test_adain_pre_style_activations_are_normalised(up, monkeypatch):
    # capture what the layer feeds to instance_norm and what comes out, then check both independently
    seen = {}

    def spy(t, *args, **kwargs):
        seen["in"] = t
        seen["out"] = instance_norm(t, *args, **kwargs)
        return seen["out"]

    monkeypatch.setattr(style_blocks, "instance_norm", spy)
    layer = _layer(up, clamp=1.5)
    x, w = _inputs(8, up)
    layer(x, w, noise_mode="const")
    pre = _pre_norm_reference(layer, x, up)
    assert float((pre.abs() == 1.5).float().mean()) > 0.01  # the clamp happens before the norm
    assert_rel_close(seen["in"], pre, rtol=1e-12)
    assert float(seen["out"].mean(dim=[2, 3]).abs().max()) < 1e-12
    assert float((seen["out"].var(dim=[2, 3], unbiased=False) - 1).abs().max()) < 1e-6


@torch.no_grad()
@pytest.mark.parametrize("up", [1, 2])
def test_adain_output_is_scale_times_normalised_plus_shift(up):
    layer = _layer(up, seed=3)
    g = torch.Generator().manual_seed(9)
    layer.affine.weight.copy_(torch.randn(2 * O, W_DIM, generator=g, dtype=DT) * 3)
    layer.affine.bias.copy_(torch.randn(2 * O, generator=g, dtype=DT))
    x, w = _inputs(8, up, seed=4)
    gain = 0.6
    y = layer(x, w, noise_mode="const", gain=gain)
    style = w @ (layer.affine.weight / math.sqrt(W_DIM)).T + layer.affine.bias  # lr 1, linear
    scale, shift = style[:, :O], style[:, O:]
    x_norm = _instance_norm_by_loops(_pre_norm_reference(layer, x, up))
    ref = (scale[:, :, None, None] * x_norm + shift[:, :, None, None]) * gain
    assert_rel_close(y, ref, rtol=1e-11)
    # per (n, c): mean = shift * gain, std = |scale| * gain (up to eps)
    assert_rel_close(y.mean(dim=[2, 3]), shift * gain, rtol=1e-10)
    assert_rel_close(y.std(dim=[2, 3], unbiased=False), scale.abs() * gain, rtol=1e-6)
