"""networks/kwargs.py's rule: the official arguments always, the project's extensions only when not default; and a
network rebuilt from what it recorded is the same network (same parameters, same outputs)."""

from __future__ import annotations

import pytest
import torch

from stylegan.networks import Discriminator, Generator

SMALL = dict(img_resolution=16, img_channels=1, channel_base=64, channel_max=8)
G_OFFICIAL = {"z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "channel_base", "channel_max",
              "architecture", "style_block", "conv_clamp", "use_noise", "fused_modconv_default", "mapping_kwargs"}
D_OFFICIAL = {"c_dim", "img_resolution", "img_channels", "channel_base", "channel_max", "architecture", "conv_clamp",
              "cmap_dim", "mbstd_group_size", "mbstd_num_channels", "mapping_kwargs"}


@pytest.mark.parametrize("extra, recorded", [
    ({}, {}),
    ({"output_activation": "tanh"}, {"output_activation": "tanh"}),
    ({"output_activation": "linear", "progressive": False}, {}),
    ({"architecture": "orig", "progressive": True}, {"progressive": True}),
    ({"c_dim": 3, "mapping_kwargs": {"num_layers": 1, "label_embedding": "concat"}}, {}),
])
def test_generator_records_official_kwargs_and_non_default_extensions(extra, recorded):
    torch.manual_seed(0)
    G = Generator(z_dim=8, w_dim=8, **SMALL, **{"mapping_kwargs": {"num_layers": 1}, **extra})
    assert set(G.init_kwargs) == G_OFFICIAL | set(recorded)
    assert {k: G.init_kwargs[k] for k in recorded} == recorded
    embedding = extra.get("mapping_kwargs", {}).get("label_embedding")
    assert G.init_kwargs["mapping_kwargs"] == {"num_layers": 1, **({"label_embedding": embedding} if embedding else {})}
    again = Generator(**G.init_kwargs)
    again.load_state_dict(G.state_dict())  # strict: the same parameters and buffers
    z, c = torch.randn(2, 8), torch.eye(3)[:2] if G.c_dim else None
    assert torch.equal(again(z, c, noise_mode="const"), G(z, c, noise_mode="const"))


@pytest.mark.parametrize("extra, recorded", [
    ({}, {}),
    ({"architecture": "orig", "downsampling": "blur_pool"}, {"downsampling": "blur_pool"}),
    ({"architecture": "orig", "progressive": True, "downsampling": "fir"}, {"progressive": True}),
    ({"c_dim": 3, "label_conditioning": "switch"}, {"label_conditioning": "switch"}),
])
def test_discriminator_records_official_kwargs_and_non_default_extensions(extra, recorded):
    torch.manual_seed(0)
    D = Discriminator(**SMALL, mbstd_group_size=2, **extra)
    assert set(D.init_kwargs) == D_OFFICIAL | set(recorded)
    assert {k: D.init_kwargs[k] for k in recorded} == recorded
    again = Discriminator(**D.init_kwargs)
    again.load_state_dict(D.state_dict())
    img, c = torch.randn(2, 1, 16, 16), torch.eye(3)[:2] if D.c_dim else None
    assert torch.equal(again(img, c), D(img, c))


def test_discriminator_refuses_extensions_that_need_orig():
    with pytest.raises(ValueError, match=r"downsampling='blur_pool'.*'orig'"):
        Discriminator(**SMALL, architecture="resnet", downsampling="blur_pool")
    with pytest.raises(ValueError, match="progressive growing needs the 'orig'"):
        Discriminator(**SMALL, architecture="skip", progressive=True)


def test_differences_name_each_recorded_argument_that_differs():
    from stylegan.networks.kwargs import differences

    saved = {"architecture": "skip", "conv_clamp": 256, "mapping_kwargs": {"num_layers": 8, "lr_multiplier": 0.01}}
    here = {"architecture": "resnet", "conv_clamp": None, "mapping_kwargs": {"num_layers": 2}, "progressive": True}
    assert differences(saved, here, "model.generator", "checkpoint") == [
        "model.generator.architecture='skip' in the checkpoint, 'resnet' here",
        "model.generator.conv_clamp=256 in the checkpoint, None here",
        "model.generator.mapping_kwargs.lr_multiplier=0.01 in the checkpoint, None here",
        "model.generator.mapping_kwargs.num_layers=8 in the checkpoint, 2 here",
        "model.generator.progressive=None in the checkpoint, True here"]
    assert differences(saved, here, "G", "file", only_shared=True, ignore={"conv_clamp"}) == [
        "G.architecture='skip' in the file, 'resnet' here", "G.mapping_kwargs.num_layers=8 in the file, 2 here"]
    assert differences(here, here, "G", "file") == []
