"""FIR resampling (resample.py) against explicit float64 references (tests/naive_ops.py).

The references zero-stuff into a zeros tensor, pad by index copying, convolve tap by tap and decimate by
slicing; the fast paths must equal the OFFICIAL_LAYOUT definitions to ~1e-12 relative.
"""

from __future__ import annotations

import pytest
import torch

from naive_ops import (
    DT,
    assert_rel_close,
    conv2d_ref,
    conv_down2_ref,
    conv_up2_ref,
    fir_taps,
    upfirdn2d_ref,
    zero_pad,
    zero_stuff,
)
from stylegan.networks.resample import (
    conv_down2,
    conv_up2,
    downsample2d,
    filter2d,
    setup_filter,
    upfirdn2d,
    upsample2d,
)

SIZES = [(4, 4), (5, 5), (8, 8), (4, 7), (5, 8)]  # even, odd, non-square (H, W)


def _x(h: int, w: int, n: int = 2, c: int = 3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, h, w, generator=g, dtype=DT)


def _asym_filter(kh: int = 4, kw: int = 4) -> torch.Tensor:
    g = torch.Generator().manual_seed(123)
    return torch.rand(kh, kw, generator=g, dtype=DT) + 0.1


# ------------------------------------------------------------------------------------------ filter


def test_filter_is_normalised_separable_binomial():
    f = setup_filter()
    assert f.shape == (4, 4)
    assert_rel_close(f.to(DT), fir_taps(), rtol=1e-7)  # buffer is float32; 1/64 multiples are exact anyway
    assert f.to(DT).sum().item() == pytest.approx(1.0, abs=1e-7)
    # separable: f equals the outer product of its marginals, which are [1, 3, 3, 1] / 8
    row, col = f.to(DT).sum(1), f.to(DT).sum(0)
    assert_rel_close(row, torch.tensor([1, 3, 3, 1], dtype=DT) / 8, rtol=1e-7)
    assert_rel_close(col, torch.tensor([1, 3, 3, 1], dtype=DT) / 8, rtol=1e-7)
    assert_rel_close(f.to(DT), torch.outer(row, col), rtol=1e-7)
    assert torch.linalg.matrix_rank(f.to(DT)).item() == 1
    assert torch.equal(f, f.flip(0)) and torch.equal(f, f.flip(1)) and torch.equal(f, f.T)


def test_reference_zero_stuffing_and_padding_conventions():
    # sanity of the reference helpers themselves (samples at even indices; pad order left, right, top, bottom)
    x = torch.arange(6, dtype=DT).reshape(1, 1, 2, 3) + 1
    u = zero_stuff(x, 2)
    assert u.shape == (1, 1, 4, 6)
    assert torch.equal(u[0, 0, 0], torch.tensor([1, 0, 2, 0, 3, 0], dtype=DT))
    assert torch.equal(u[0, 0, 1], torch.zeros(6, dtype=DT))
    p = zero_pad(x, (1, 0, 0, 2))
    assert p.shape == (1, 1, 4, 4)
    assert torch.equal(p[0, 0, 0], torch.tensor([0, 1, 2, 3], dtype=DT))
    assert torch.equal(p[0, 0, 2:], torch.zeros(2, 4, dtype=DT))
    assert torch.equal(zero_pad(x, (-1, 0, 0, -1))[0, 0], torch.tensor([[2, 3]], dtype=DT))


# --------------------------------------------------------------------------------------- upfirdn2d


UPFIRDN_CASES = [
    # (up, down, pad, gain)
    (1, 1, (0, 0, 0, 0), 1.0),
    (1, 1, (1, 2, 3, 0), 1.0),
    (2, 1, (2, 1, 2, 1), 4.0),
    (1, 2, (1, 1, 1, 1), 1.0),
    (2, 2, (1, 2, 0, 3), 2.5),
    (3, 1, (2, 2, 1, 3), 9.0),
    (1, 1, (-1, 2, 3, -2), 1.0),  # negative pads crop
    (2, 3, (-2, 1, 0, -1), 1.5),
]


@pytest.mark.parametrize("case", UPFIRDN_CASES, ids=str)
@pytest.mark.parametrize("hw", [(5, 5), (4, 7)], ids=str)
def test_upfirdn2d_matches_naive_reference_symmetric_filter(case, hw):
    up, down, pad, gain = case
    x = _x(*hw)
    f = setup_filter().to(DT)
    assert_rel_close(upfirdn2d(x, f, up=up, down=down, pad=pad, gain=gain),
                     upfirdn2d_ref(x, fir_taps(), up, down, pad, gain), rtol=1e-12)


