"""Mapping network (mapping.py): normalisation, layer math, truncation, w_avg EMA, conditioning.

The mapping casts z (and c) to float32 like the official code, so it runs in float32 here; the references are
computed in float64 from the same float32 inputs and parameters, with float32-level tolerances.
"""

from __future__ import annotations

import math

import pytest
import torch

from naive_ops import DT, assert_rel_close, lrelu
from stylegan.networks import Generator, MappingNetwork
from stylegan.networks.layers import normalize_2nd_moment

Z, W, NUM_WS, N = 16, 12, 6, 5


def _mapping(c_dim: int = 0, seed: int = 0, **kw) -> MappingNetwork:
    torch.manual_seed(seed)
    m = MappingNetwork(Z, c_dim, W, num_ws=NUM_WS, num_layers=3, **kw)
    with torch.no_grad():  # non-zero biases and w_avg (a fresh net has both at 0)
        for i in range(3):
            getattr(m, f"fc{i}").bias.normal_(0, 50)  # stored bias is 100x the effective one
        m.w_avg.normal_()
    return m


def _mapping_ref(m: MappingNetwork, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
    x = z.to(DT)
    x = x / torch.sqrt((x**2).mean(dim=1, keepdim=True) + 1e-8)
    if c is not None:
        We, be = m.embed.weight.detach().to(DT), m.embed.bias.detach().to(DT)
        e = c.to(DT) @ (We / math.sqrt(c.shape[1])).T + be  # lr 1, linear
        e = e / torch.sqrt((e**2).mean(dim=1, keepdim=True) + 1e-8)
        x = torch.cat([x, e], dim=1)
    for i in range(m.num_layers):
        fc = getattr(m, f"fc{i}")
        Wt, b = fc.weight.detach().to(DT), fc.bias.detach().to(DT)
        x = lrelu(x @ (Wt * 0.01 / math.sqrt(Wt.shape[1])).T + b * 0.01) * math.sqrt(2)
    return x


def test_normalize_2nd_moment_gives_unit_second_moment():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(7, 33, generator=g, dtype=DT) * (torch.rand(7, 1, generator=g, dtype=DT) * 20 + 0.5)
    y = normalize_2nd_moment(z)
    S = (z**2).mean(dim=1)
    assert_rel_close((y**2).mean(dim=1), S / (S + 1e-8), rtol=1e-13)  # = 1 up to eps
    assert float(((y**2).mean(dim=1) - 1).abs().max()) < 1e-7
    assert_rel_close(y, z / torch.sqrt((z**2).mean(dim=1, keepdim=True) + 1e-8), rtol=1e-14)


@torch.no_grad()
def test_mapping_matches_reference_and_broadcasts():
    m = _mapping()
    z = torch.randn(N, Z)
    ws = m(z)
    assert ws.shape == (N, NUM_WS, W)
    ref = _mapping_ref(m, z)
    for k in range(NUM_WS):
        assert_rel_close(ws[:, k].to(DT), ref, rtol=2e-6)
    # normalisation makes the mapping invariant to the scale of z
    assert_rel_close(m(3.7 * z).to(DT), ws.to(DT), rtol=2e-6)


@torch.no_grad()
@pytest.mark.parametrize(("psi", "cutoff"), [(0.5, None), (0.7, 2), (-0.3, 4), (1.5, NUM_WS)])
def test_truncation_formula(psi, cutoff):
    m = _mapping(seed=1)
    z = torch.randn(N, Z)
    ws = m(z).to(DT)
    w_avg = m.w_avg.to(DT)
    ws_t = m(z, truncation_psi=psi, truncation_cutoff=cutoff).to(DT)
    k = NUM_WS if cutoff is None else cutoff
    assert_rel_close(ws_t[:, :k], w_avg + psi * (ws[:, :k] - w_avg), rtol=1e-6)
    assert torch.equal(ws_t[:, k:], ws[:, k:])
    assert float((ws_t[:, :k] - ws[:, :k]).abs().max()) > 1e-2


@torch.no_grad()
def test_truncation_psi_zero_gives_w_avg_and_psi_one_is_identity():
    m = _mapping(seed=2)
    z = torch.randn(N, Z)
    assert_rel_close(m(z, truncation_psi=0.0).to(DT), m.w_avg.to(DT).expand(N, NUM_WS, W), rtol=1e-7)
    assert torch.equal(m(z, truncation_psi=1.0, truncation_cutoff=2), m(z))


@torch.no_grad()
def test_w_avg_updates_only_with_update_emas():
    m = _mapping(seed=3)
    z = torch.randn(N, Z)
    before = m.w_avg.clone()
    m(z)
    m(z, truncation_psi=0.5)
    assert torch.equal(m.w_avg, before)
    # EMA of the *untruncated* w, even when truncating in the same call: mean.lerp(w_avg, 0.998)
    mean = _mapping_ref(m, z).mean(dim=0)
    expected = mean + 0.998 * (before.to(DT) - mean)
    ws_t = m(z, truncation_psi=0.5, update_emas=True)
    assert_rel_close(m.w_avg.to(DT), expected, rtol=1e-6)
    # and truncation already uses the updated average
    ws = m(z).to(DT)
    assert_rel_close(ws_t.to(DT), expected + 0.5 * (ws - expected), rtol=1e-6)


@torch.no_grad()
def test_w_avg_beta_is_configurable():
    m = _mapping(seed=4, w_avg_beta=0.9)
    z = torch.randn(N, Z)
    before = m.w_avg.clone().to(DT)
    m(z, update_emas=True)
    mean = _mapping_ref(m, z).mean(dim=0)
    assert_rel_close(m.w_avg.to(DT), mean + 0.9 * (before - mean), rtol=1e-6)


@torch.no_grad()
def test_conditional_mapping():
    m = _mapping(c_dim=3, seed=5)
    assert m.embed.weight.shape == (W, 3) and m.fc0.weight.shape == (W, Z + W)
    z = torch.randn(1, Z).repeat(3, 1)
    c = torch.eye(3)
    ws = m(z, c)
    assert ws.shape == (3, NUM_WS, W)
    ref = _mapping_ref(m, z, c)
    assert_rel_close(ws[:, 0].to(DT), ref, rtol=2e-6)
    # same z, different labels -> different w; same label -> same w
    for a in range(3):
        for b in range(a + 1, 3):
            assert float((ws[a] - ws[b]).abs().max()) > 1e-3
    assert_rel_close(m(z[:1], c[1:2]).to(DT), ws[1:2].to(DT), rtol=1e-6)
    with pytest.raises(ValueError, match="labels"):
        m(z, None)
    with pytest.raises(ValueError, match="labels"):
        m(z, torch.zeros(3, 4))


def test_label_concat_is_the_tf_codes_label_concat():
    """label_embedding='concat' (TF G_mapping 'LabelConcat'): x = normalize([z, c @ E]) with a raw N(0, 1) matrix
    E [c_dim, z_dim], then the same FC stack; E is learned (it gets a gradient) and there is no FC embedding."""
    m = _mapping(c_dim=3, seed=6, label_embedding="concat")
    assert not hasattr(m, "embed") and m.label_concat.shape == (3, Z) and m.fc0.weight.shape == (W, 2 * Z)
    z, c = torch.randn(N, Z), torch.rand(N, 3)
    x = torch.cat([z.to(DT), c.to(DT) @ m.label_concat.detach().to(DT)], dim=1)
    x = x / torch.sqrt((x**2).mean(dim=1, keepdim=True) + 1e-8)
    for i in range(m.num_layers):
        fc = getattr(m, f"fc{i}")
        Wt, b = fc.weight.detach().to(DT), fc.bias.detach().to(DT)
        x = lrelu(x @ (Wt * 0.01 / math.sqrt(Wt.shape[1])).T + b * 0.01) * math.sqrt(2)
    ws = m(z, c)
    assert_rel_close(ws[:, 0].to(DT), x, rtol=2e-6)
    ws.square().sum().backward()
    assert m.label_concat.grad is not None and m.label_concat.grad.abs().sum() > 0
    G = Generator(z_dim=8, c_dim=3, w_dim=8, img_resolution=8, channel_base=32, channel_max=8,
                  mapping_kwargs=dict(num_layers=2, label_embedding="concat"))
    assert G.init_kwargs["mapping_kwargs"]["label_embedding"] == "concat"
    assert "label_embedding" not in Generator(mapping_kwargs=dict(label_embedding="embed"), img_resolution=8,
                                              channel_base=32, channel_max=8).init_kwargs["mapping_kwargs"]
    from stylegan.official import OfficialWeightsError, export_official

    with pytest.raises(OfficialWeightsError, match="label_embedding='concat'"):
        export_official(G)
    with pytest.raises(ValueError, match="'embed' or 'concat'"):
        MappingNetwork(Z, 3, W, num_ws=1, label_embedding="switch")
    with pytest.raises(ValueError, match="needs z_dim > 0"):
        MappingNetwork(0, 3, W, num_ws=None, label_embedding="concat")


@torch.no_grad()
def test_conditional_generator_w_depends_on_label():
    torch.manual_seed(0)
    G = Generator(z_dim=8, c_dim=3, w_dim=8, img_resolution=8, channel_base=32, channel_max=8,
                  mapping_kwargs=dict(num_layers=2))
    z = torch.randn(1, 8).repeat(2, 1)
    c = torch.tensor([[1.0, 0, 0], [0, 0, 1.0]])
    ws = G.mapping(z, c)
    assert ws.shape == (2, G.num_ws, 8)
    assert float((ws[0] - ws[1]).abs().max()) > 1e-3


@torch.no_grad()
def test_double_mapping_supports_ema_and_truncation():
    m = _mapping(seed=6).double()
    z = torch.randn(N, Z, dtype=DT)
    ws = m(z, truncation_psi=0.5, update_emas=True)
    assert ws.dtype == DT and m.w_avg.dtype == DT


def test_label_mapping_without_layers_is_the_normalized_embedding():
    """num_layers=0 (the StyleGAN2-ADA TF conditional D's default): cmap = normalize(embed(c)), no FC layer; and a
    projection D built on it runs: <out(x), cmap> / sqrt(cmap_dim) with that cmap."""
    from stylegan.networks import Discriminator

    torch.manual_seed(0)
    mapping = MappingNetwork(0, 5, 8, num_ws=None, w_avg_beta=None, num_layers=0).double()
    c = torch.eye(5, dtype=DT)[[0, 3, 4]]
    embed = mapping.embed
    y = c @ (embed.weight.to(DT) / math.sqrt(5)).T + embed.bias.to(DT)
    expected = y / (y.square().mean(dim=1, keepdim=True) + 1e-8).sqrt()
    assert_rel_close(mapping(None, c), expected, 1e-12)
    D = Discriminator(c_dim=5, img_resolution=8, img_channels=1, channel_base=64, channel_max=8, cmap_dim=8,
                      mbstd_group_size=1, mapping_kwargs={"num_layers": 0}).double()
    img = torch.randn(3, 1, 8, 8, dtype=DT)
    assert D(img, c).shape == (3, 1)
    assert not torch.equal(D(img, c), D(img, c.roll(1, dims=0)))
