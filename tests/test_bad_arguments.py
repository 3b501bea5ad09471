"""Invalid configurations and inputs raise ValueError with a message naming the problem."""

from __future__ import annotations

import pytest
import torch

from stylegan.networks import Discriminator, Generator
from stylegan.networks.layers import Conv2dLayer
from stylegan.networks.modulation import modulated_conv2d

TINY = dict(channel_base=32, channel_max=8)
G_TINY = dict(z_dim=8, w_dim=8, mapping_kwargs=dict(num_layers=2), **TINY)


@pytest.mark.parametrize("net", ["G", "D"])
def test_unknown_architecture(net):
    with pytest.raises(ValueError, match="architecture 'unet'"):
        if net == "G":
            Generator(img_resolution=8, architecture="unet", **G_TINY)
        else:
            Discriminator(img_resolution=8, architecture="unet", **TINY)


@pytest.mark.parametrize("res", [0, 2, 3, 12, 48, 100])
@pytest.mark.parametrize("net", ["G", "D"])
def test_resolution_must_be_power_of_two_at_least_4(net, res):
    with pytest.raises(ValueError, match=f"img_resolution={res}.*power of two"):
        if net == "G":
            Generator(img_resolution=res, **G_TINY)
        else:
            Discriminator(img_resolution=res, **TINY)


def test_unknown_style_block():
    with pytest.raises(ValueError, match="style_block 'adain2'"):
        Generator(img_resolution=8, style_block="adain2", **G_TINY)


def test_unknown_fused_modconv_default():
    with pytest.raises(ValueError, match="fused_modconv_default"):
        Generator(img_resolution=8, fused_modconv_default="always", **G_TINY)


@pytest.mark.parametrize("style_block", ["demod", "adain"])
def test_unknown_noise_mode(style_block):
    G = Generator(img_resolution=8, style_block=style_block, **G_TINY)
    with pytest.raises(ValueError, match=r"noise_mode .*'constant'"):
        G(torch.randn(2, 8), noise_mode="constant")
    G_no_noise = Generator(img_resolution=8, style_block=style_block, use_noise=False, **G_TINY)
    with pytest.raises(ValueError, match="noise_mode"):
        G_no_noise(torch.randn(2, 8), noise_mode="constant")


@pytest.mark.parametrize("shape", [(2, 5, 8), (2, 4, 7), (2, 8), (4, 8, 2, 8)])
def test_wrong_ws_shape(shape):
    G = Generator(img_resolution=16, **G_TINY)
    assert G.num_ws == 6
    with pytest.raises(ValueError, match=r"ws of shape \[N, 6, 8\]"):
        G.synthesis(torch.randn(shape))


@pytest.mark.parametrize("shape", [(2, 1, 16, 16), (2, 3, 8, 8), (2, 3, 16, 8), (3, 16, 16), (2, 16, 16, 3)])
def test_wrong_image_shape_to_discriminator(shape):
    D = Discriminator(img_resolution=16, img_channels=3, mbstd_group_size=2, **TINY)
    with pytest.raises(ValueError, match=r"images of shape \[N, 3, 16, 16\]"):
        D(torch.randn(shape))


def test_conditional_networks_need_labels():
    G = Generator(img_resolution=8, c_dim=3, **G_TINY)
    D = Discriminator(img_resolution=8, c_dim=3, mbstd_group_size=2, **TINY)
    with pytest.raises(ValueError, match=r"labels c of shape \[N, 3\]"):
        G(torch.randn(2, 8))
    with pytest.raises(ValueError, match=r"labels c of shape \[N, 3\]"):
        D(torch.randn(2, 3, 8, 8))
    with pytest.raises(ValueError, match=r"got \(2, 2\)"):
        D(torch.randn(2, 3, 8, 8), torch.zeros(2, 2))


def test_discriminator_batch_not_divisible_by_group():
    D = Discriminator(img_resolution=8, mbstd_group_size=4, **TINY)
    with pytest.raises(ValueError, match="divisible"):
        D(torch.randn(6, 3, 8, 8))


def test_layer_argument_errors():
    with pytest.raises(ValueError, match="up=2 or down=2"):
        Conv2dLayer(2, 2, 3, up=2, down=2)
    with pytest.raises(ValueError, match="up=2 or down=2"):
        Conv2dLayer(2, 2, 3, down=4)
    with pytest.raises(ValueError, match="resample_filter"):
        modulated_conv2d(torch.randn(1, 2, 4, 4), torch.randn(3, 2, 3, 3), torch.ones(1, 2), up=2)


def test_channel_base_too_small_for_resolution():
    with pytest.raises(ValueError, match=r"channel_base=128 gives 0 channels at resolution 256"):
        Generator(img_resolution=256, channel_base=128, channel_max=16)
