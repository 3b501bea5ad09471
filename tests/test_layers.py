"""Equalized learning rate layers and bias_act (layers.py) against hand-written float64 formulas."""

from __future__ import annotations

import math

import pytest
import torch

from naive_ops import (
    DT,
    assert_rel_close,
    conv2d_ref,
    conv_down2_ref,
    conv_up2_ref,
    fir_taps,
    lrelu,
    upfirdn2d_ref,
)
from stylegan.networks import MappingNetwork
from stylegan.networks.layers import Conv2dLayer, FullyConnectedLayer, bias_act, normalize_2nd_moment

# ---------------------------------------------------------------------------------------- bias_act


def _bias_act_ref(x, b, act, gain, clamp):
    y = x + b[None, :, None, None] if b is not None else x
    y = lrelu(y) if act == "lrelu" else y
    y = y * gain
    return y if clamp is None else torch.minimum(torch.maximum(y, torch.tensor(-clamp, dtype=DT)),
                                                 torch.tensor(clamp, dtype=DT))


@pytest.mark.parametrize("clamp", [None, 0.7])
@pytest.mark.parametrize("gain", [1.0, math.sqrt(2), 0.3])
@pytest.mark.parametrize("act", ["linear", "lrelu"])
def test_bias_act_matches_formula(act, gain, clamp):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 5, 5, generator=g, dtype=DT)
    b = torch.randn(4, generator=g, dtype=DT)
    assert_rel_close(bias_act(x, b, act, gain, clamp), _bias_act_ref(x, b, act, gain, clamp), rtol=1e-15)
    ref = _bias_act_ref(x, None, act, gain, clamp)
    assert_rel_close(bias_act(x, None, act, gain, clamp), ref, rtol=1e-15)


def test_bias_act_order_bias_act_gain_clamp():
    x = torch.tensor([-1.0, 0.3, 2.0], dtype=DT).reshape(1, 3, 1, 1)
    b = torch.tensor([0.5, -0.5, 0.0], dtype=DT)
    y = bias_act(x, b, "lrelu", gain=2.0, clamp=3.0).flatten().tolist()
    # -1 + 0.5 = -0.5 -> lrelu -0.1 -> *2 = -0.2 ; 0.3 - 0.5 = -0.2 -> -0.04 -> -0.08 ; 2 -> 2 -> 4 -> clamp 3
    assert y == pytest.approx([-0.2, -0.08, 3.0], rel=1e-15)
    # (bias after lrelu would give -0.2*2+1=0.6...; clamp before gain would give 4.0 -> 6 or clamp(2)=2 -> 4)


def test_bias_act_rejects_unknown_activation():
    with pytest.raises(ValueError, match="activation"):
        bias_act(torch.zeros(1, 1, 1, 1), act="relu6")


# ---------------------------------------------------------------------------------------- FC layer


@pytest.mark.parametrize("lr", [1.0, 0.01, 0.37])
@pytest.mark.parametrize("act", ["linear", "lrelu"])
def test_fully_connected_effective_weight(act, lr):
    torch.manual_seed(0)
    fc = FullyConnectedLayer(7, 5, activation=act, lr_multiplier=lr, bias_init=0.25).double()
    with torch.no_grad():
        fc.bias.add_(torch.randn(5, dtype=DT))
    x = torch.randn(4, 7, dtype=DT)
    W, b = fc.weight.detach(), fc.bias.detach()
    y = torch.einsum("ni,oi->no", x, W * (lr / math.sqrt(7))) + b * lr
    if act == "lrelu":
        y = lrelu(y) * math.sqrt(2)
    assert_rel_close(fc(x), y, rtol=1e-13)


def test_fully_connected_without_bias_and_bias_init():
    fc = FullyConnectedLayer(3, 2, bias=False).double()
    assert fc.bias is None
    x = torch.randn(2, 3, dtype=DT)
    assert_rel_close(fc(x), x @ (fc.weight.detach() / math.sqrt(3)).T, rtol=1e-13)
    assert torch.equal(FullyConnectedLayer(3, 4, bias_init=1).bias.detach(), torch.ones(4))
    assert torch.equal(FullyConnectedLayer(3, 4).bias.detach(), torch.zeros(4))


@pytest.mark.parametrize("lr", [1.0, 0.01, 0.1])
def test_fully_connected_init_std_is_one_over_lr(lr):
    torch.manual_seed(1)
    fc = FullyConnectedLayer(256, 256, lr_multiplier=lr)
    std = float(fc.weight.detach().double().std())
    assert std == pytest.approx(1 / lr, rel=0.02)  # 65536 samples: sampling error ~0.3%
    # and the *effective* weight has std 1/sqrt(fan_in) whatever lr is
    assert std * fc.weight_gain == pytest.approx(1 / 16, rel=0.02)


# -------------------------------------------------------------------------------------- conv layer


