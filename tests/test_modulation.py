"""Weight (de)modulation (modulation.py, StyleGAN2 Eqs. 1-3) and the layers built on it, in float64.

References: explicit loops for the demodulation coefficients, a per-sample cross-correlation with an
explicitly modulated weight (tests/naive_ops.py) for the conv, and the OFFICIAL_LAYOUT formulas for
SynthesisLayer / ToRGB.
"""

from __future__ import annotations

import math

import pytest
import torch

from naive_ops import DT, assert_rel_close, fir_taps, lrelu, modulated_conv2d_ref
from stylegan.networks import Generator
from stylegan.networks.modulation import demodulation_coefficients, modulated_conv2d
from stylegan.networks.resample import setup_filter
from stylegan.networks.style_blocks import SynthesisLayer, ToRGBLayer


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _problem(up: int, seed: int = 0, n: int = 3, i: int = 4, o: int = 5, h: int = 6, w: int = 5, k: int = 3):
    g = _gen(seed)
    x = torch.randn(n, i, h, w, generator=g, dtype=DT)
    weight = torch.randn(o, i, k, k, generator=g, dtype=DT)
    styles = torch.randn(n, i, generator=g, dtype=DT) + 1.0
    noise = torch.randn(n, 1, up * h, up * w, generator=g, dtype=DT)
    return x, weight, styles, noise


def test_demodulation_coefficients_match_explicit_loops():
    _, weight, styles, _ = _problem(1)
    N, (O, I, K, _) = styles.shape[0], weight.shape
    expected = torch.empty(N, O, dtype=DT)
    for n in range(N):
        for o in range(O):
            acc = 0.0
            for i in range(I):
                for a in range(K):
                    for b in range(K):
                        acc += (float(styles[n, i]) * float(weight[o, i, a, b])) ** 2
            expected[n, o] = 1.0 / math.sqrt(acc + 1e-8)
    assert_rel_close(demodulation_coefficients(weight, styles), expected, rtol=1e-13)


def test_demodulation_eps_is_inside_the_sqrt():
    # tiny styles make sum(w'^2) comparable to eps = 1e-8: d = 1/sqrt(S + 1e-8), not 1/(sqrt(S) + 1e-8)
    weight = torch.ones(1, 1, 1, 1, dtype=DT)
    styles = torch.full((1, 1), 1e-4, dtype=DT)  # S = 1e-8
    assert demodulation_coefficients(weight, styles).item() == pytest.approx(1 / math.sqrt(2e-8), rel=1e-12)


def test_demodulated_weights_have_unit_norm_per_output_channel():
    _, weight, styles, _ = _problem(1, seed=3)
    d = demodulation_coefficients(weight, styles)
    w = weight[None] * styles[:, None, :, None, None] * d[:, :, None, None, None]
    sq = w.square().sum(dim=[2, 3, 4])  # [N, O]
    S = (weight[None] * styles[:, None, :, None, None]).square().sum(dim=[2, 3, 4])
    assert_rel_close(sq, S / (S + 1e-8), rtol=1e-13)  # exactly 1 up to eps
    assert float((sq - 1).abs().max()) < 1e-8


@pytest.mark.parametrize("with_noise", [False, True])
@pytest.mark.parametrize("demodulate", [True, False])
@pytest.mark.parametrize("up", [1, 2])
def test_fused_equals_non_fused(up, demodulate, with_noise):
    x, weight, styles, noise = _problem(up, seed=up + 2 * demodulate)
    f = setup_filter() if up == 2 else None
    kw = dict(noise=noise if with_noise else None, up=up, demodulate=demodulate, resample_filter=f)
    fused = modulated_conv2d(x, weight, styles, fused=True, **kw)
    non_fused = modulated_conv2d(x, weight, styles, fused=False, **kw)
    assert fused.shape == (x.shape[0], weight.shape[0], up * x.shape[2], up * x.shape[3])
    assert_rel_close(fused, non_fused, rtol=1e-12)


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("with_noise", [False, True])
@pytest.mark.parametrize("demodulate", [True, False])
@pytest.mark.parametrize("up", [1, 2])
def test_modulated_conv2d_matches_per_sample_reference(up, demodulate, with_noise, fused):
    x, weight, styles, noise = _problem(up, seed=10 + up)
    noise = noise if with_noise else None
    y = modulated_conv2d(x, weight, styles, noise, up=up, demodulate=demodulate,
                         resample_filter=setup_filter() if up == 2 else None, fused=fused)
    ref = modulated_conv2d_ref(x, weight, styles, noise, up=up, demodulate=demodulate, f=fir_taps())
    assert_rel_close(y, ref, rtol=1e-12)


