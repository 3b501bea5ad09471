"""Official-format import/export: kwargs translation for every configuration, clear errors, round trips."""

from __future__ import annotations

import copy

import pytest
import torch

from references import OFFICIAL_FIXTURE
from stylegan.networks import Discriminator, Generator
from stylegan.official import (
    OfficialWeightsError,
    export_official,
    load_official,
    load_official_file,
)


def test_export_reproduces_official_blob(ref):
    G, D = load_official(ref)
    blob = export_official(G, D)
    for net in ("G", "D"):
        assert list(blob[net]) == list(ref[net]), f"{net}: official key order differs"
        for k, v in ref[net].items():
            assert torch.equal(blob[net][k], v), k


def test_filters_may_be_absent_but_not_different(ref):
    no_filters = {k: v for k, v in ref["G"].items() if not k.endswith("resample_filter")}
    G, _ = load_official({"G": no_filters, "G_kwargs": ref["G_kwargs"]})
    assert torch.equal(G.synthesis.b8.conv0.resample_filter, ref["G"]["synthesis.b8.conv0.resample_filter"])
    bad = copy.deepcopy(ref)
    bad["D"]["b16.conv1.resample_filter"] = torch.full([4, 4], 1 / 16)
    with pytest.raises(OfficialWeightsError, match=r"b16.conv1.resample_filter is not the \[1,3,3,1\] filter"):
        load_official(bad)


def test_absent_network_is_none(ref):
    G, D = load_official({"G": ref["G"], "G_kwargs": ref["G_kwargs"], "D": None})
    assert isinstance(G, Generator) and D is None
    G, D = load_official({"D": ref["D"], "D_kwargs": ref["D_kwargs"]})
    assert G is None and isinstance(D, Discriminator)


def test_key_errors_are_listed_together(ref):
    bad = copy.deepcopy(ref)
    del bad["G"]["synthesis.b8.conv0.weight"]
    bad["G"]["synthesis.b8.extra"] = torch.zeros(1)
    bad["G"]["mapping.fc1.bias"] = torch.zeros(3)
    with pytest.raises(OfficialWeightsError) as e:
        load_official(bad)
    msg = str(e.value)
    assert "\n" not in msg
    for part in ("missing keys ['synthesis.b8.conv0.weight']", "unexpected keys ['synthesis.b8.extra']",
                 "mapping.fc1.bias: (3,) vs ours (64,)"):
        assert part in msg


def test_unknown_or_unsupported_kwargs(ref):
    bad = copy.deepcopy(ref)
    bad["G_kwargs"]["mapping_kwargs"]["warp"] = 3
    with pytest.raises(OfficialWeightsError, match=r"G_kwargs.mapping_kwargs: unknown official arguments \['warp'\]"):
        load_official(bad)
    bad = copy.deepcopy(ref)
    bad["D_kwargs"]["block_kwargs"] = {"resample_filter": [1, 2, 1], "freeze_layers": 2}
    with pytest.raises(OfficialWeightsError, match=r"resample_filter=\[1, 2, 1\]"):
        load_official(bad)
    with pytest.raises(OfficialWeightsError, match="no 'G_kwargs'"):
        load_official({"G": ref["G"]})


def test_ada_nested_synthesis_kwargs(ref):
    """stylegan2-ada-pytorch nests the synthesis arguments; it loads to the same network."""
    kw = copy.deepcopy(ref["G_kwargs"])
    synth = {k: kw.pop(k) for k in ("channel_base", "channel_max", "num_fp16_res", "conv_clamp", "architecture")}
    kw.pop("fused_modconv_default")
    kw["class_name"] = "training.networks.Generator"
    G_ada, _ = load_official({"G": ref["G"], "G_kwargs": {**kw, "synthesis_kwargs": synth}})
    G, _ = load_official(ref)
    z = ref["inputs"]["z"]
    with torch.no_grad():
        assert torch.allclose(G_ada.eval()(z, noise_mode="const"), G.eval()(z, noise_mode="const"), atol=1e-5)


CONFIGS = [
    dict(g_arch="orig", d_arch="orig", res=32, c_dim=0, map_layers=2, clamp=256),
    dict(g_arch="resnet", d_arch="skip", res=32, c_dim=0, map_layers=2, clamp=None),
    dict(g_arch="skip", d_arch="resnet", res=64, c_dim=0, map_layers=8, clamp=0.5),
    dict(g_arch="skip", d_arch="skip", res=16, c_dim=4, map_layers=2, clamp=256),
    dict(g_arch="resnet", d_arch="orig", res=16, c_dim=3, map_layers=8, clamp=64),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"g{c['g_arch']}-d{c['d_arch']}-r{c['res']}-c{c['c_dim']}")