def _conv_layer(cin, cout, k, seed=0, **kw):
    torch.manual_seed(seed)
    layer = Conv2dLayer(cin, cout, k, **kw).double()
    if layer.bias is not None:
        with torch.no_grad():
            layer.bias.copy_(torch.randn(cout, generator=torch.Generator().manual_seed(seed), dtype=DT))
    return layer


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("act", ["linear", "lrelu"])
def test_conv2d_layer_effective_weight(act, k):
    layer = _conv_layer(3, 4, k, activation=act)
    x = torch.randn(2, 3, 6, 5, dtype=DT)
    gain = 1 / math.sqrt(3 * k * k)
    y = conv2d_ref(x, layer.weight.detach() * gain, padding=k // 2) + layer.bias.detach()[None, :, None, None]
    if act == "lrelu":
        y = lrelu(y) * math.sqrt(2)
    assert_rel_close(layer(x), y, rtol=1e-13)


def test_conv2d_layer_gain_and_clamp():
    # resnet conv1: act gain sqrt(2) * g and clamp conv_clamp * g
    layer = _conv_layer(3, 4, 3, activation="lrelu", conv_clamp=0.5)
    x = torch.randn(2, 3, 6, 6, dtype=DT) * 3
    g = math.sqrt(0.5)
    b = layer.bias.detach()[None, :, None, None]
    y = conv2d_ref(x, layer.weight.detach() / math.sqrt(27), padding=1) + b
    y = (lrelu(y) * math.sqrt(2) * g).clamp(-0.5 * g, 0.5 * g)
    assert float((y.abs() == 0.5 * g).float().mean()) > 0.1
    assert_rel_close(layer(x, gain=g), y, rtol=1e-13)


def test_conv2d_layer_down2_3x3_is_fir_then_strided_conv():
    layer = _conv_layer(3, 4, 3, activation="lrelu", down=2)
    x = torch.randn(2, 3, 8, 8, dtype=DT)
    b = layer.bias.detach()[None, :, None, None]
    y = conv_down2_ref(x, layer.weight.detach() / math.sqrt(27), fir_taps()) + b
    assert_rel_close(layer(x), lrelu(y) * math.sqrt(2), rtol=1e-13)


def test_conv2d_layer_down2_1x1_is_downsample_then_conv():
    layer = _conv_layer(3, 4, 1, bias=False, down=2)  # the D resnet skip
    x = torch.randn(2, 3, 8, 8, dtype=DT)
    down = upfirdn2d_ref(x, fir_taps(), down=2, pad=(1, 1, 1, 1))
    ref = conv2d_ref(down, layer.weight.detach() / math.sqrt(3))
    assert_rel_close(layer(x), ref, rtol=1e-13)


def test_conv2d_layer_up2_1x1_is_conv_then_upsample():
    layer = _conv_layer(3, 4, 1, bias=False, up=2)  # the G resnet skip
    x = torch.randn(2, 3, 4, 4, dtype=DT)
    conv = conv2d_ref(x, layer.weight.detach() / math.sqrt(3))
    ref = upfirdn2d_ref(conv, fir_taps(), up=2, pad=(2, 1, 2, 1), gain=4)
    assert_rel_close(layer(x), ref, rtol=1e-13)


def test_conv2d_layer_up2_3x3_is_official_upsampling_conv():
    layer = _conv_layer(3, 4, 3, up=2)
    x = torch.randn(2, 3, 4, 5, dtype=DT)
    b = layer.bias.detach()[None, :, None, None]
    ref = conv_up2_ref(x, layer.weight.detach() / math.sqrt(27), fir_taps()) + b
    assert_rel_close(layer(x), ref, rtol=1e-13)


def test_conv2d_layer_init():
    torch.manual_seed(2)
    layer = Conv2dLayer(64, 64, 3)
    assert float(layer.weight.detach().double().std()) == pytest.approx(1.0, rel=0.03)
    assert torch.equal(layer.bias.detach(), torch.zeros(64))
    # persistent, as in the official state_dict layout: the [1,3,3,1] filter
    assert torch.equal(layer.state_dict()["resample_filter"], torch.outer(*[torch.tensor([1.0, 3, 3, 1])] * 2) / 64)


# -------------------------------------------------------------------------------------- mapping lr


def test_mapping_layers_use_lr_multiplier_001():
    torch.manual_seed(3)
    m = MappingNetwork(z_dim=512, c_dim=0, w_dim=512, num_ws=4)
    for i in range(8):
        fc = getattr(m, f"fc{i}")
        assert float(fc.weight.detach().double().std()) == pytest.approx(100.0, rel=0.02)
        assert fc.weight_gain == pytest.approx(0.01 / math.sqrt(512), rel=1e-15)
        assert fc.bias_gain == pytest.approx(0.01, rel=1e-15)
        assert fc.activation == "lrelu"


@torch.no_grad()
def test_random_mapping_layer_output_has_unit_scale():
    # He-style gain: lrelu(x W_eff^T) * sqrt(2) keeps the second moment of a unit-second-moment input ~1
    torch.manual_seed(4)
    fc = FullyConnectedLayer(512, 512, activation="lrelu", lr_multiplier=0.01).double()
    x = normalize_2nd_moment(torch.randn(256, 512, dtype=DT))
    rms = float(fc(x).square().mean().sqrt())
    # E[lrelu(u)^2] * 2 = (1 + 0.04) for u ~ N(0, 1): rms = sqrt(1.04)
    assert rms == pytest.approx(math.sqrt(1.04), rel=0.05)
    # the whole randomly initialised 8-layer mapping stays at unit scale too
    m = MappingNetwork(z_dim=512, c_dim=0, w_dim=512, num_ws=None)
    w = m(torch.randn(256, 512))
    assert 0.6 < float(w.double().square().mean().sqrt()) < 1.6