def test_modulated_conv2d_1x1_not_demodulated_matches_reference():
    x, weight, styles, _ = _problem(1, seed=5, k=1)
    for fused in (True, False):
        y = modulated_conv2d(x, weight, styles, demodulate=False, fused=fused)
        assert_rel_close(y, modulated_conv2d_ref(x, weight, styles, demodulate=False), rtol=1e-12)


def test_noise_is_added_after_demodulation():
    # doubling the style of every input channel leaves a demodulated output unchanged, noise included
    x, weight, styles, noise = _problem(1, seed=21)
    a = modulated_conv2d(x, weight, styles, noise)
    b = modulated_conv2d(x, weight, 2 * styles, noise)
    assert_rel_close(a, b, rtol=1e-9)  # only eps = 1e-8 breaks the exact scale invariance
    assert float((a - modulated_conv2d(x, weight, styles)).abs().max()) > 0.1


def test_demodulated_output_has_unit_std_for_unit_variance_input():
    # StyleGAN2 Sec. 2.2: with i.i.d. unit-variance inputs, out_j has std sqrt(sum_{i,k} w''_ijk^2) = 1
    g = _gen(2024)
    N, I, O, H = 4, 64, 32, 24
    x = torch.randn(N, I, H, H, generator=g, dtype=DT)
    weight = torch.randn(O, I, 3, 3, generator=g, dtype=DT)
    styles = torch.rand(N, I, generator=g, dtype=DT) * 3 + 0.1  # strongly non-uniform styles
    y = modulated_conv2d(x, weight, styles)[:, :, 1:-1, 1:-1]  # drop the zero-padded border
    assert abs(float(y.std()) - 1) < 0.05
    per_channel = y.transpose(0, 1).reshape(O, -1).std(dim=1)
    assert float((per_channel - 1).abs().max()) < 0.1
    # without demodulation the same layer is far from unit scale (so the test can tell the difference)
    y_mod = modulated_conv2d(x, weight, styles, demodulate=False)[:, :, 1:-1, 1:-1]
    assert float(y_mod.std()) > 5


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("up", [1, 2])
def test_synthesis_layer_matches_official_formula(up, fused):
    torch.manual_seed(0)
    I, O, w_dim, R, N = 3, 4, 5, 8, 2
    layer = SynthesisLayer(I, O, w_dim, resolution=R, up=up, conv_clamp=0.9).double()
    g = _gen(1)
    with torch.no_grad():
        layer.bias.copy_(torch.randn(O, generator=g, dtype=DT))
        layer.noise_strength.fill_(0.7)
        layer.affine.bias.copy_(torch.randn(I, generator=g, dtype=DT) + 1)
    x = torch.randn(N, I, R // up, R // up, generator=g, dtype=DT)
    w = torch.randn(N, w_dim, generator=g, dtype=DT)
    gain = math.sqrt(0.5)
    y = layer(x, w, noise_mode="const", fused_modconv=fused, gain=gain)
    # s = affine(w): lr 1, weight / sqrt(w_dim), no extra gain
    s = w @ (layer.affine.weight.detach() / math.sqrt(w_dim)).T + layer.affine.bias.detach()
    noise = layer.noise_const.detach()[None, None] * 0.7
    z = modulated_conv2d_ref(x, layer.weight.detach(), s, noise, up=up, demodulate=True, f=fir_taps())
    ref = lrelu(z + layer.bias.detach()[None, :, None, None]) * math.sqrt(2) * gain
    ref = ref.clamp(-0.9 * gain, 0.9 * gain)
    assert float((ref.abs() == 0.9 * gain).float().mean()) > 0.05  # the clamp is exercised
    assert_rel_close(y, ref, rtol=1e-12)


@torch.no_grad()
def test_synthesis_layer_noise_modes():
    torch.manual_seed(0)
    layer = SynthesisLayer(3, 4, 5, resolution=4).double()
    with torch.no_grad():
        layer.noise_strength.fill_(0.5)
    x = torch.randn(2, 3, 4, 4, dtype=DT)
    w = torch.randn(2, 5, dtype=DT)
    none = layer(x, w, noise_mode="none")
    const = layer(x, w, noise_mode="const")
    assert_rel_close(const, layer(x, w, noise_mode="const"), rtol=0)  # deterministic
    assert float((const - none).abs().max()) > 1e-3
    torch.manual_seed(5)
    r1 = layer(x, w, noise_mode="random")
    torch.manual_seed(5)
    r2 = layer(x, w, noise_mode="random")
    r3 = layer(x, w, noise_mode="random")
    assert torch.equal(r1, r2) and not torch.equal(r1, r3)
    with torch.no_grad():
        layer.noise_strength.zero_()
    assert torch.equal(layer(x, w, noise_mode="random"), none)


@pytest.mark.parametrize("fused", [True, False])
def test_torgb_matches_official_formula(fused):
    torch.manual_seed(1)
    I, C, w_dim, N = 6, 3, 5, 2
    layer = ToRGBLayer(I, C, w_dim, conv_clamp=0.4).double()
    g = _gen(2)
    with torch.no_grad():
        layer.bias.copy_(torch.randn(C, generator=g, dtype=DT) * 0.1)
    x = torch.randn(N, I, 4, 4, generator=g, dtype=DT)
    w = torch.randn(N, w_dim, generator=g, dtype=DT)
    y = layer(x, w, fused_modconv=fused)
    s = (w @ (layer.affine.weight.detach() / math.sqrt(w_dim)).T + layer.affine.bias.detach()) / math.sqrt(I)
    ref = torch.einsum("nihw,oi,ni->nohw", x, layer.weight.detach()[:, :, 0, 0], s)
    ref = (ref + layer.bias.detach()[None, :, None, None]).clamp(-0.4, 0.4)
    assert float((ref.abs() == 0.4).float().mean()) > 0.05
    assert_rel_close(y, ref, rtol=1e-12)


@pytest.mark.parametrize("style_block", ["demod", "modulate"])
@pytest.mark.parametrize("architecture", ["orig", "skip", "resnet"])
def test_generator_fused_equals_non_fused(architecture, style_block):
    torch.manual_seed(0)
    G = Generator(z_dim=8, w_dim=8, img_resolution=16, img_channels=3, channel_base=64, channel_max=8,
                  architecture=architecture, style_block=style_block,
                  mapping_kwargs=dict(num_layers=2)).double()
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise_strength") or name.endswith(".bias"):
                p.add_(0.3 * torch.randn_like(p))
    ws = torch.randn(2, G.num_ws, 8, dtype=DT)
    a = G.synthesis(ws, noise_mode="const", fused_modconv=True)
    b = G.synthesis(ws, noise_mode="const", fused_modconv=False)
    assert a.dtype == DT
    assert_rel_close(a, b, rtol=1e-11)
    # 'inference_only' (the default) is non-fused in train mode and fused in eval mode; both agree anyway
    assert_rel_close(G.train().synthesis(ws, noise_mode="const"), b, rtol=1e-11)
    assert_rel_close(G.eval().synthesis(ws, noise_mode="const"), a, rtol=1e-11)
