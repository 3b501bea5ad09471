"""``model.generator.output_activation``: 'linear' is the paper's G; 'tanh' squashes the summed ToRGB output."""

from __future__ import annotations

import pytest
import torch

from stylegan.evaluate import load_generator
from stylegan.networks import Generator
from stylegan.official import OfficialWeightsError, export_official

G_TINY = dict(z_dim=8, w_dim=8, img_resolution=16, img_channels=1, channel_base=64, channel_max=8,
              mapping_kwargs=dict(num_layers=2))


@pytest.mark.parametrize("architecture", ["orig", "skip", "resnet"])
def test_tanh_is_tanh_of_the_linear_generator(architecture):
    torch.manual_seed(0)
    lin = Generator(architecture=architecture, **G_TINY).double()
    tanh = Generator(architecture=architecture, output_activation="tanh", **G_TINY).double()
    tanh.load_state_dict(lin.state_dict())  # no parameters of its own: the same state_dict keys
    z = torch.randn(5, 8, dtype=torch.float64) * 3
    expected = torch.tanh(lin(z, noise_mode="const"))
    torch.testing.assert_close(tanh(z, noise_mode="const"), expected, rtol=1e-12, atol=1e-12)
    assert "output_activation" not in lin.init_kwargs  # the official kwargs stay official


def test_unknown_output_activation():
    with pytest.raises(ValueError, match=r"output_activation must be one of .*'sigmoid'"):
        Generator(output_activation="sigmoid", **G_TINY)


def test_tanh_generator_is_not_exported_to_the_official_format():
    with pytest.raises(OfficialWeightsError, match="output_activation=tanh"):
        export_official(Generator(output_activation="tanh", **G_TINY))
    assert export_official(Generator(**G_TINY))["G_kwargs"]["z_dim"] == 8


def test_checkpoint_rebuilds_the_tanh_generator(tmp_path):
    torch.manual_seed(1)
    G = Generator(output_activation="tanh", **G_TINY).eval()
    state = {f"G_ema.{k}": v for k, v in G.state_dict().items()}
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": state, "stylegan": {"G_kwargs": G.init_kwargs, "cur_nimg": 2000}}, path)
    loaded, kimg = load_generator(path)
    z = torch.randn(4, 8) * 4
    assert kimg == 2.0 and loaded.synthesis.output_activation == "tanh"
    torch.testing.assert_close(loaded(z, noise_mode="const"), G(z, noise_mode="const"), rtol=0, atol=0)
    assert loaded(z, noise_mode="const").abs().max() < 1