def test_round_trip_every_configuration(cfg):
    """Export in official format, re-import from the official kwargs alone: identical outputs."""
    torch.manual_seed(0)
    common = dict(c_dim=cfg["c_dim"], img_resolution=cfg["res"], img_channels=3, channel_base=256,
                  channel_max=16, architecture=None, conv_clamp=cfg["clamp"])
    G = Generator(z_dim=16, w_dim=16, mapping_kwargs={"num_layers": cfg["map_layers"]},
                  **{**common, "architecture": cfg["g_arch"]})
    D = Discriminator(mbstd_group_size=2, **{**common, "architecture": cfg["d_arch"]})
    with torch.no_grad():  # non-trivial biases, noise strengths and w_avg, as in the official dumps
        for name, p in [*G.named_parameters(), *D.named_parameters()]:
            if name.endswith(("bias", "noise_strength")):
                p.add_(torch.randn_like(p) * 0.3)
        G.mapping.w_avg.normal_()
    blob = export_official(G, D)
    G2, D2 = load_official(blob)
    z = torch.randn(4, 16)
    c = torch.eye(max(cfg["c_dim"], 1))[torch.arange(4) % max(cfg["c_dim"], 1), : cfg["c_dim"]]
    with torch.no_grad():
        img = G.eval()(z, c, truncation_psi=0.7, truncation_cutoff=3, noise_mode="const")
        assert torch.equal(img, G2.eval()(z, c, truncation_psi=0.7, truncation_cutoff=3, noise_mode="const"))
        assert torch.equal(D(img, c), D2(img, c))


def test_load_official_file(tmp_path, ref):
    G, D = load_official_file(OFFICIAL_FIXTURE)
    assert G.num_ws == 8 and D.img_resolution == 32
    with pytest.raises(FileNotFoundError, match=r"missing\.pt"):
        load_official_file(tmp_path / "missing.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(OfficialWeightsError, match=r"list\.pt"):
        load_official_file(tmp_path / "list.pt")


# Official constructor defaults, typed in from stylegan3 training/networks_stylegan2.py (flat G_kwargs) and
# stylegan2-ada-pytorch training/networks.py (nested synthesis_kwargs): SynthesisBlock / Discriminator conv_clamp
# 256 vs None; SynthesisBlock fused_modconv_default True (stylegan3) vs none (ada fuses in inference only).
DEFAULTS = {"stylegan3": dict(g_clamp=256, d_clamp=256, fused=True),
            "ada": dict(g_clamp=None, d_clamp=None, fused="inference_only")}


@pytest.mark.parametrize("form", ["stylegan3", "ada"])
def test_left_out_kwargs_take_the_official_constructor_defaults(ref, form):
    kw = copy.deepcopy(ref["G_kwargs"])
    kw.pop("conv_clamp"), kw.pop("fused_modconv_default")
    if form == "ada":
        kw["synthesis_kwargs"] = {k: kw.pop(k) for k in ("channel_base", "channel_max", "architecture")}
    d_kw = copy.deepcopy(ref["D_kwargs"])
    d_kw.pop("conv_clamp")
    G, D = load_official({"G": ref["G"], "G_kwargs": kw, "D": ref["D"], "D_kwargs": d_kw})
    want = DEFAULTS[form]
    assert (G.init_kwargs["conv_clamp"], D.init_kwargs["conv_clamp"]) == (want["g_clamp"], want["d_clamp"])
    assert G.init_kwargs["fused_modconv_default"] == want["fused"]
    # a value given explicitly wins over the defaults (a loader that always took them would give 256 / None)
    G, D = load_official({"G": ref["G"], "G_kwargs": {**kw, "conv_clamp": 64}, "D": ref["D"],
                          "D_kwargs": {**d_kw, "conv_clamp": 32}})
    assert (G.init_kwargs["conv_clamp"], D.init_kwargs["conv_clamp"]) == (64, 32)


def test_noise_free_generator_exports_and_round_trips():
    """The official layer has use_noise: a G without noise inputs is a valid official network (no noise keys)."""
    torch.manual_seed(0)
    G = Generator(z_dim=16, w_dim=16, img_resolution=16, img_channels=3, channel_base=256, channel_max=16,
                  use_noise=False, mapping_kwargs={"num_layers": 2}).eval()
    blob = export_official(G)
    assert blob["G_kwargs"]["use_noise"] is False and not any("noise" in k for k in blob["G"])
    G2, _ = load_official(blob)
    z = torch.randn(3, 16)
    with torch.no_grad():
        assert torch.equal(G(z, None), G2.eval()(z, None))
    with pytest.raises(OfficialWeightsError, match="only style_block='demod'"):
        export_official(Generator(z_dim=16, w_dim=16, img_resolution=16, img_channels=3, channel_base=256,
                                  channel_max=16, style_block="adain", mapping_kwargs={"num_layers": 2}))