@pytest.mark.parametrize("case", UPFIRDN_CASES, ids=str)
@pytest.mark.parametrize("fshape", [(4, 4), (3, 2)], ids=str)
def test_upfirdn2d_is_a_true_convolution_with_asymmetric_filters(case, fshape):
    # an asymmetric (and non-square) filter distinguishes convolution from cross-correlation and x from y
    up, down, pad, gain = case
    x = _x(5, 6, seed=1)
    f = _asym_filter(*fshape)
    assert_rel_close(upfirdn2d(x, f, up=up, down=down, pad=pad, gain=gain),
                     upfirdn2d_ref(x, f, up, down, pad, gain), rtol=1e-12)


def test_upfirdn2d_impulse_response_is_the_filter():
    # a single impulse padded by (3, 3) on each side comes back as the (unflipped) filter
    x = torch.zeros(1, 1, 1, 1, dtype=DT)
    x[0, 0, 0, 0] = 1
    f = _asym_filter()
    y = upfirdn2d(x, f, pad=(3, 3, 3, 3))
    assert torch.equal(y[0, 0], f)


# -------------------------------------------------------------------------------------- fast paths


@pytest.mark.parametrize("hw", SIZES, ids=str)
def test_upsample2d_equals_definition(hw):
    x = _x(*hw)
    y = upsample2d(x, setup_filter().to(DT))
    assert y.shape == (2, 3, 2 * hw[0], 2 * hw[1])
    assert_rel_close(y, upfirdn2d_ref(x, fir_taps(), up=2, pad=(2, 1, 2, 1), gain=4), rtol=1e-12)


