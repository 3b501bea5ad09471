"""Generator / Discriminator shapes, state_dict layouts (from the OFFICIAL_LAYOUT rules) and backward passes.

Tiny channel counts keep every configuration fast: channel_max=8 and channel_base=4*R give 8 channels up to
R/2 and 4 at R (so in != out at the last G block and the first D block).
"""

from __future__ import annotations

import copy
import math
from functools import cache
from pathlib import Path

import pytest
import torch

import reference_nets
from naive_ops import assert_rel_close
from stylegan.networks import Discriminator, Generator

ARCHS = ("orig", "skip", "resnet")
RESOLUTIONS = (8, 16, 32, 64, 128, 256)
VALUES_UP_TO = 64  # float64 values against reference_nets; above: the same blocks repeated, shapes and layout only
ZW = 8
FIXTURE = Path(__file__).parent / "fixtures" / "official_g-skip_d-resnet_r32_small.pt"


def _channels(res: int, base: int, cmax: int) -> dict[int, int]:
    out, r = {}, 4
    while r <= res:
        out[r] = min(base // r, cmax)
        r *= 2
    return out


# ------------------------------------------------------------------------ expected layouts (rules)


def expected_g_layout(arch, res, img_c, base, cmax, z_dim, w_dim, map_layers, c_dim=0):
    """{key: shape} of G.state_dict() by the OFFICIAL_LAYOUT rules, without the resample_filter buffers."""
    ch = _channels(res, base, cmax)
    out: dict[str, tuple[int, ...]] = {}

    def style_layer(prefix, cin, cout, r):
        out[f"{prefix}.weight"] = (cout, cin, 3, 3)
        out[f"{prefix}.noise_strength"] = ()
        out[f"{prefix}.bias"] = (cout,)
        out[f"{prefix}.noise_const"] = (r, r)
        out[f"{prefix}.affine.weight"] = (cin, w_dim)
        out[f"{prefix}.affine.bias"] = (cin,)

    for r in ch:
        b = f"synthesis.b{r}"
        if r == 4:
            out[f"{b}.const"] = (ch[4], 4, 4)
        else:
            style_layer(f"{b}.conv0", ch[r // 2], ch[r], r)
        style_layer(f"{b}.conv1", ch[r], ch[r], r)
        if arch == "skip" or r == res:  # 'orig' and 'resnet': ToRGB only in the last block
            out[f"{b}.torgb.weight"] = (img_c, ch[r], 1, 1)
            out[f"{b}.torgb.bias"] = (img_c,)
            out[f"{b}.torgb.affine.weight"] = (ch[r], w_dim)
            out[f"{b}.torgb.affine.bias"] = (ch[r],)
        if arch == "resnet" and r > 4:
            out[f"{b}.skip.weight"] = (ch[r], ch[r // 2], 1, 1)
    out["mapping.w_avg"] = (w_dim,)
    if c_dim:
        out["mapping.embed.weight"] = (w_dim, c_dim)
        out["mapping.embed.bias"] = (w_dim,)
    for i in range(map_layers):
        fan_in = (z_dim + (w_dim if c_dim else 0)) if i == 0 else w_dim
        out[f"mapping.fc{i}.weight"] = (w_dim, fan_in)
        out[f"mapping.fc{i}.bias"] = (w_dim,)
    return out


def expected_d_layout(arch, res, img_c, base, cmax, c_dim=0, mbstd_channels=1):
    ch = _channels(res, base, cmax)
    out: dict[str, tuple[int, ...]] = {}
    r = res
    while r >= 8:
        tmp, nxt = ch[r], ch[r // 2]
        if r == res or arch == "skip":
            out[f"b{r}.fromrgb.weight"] = (tmp, img_c, 1, 1)
            out[f"b{r}.fromrgb.bias"] = (tmp,)
        out[f"b{r}.conv0.weight"] = (tmp, tmp, 3, 3)
        out[f"b{r}.conv0.bias"] = (tmp,)
        out[f"b{r}.conv1.weight"] = (nxt, tmp, 3, 3)
        out[f"b{r}.conv1.bias"] = (nxt,)
        if arch == "resnet":
            out[f"b{r}.skip.weight"] = (nxt, tmp, 1, 1)
        r //= 2
    c4 = ch[4]
    cmap = c4 if c_dim else 0
    if arch == "skip":
        out["b4.fromrgb.weight"] = (c4, img_c, 1, 1)
        out["b4.fromrgb.bias"] = (c4,)
    out["b4.conv.weight"] = (c4, c4 + mbstd_channels, 3, 3)
    out["b4.conv.bias"] = (c4,)
    out["b4.fc.weight"] = (c4, c4 * 16)
    out["b4.fc.bias"] = (c4,)
    out["b4.out.weight"] = (cmap or 1, c4)
    out["b4.out.bias"] = (cmap or 1,)
    if c_dim:
        out["mapping.embed.weight"] = (cmap, c_dim)
        out["mapping.embed.bias"] = (cmap,)
        for i in range(8):
            out[f"mapping.fc{i}.weight"] = (cmap, cmap)
            out[f"mapping.fc{i}.bias"] = (cmap,)
    return out


def _layout(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    """Parameter and buffer shapes, without the [1,3,3,1] resample_filter buffers (checked separately)."""
    return {k: tuple(v.shape) for k, v in module.state_dict().items() if not k.endswith("resample_filter")}


def test_layout_rules_reproduce_the_official_fixture():
    # the rule functions above are checked against a real official state_dict (skip G, resnet D, res 32)
    dump = torch.load(FIXTURE, weights_only=True)
    official_g = {k: tuple(v.shape) for k, v in dump["G"].items() if not k.endswith("resample_filter")}
    official_d = {k: tuple(v.shape) for k, v in dump["D"].items() if not k.endswith("resample_filter")}
    assert official_g == expected_g_layout("skip", 32, 3, 512, 32, 64, 64, 2)
    assert official_d == expected_d_layout("resnet", 32, 3, 512, 32)


def test_networks_match_the_official_fixture_layout():
    dump = torch.load(FIXTURE, weights_only=True)
    G = Generator(z_dim=64, w_dim=64, img_resolution=32, img_channels=3, channel_base=512, channel_max=32,
                  architecture="skip", mapping_kwargs=dict(num_layers=2))
    D = Discriminator(img_resolution=32, img_channels=3, channel_base=512, channel_max=32,
                      architecture="resnet")
    for net, key in ((G, "G"), (D, "D")):
        official = {k: tuple(v.shape) for k, v in dump[key].items() if not k.endswith("resample_filter")}
        assert _layout(net) == official
        assert list(net.state_dict()) == list(dump[key])  # every key, resample_filter included, official order
    assert next(iter(G.state_dict())).startswith("synthesis.")  # construction order: synthesis, then mapping


# ----------------------------------------------------------------------------------- tiny networks


@cache
def _g(arch, res, img_c=3, style_block="demod", c_dim=0):
    torch.manual_seed(0)
    return Generator(z_dim=ZW, c_dim=c_dim, w_dim=ZW, img_resolution=res, img_channels=img_c,
                     channel_base=4 * res, channel_max=8, architecture=arch, style_block=style_block,
                     mapping_kwargs=dict(num_layers=2))


@cache
def _d(arch, res, img_c=3, c_dim=0):
    torch.manual_seed(1)
    return Discriminator(c_dim=c_dim, img_resolution=res, img_channels=img_c, channel_base=4 * res,
                         channel_max=8, architecture=arch, mbstd_group_size=2)


@pytest.mark.parametrize("res", RESOLUTIONS)
@pytest.mark.parametrize("arch", ARCHS)
def test_generator_layout_and_values(arch, res):
    """The layout, and the image of a float64 copy (biases, noise strengths perturbed so that they act) against
    the whole-network float64 path of reference_nets, written from the official formulas (const noise)."""
    G = _g(arch, res)
    assert G.num_ws == 2 * int(math.log2(res)) - 2
    assert _layout(G) == expected_g_layout(arch, res, 3, 4 * res, 8, ZW, ZW, 2)
    z = torch.randn(2, ZW, dtype=torch.float64, generator=torch.Generator().manual_seed(res))
    if res > VALUES_UP_TO:
        with torch.no_grad():
            img = G(z.float(), noise_mode="const")
        assert img.shape == (2, 3, res, res) and bool(torch.isfinite(img).all())
        return
    G64 = reference_nets.perturbed(copy.deepcopy(G), seed=res)
    with torch.no_grad():
        img = G64(z, noise_mode="const")
        ws = G64.mapping(z)
        expected = reference_nets.generator(G64.state_dict(), z, arch, res, num_layers=2)
    assert ws.shape == (2, G.num_ws, ZW)
    assert img.shape == (2, 3, res, res) and img.dtype == torch.float64
    assert_rel_close(img, expected, rtol=1e-10)


@pytest.mark.parametrize("res", RESOLUTIONS)
@pytest.mark.parametrize("arch", ARCHS)
def test_discriminator_layout_and_values(arch, res):
    """The layout, and the logits of a float64 copy (biases perturbed) against reference_nets' D (4 images,
    minibatch-std groups of 2)."""
    D = _d(arch, res)
    assert _layout(D) == expected_d_layout(arch, res, 3, 4 * res, 8)
    img = torch.randn(4, 3, res, res, dtype=torch.float64, generator=torch.Generator().manual_seed(res))
    if res > VALUES_UP_TO:
        with torch.no_grad():
            logits = D(img.float())
        assert logits.shape == (4, 1) and bool(torch.isfinite(logits).all())
        return
    D64 = reference_nets.perturbed(copy.deepcopy(D), seed=res)
    with torch.no_grad():
        logits = D64(img)
    assert logits.shape == (4, 1)
    assert_rel_close(logits, reference_nets.discriminator(D64.state_dict(), img, arch, res, mbstd_group=2),
                     rtol=1e-10)


@pytest.mark.parametrize("res", [8, 32])
@pytest.mark.parametrize("d_arch", ARCHS)
@pytest.mark.parametrize("g_arch", ARCHS)
def test_generator_feeds_discriminator(g_arch, d_arch, res):
    with torch.no_grad():
        logits = _d(d_arch, res)(_g(g_arch, res)(torch.randn(2, ZW)))
    assert logits.shape == (2, 1)


@pytest.mark.parametrize("style_block", ["demod", "modulate", "adain"])
@pytest.mark.parametrize("arch", ARCHS)
def test_style_blocks_shapes(arch, style_block):
    G = _g(arch, 16, style_block=style_block)
    assert G.num_ws == 6
    with torch.no_grad():
        img = G(torch.randn(2, ZW), noise_mode="const")
    assert img.shape == (2, 3, 16, 16)
    layout = _layout(G)
    expected = expected_g_layout(arch, 16, 3, 64, 8, ZW, ZW, 2)
    assert set(layout) == set(expected)  # same names for every style block
    if style_block == "adain":  # AdaIN's affine produces a scale and a shift per *output* channel
        assert layout["synthesis.b16.conv0.affine.weight"] == (2 * 4, ZW)
        assert layout["synthesis.b16.conv1.affine.weight"] == (2 * 4, ZW)
    else:
        assert layout == expected


@pytest.mark.parametrize("img_c", [1, 3])
@pytest.mark.parametrize("arch", ARCHS)
def test_image_channels(arch, img_c):
    G, D = _g(arch, 16, img_c=img_c), _d(arch, 16, img_c=img_c)
    assert _layout(G) == expected_g_layout(arch, 16, img_c, 64, 8, ZW, ZW, 2)
    assert _layout(D) == expected_d_layout(arch, 16, img_c, 64, 8)
    with torch.no_grad():
        img = G(torch.randn(2, ZW))
        assert img.shape == (2, img_c, 16, 16)
        assert D(img).shape == (2, 1)


@pytest.mark.parametrize("arch", ARCHS)
def test_conditional_networks(arch):
    G, D = _g(arch, 16, c_dim=5), _d(arch, 16, c_dim=5)
    assert _layout(G) == expected_g_layout(arch, 16, 3, 64, 8, ZW, ZW, 2, c_dim=5)
    assert _layout(D) == expected_d_layout(arch, 16, 3, 64, 8, c_dim=5)
    c = torch.nn.functional.one_hot(torch.tensor([1, 4]), 5).float()
    with torch.no_grad():
        img = G(torch.randn(2, ZW), c)
        logits = D(img, c)
        other = D(img, c.flip(0))
    assert img.shape == (2, 3, 16, 16)
    assert logits.shape == (2, 1)
    assert float((logits - other).abs().max()) > 0  # the projection depends on the label


# ---------------------------------------------------------------------------------------- backward


def _assert_all_grads_finite_nonzero(module: torch.nn.Module) -> None:
    for name, p in module.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert bool(torch.isfinite(p.grad).all()), f"{name} has a non-finite gradient"
        assert float(p.grad.abs().max()) > 0, f"{name} has an all-zero gradient"


@pytest.mark.parametrize("style_block", ["demod", "adain"])
@pytest.mark.parametrize("arch", ARCHS)
def test_generator_backward(arch, style_block):
    torch.manual_seed(2)
    G = Generator(z_dim=ZW, c_dim=5, w_dim=ZW, img_resolution=16, channel_base=64, channel_max=8,
                  architecture=arch, style_block=style_block, mapping_kwargs=dict(num_layers=2)).double()
    c = torch.nn.functional.one_hot(torch.tensor([0, 3]), 5).double()
    img = G(torch.randn(2, ZW, dtype=torch.float64), c, noise_mode="random")
    img.square().mean().backward()
    _assert_all_grads_finite_nonzero(G)


@pytest.mark.parametrize("c_dim", [0, 5])
@pytest.mark.parametrize("arch", ARCHS)
def test_discriminator_backward(arch, c_dim):
    torch.manual_seed(3)
    D = Discriminator(c_dim=c_dim, img_resolution=16, channel_base=64, channel_max=8, architecture=arch,
                      mbstd_group_size=2).double()
    img = torch.randn(4, 3, 16, 16, dtype=torch.float64, requires_grad=True)
    c = torch.nn.functional.one_hot(torch.tensor([0, 3, 1, 2]), 5).double() if c_dim else None
    torch.nn.functional.softplus(D(img, c)).sum().backward()
    _assert_all_grads_finite_nonzero(D)
    assert img.grad is not None and bool(torch.isfinite(img.grad).all())