@pytest.mark.parametrize("hw", SIZES, ids=str)
def test_downsample2d_equals_definition(hw):
    x = _x(*hw)
    y = downsample2d(x, setup_filter().to(DT))
    ref = upfirdn2d_ref(x, fir_taps(), down=2, pad=(1, 1, 1, 1))
    assert y.shape == ref.shape == (2, 3, hw[0] // 2, hw[1] // 2)  # (n + 2 - 3) samples, every 2nd
    assert_rel_close(y, ref, rtol=1e-12)


@pytest.mark.parametrize("groups", [1, 2, 3])
@pytest.mark.parametrize("hw", SIZES, ids=str)
def test_conv_up2_equals_official_upsampling_conv(hw, groups):
    g = torch.Generator().manual_seed(7)
    cin_g, cout_g = 2, 3
    x = torch.randn(2, groups * cin_g, *hw, generator=g, dtype=DT)
    w = torch.randn(groups * cout_g, cin_g, 3, 3, generator=g, dtype=DT)
    y = conv_up2(x, w, setup_filter().to(DT), groups=groups)
    assert y.shape == (2, groups * cout_g, 2 * hw[0], 2 * hw[1])
    assert_rel_close(y, conv_up2_ref(x, w, fir_taps(), groups=groups), rtol=1e-12)


def test_conv_up2_weight_acts_as_true_convolution():
    # with an asymmetric kernel, the cross-correlation version of the same formula must NOT match
    x = _x(4, 5, n=1, c=2)
    w = torch.randn(3, 2, 3, 3, generator=torch.Generator().manual_seed(3), dtype=DT)
    y = conv_up2(x, w, setup_filter().to(DT))
    u = upfirdn2d_ref(x, fir_taps(), up=2, pad=(3, 2, 3, 2), gain=4)
    assert_rel_close(y, conv2d_ref(u, w.flip([2, 3])), rtol=1e-12)
    assert (y - conv2d_ref(u, w)).abs().max() > 1e-3


@pytest.mark.parametrize("hw", SIZES, ids=str)
def test_conv_down2_equals_official_downsampling_conv(hw):
    g = torch.Generator().manual_seed(11)
    x = torch.randn(2, 3, *hw, generator=g, dtype=DT)
    w = torch.randn(4, 3, 3, 3, generator=g, dtype=DT)
    y = conv_down2(x, w, setup_filter().to(DT))
    ref = conv_down2_ref(x, w, fir_taps())
    assert y.shape == ref.shape
    assert_rel_close(y, ref, rtol=1e-12)
    if hw[0] % 2 == 0 and hw[1] % 2 == 0:
        assert y.shape[2:] == (hw[0] // 2, hw[1] // 2)


def test_filter2d_is_symmetric_padded_true_convolution():
    x = _x(5, 6)
    f = _asym_filter()
    ref = upfirdn2d_ref(x, f, pad=(2, 2, 2, 2), gain=3.0)
    assert_rel_close(filter2d(x, f, pad=2, gain=3.0), ref, rtol=1e-12)


def test_upsample2d_equals_definition_for_asymmetric_filter():
    x = _x(4, 5)
    f = _asym_filter()
    assert_rel_close(upsample2d(x, f), upfirdn2d_ref(x, f, up=2, pad=(2, 1, 2, 1), gain=4), rtol=1e-12)


def test_downsample2d_equals_definition_for_asymmetric_filter():
    x = _x(6, 5)
    f = _asym_filter()
    assert_rel_close(downsample2d(x, f), upfirdn2d_ref(x, f, down=2, pad=(1, 1, 1, 1)), rtol=1e-12)


# --------------------------------------------------------------------------------- constant images


def _interior_up(n: int) -> list[bool]:
    # output o = sum_i x[i] * f1[o - 2i + 1] (pad 2 before the 4-tap filter); unaffected by padding iff every
    # input index i with 0 <= o - 2i + 1 <= 3 lies inside [0, n)
    out = []
    for o in range(2 * n):
        idx = [i for i in range(-3, n + 3) if 0 <= o - 2 * i + 1 <= 3]
        out.append(all(0 <= i < n for i in idx))
    return out


def _interior_down(n: int) -> list[bool]:
    # output o reads padded samples 2o .. 2o+3, i.e. input indices 2o-1 .. 2o+2 (pad 1)
    m = (n + 2 - 4) // 2 + 1
    return [all(0 <= i < n for i in range(2 * o - 1, 2 * o + 3)) for o in range(m)]


@pytest.mark.parametrize("hw", [(4, 4), (8, 8), (5, 7), (9, 6)], ids=str)
def test_upsample2d_keeps_constant_image_constant_in_interior(hw):
    c = 1.7
    y = upsample2d(torch.full((1, 2, *hw), c, dtype=DT), setup_filter().to(DT))[0, 0]
    rows, cols = _interior_up(hw[0]), _interior_up(hw[1])
    # derived by hand: exactly one output pixel on each side sees the zero padding
    assert rows == [False] + [True] * (2 * hw[0] - 2) + [False]
    inside = torch.tensor(rows)[:, None] & torch.tensor(cols)[None, :]
    assert_rel_close(y[inside], torch.full_like(y[inside], c), rtol=1e-14)
    assert bool((y[~inside] < c - 1e-3).all())
    # the border row keeps the tap 3/8 of the 1-D filter 2 * [1,3,3,1] / 8: value 3/4 c, corners 9/16 c
    assert y[0, 1].item() == pytest.approx(0.75 * c, rel=1e-14)
    assert y[0, 0].item() == pytest.approx(0.5625 * c, rel=1e-14)


@pytest.mark.parametrize("hw", [(4, 4), (8, 8), (9, 9), (8, 11)], ids=str)
def test_downsample2d_keeps_constant_image_constant_in_interior(hw):
    c = -2.3
    y = downsample2d(torch.full((1, 2, *hw), c, dtype=DT), setup_filter().to(DT))[0, 1]
    rows, cols = _interior_down(hw[0]), _interior_down(hw[1])
    inside = torch.tensor(rows)[:, None] & torch.tensor(cols)[None, :]
    assert bool(inside.any()) == (min(hw) > 4)  # at n = 4 both outputs touch the padding
    if inside.any():
        assert_rel_close(y[inside], torch.full_like(y[inside], c), rtol=1e-14)
    assert bool((y[~inside] > c + 1e-3).all())  # c < 0: missing taps move the value toward 0
    # the first output row misses the outer tap 1/8 of [1,3,3,1]/8: 7/8 c, corner (7/8)^2 c; the last row is
    # interior exactly for odd n
    assert y[0, 0].item() == pytest.approx(49 / 64 * c, rel=1e-14)
    if any(cols):
        assert y[0, cols.index(True)].item() == pytest.approx(7 / 8 * c, rel=1e-14)
    assert rows[-1] == (hw[0] % 2 == 1)
