"""``stylegan analyze`` (issue 30, droplets and contributions): the spike ratio and co-location on hand-built feature
maps, the probe sitting exactly at the input of the normalization, the contributions against a float64 re-synthesis
block by block, and the CLI end to end with one-line errors before any work."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from naive_ops import fir_taps, upfirdn2d_ref
from references import OFFICIAL_FIXTURE
from stylegan.analysis.contributions import contribution_stds, shares, torgb_contributions
from stylegan.analysis.droplets import measure, probe_points, spike_stats
from stylegan.networks import Generator
from stylegan.networks.modulation import instance_norm
from stylegan.official import load_official_file
from stylegan.tools.__main__ import main
from stylegan.tools.generate import seed_latents


def _fixture() -> Generator:
    return load_official_file(OFFICIAL_FIXTURE)[0].eval()


def _tiny(style_block: str = "demod", architecture: str = "skip", seed: int = 0) -> Generator:
    torch.manual_seed(seed)
    G = Generator(z_dim=8, w_dim=8, img_resolution=16, img_channels=3, channel_base=256, channel_max=16,
                  architecture=architecture, style_block=style_block, mapping_kwargs={"num_layers": 2}).eval()
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.normal_()  # noise on (init 0), so the maps are not just the conv of the constant
    return G


def _ckpt(G: Generator, path, cur_nimg: int = 1000):
    """The layout stylegan-train writes (state_dict with G_ema.*, stylegan.G_kwargs, cur_nimg)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {f"G_ema.{k}": v for k, v in G.state_dict().items()},
                "stylegan": {"G_kwargs": G.init_kwargs, "cur_nimg": cur_nimg}}, path)
    return path


def test_spike_ratio_and_colocation_on_planted_spikes():
    x = torch.ones(2, 4, 4, 4, dtype=torch.float64)
    x[0, 0, 1, 2] = 10  # 15 ones and a 10: median 1, ratio 10, argmax (1, 2)
    x[0, 1] = 2
    x[0, 1, 2, 3] = -6  # |x|: ratio 6 / 2 = 3, argmax (2, 3), one step diagonal from (1, 2): near
    x[0, 2, :2] = 3
    x[0, 2, 1, 2] = 8  # rows 2-3 ones, rows 0-1 threes but an 8: median (1 + 3) / 2 = 2, ratio 4, argmax (1, 2)
    x[0, 3, 3, 0] = 5  # ratio 5, argmax (3, 0): two steps from (1, 2), far
    for c, (i, j) in enumerate([(0, 0), (0, 3), (3, 0), (3, 3)]):
        x[1, c, i, j] = 7.0 + c  # four different corners: a four-way tie, the mode is the first (0, 0)
    ratio, coloc = spike_stats(x)
    assert ratio.tolist() == [[10.0, 3.0, 4.0, 5.0], [7.0, 8.0, 9.0, 10.0]]
    assert coloc.tolist() == [0.75, 0.25]  # (1, 2) holds 2 of 4 argmaxes; 3 of 4 within 1 px / only (0, 0)
    odd = torch.ones(1, 3, 3, 3)  # 9 pixels: the median is the 5th value
    odd[0, 0, 2, 2] = 4
    odd[0, 1] = 0  # median 0: left out (NaN); its argmax is the first pixel (0, 0)
    odd[0, 2, 1, 1] = 3
    ratio, coloc = spike_stats(odd)
    assert ratio[0, [0, 2]].tolist() == [4.0, 3.0] and math.isnan(ratio[0, 1].item())
    assert coloc.tolist() == [pytest.approx(2 / 3)]  # argmaxes (2,2), (0,0), (1,1): a tie, the mode is (0,0)


@pytest.mark.parametrize("style_block", ["adain", "stylegan1"])
def test_the_probe_is_the_input_of_the_instance_norm(style_block):
    """layer output == IN(probed tensor) * scale + shift with the layer's own styles: the tensor measured is the
    activation right before AdaIN's normalization, where the paper locates the droplet."""
    G = _tiny(style_block)
    seen: dict = {}
    points = probe_points(G)
    for name, _, probe in points:
        layer = G.synthesis.get_submodule(name)
        assert probe is layer.pre_norm
        probe.register_forward_hook(lambda m, i, o, name=name: seen.setdefault(name, {}).update(pre=o))
        layer.register_forward_hook(lambda m, i, o, name=name: seen.setdefault(name, {}).update(w=i[1], out=o))
    with torch.no_grad():
        G(seed_latents([1, 2], 8), None, noise_mode="const")
    assert set(seen) == {name for name, _, _ in points}
    for name, got in seen.items():
        layer = G.synthesis.get_submodule(name)
        scale, shift = layer.affine(got["w"]).chunk(2, dim=1)
        expected = instance_norm(got["pre"]) * scale[:, :, None, None] + shift[:, :, None, None]
        torch.testing.assert_close(got["out"], expected, rtol=1e-5, atol=1e-5)
        assert got["pre"].mean(dim=[2, 3]).abs().max() > 1e-3  # not already normalized


@pytest.mark.parametrize("style_block,names", [
    ("demod", ["b4.conv1", "b8.conv0", "b8.conv1", "b16.conv0", "b16.conv1"]),
    ("revised", ["b4.conv1", "b8.conv0", "b8.conv1", "b16.conv0", "b16.conv1"]),
    ("stylegan1", ["b4.const_style", "b4.conv1", "b8.conv0", "b8.conv1", "b16.conv0", "b16.conv1"]),
])
def test_droplet_rows_are_the_medians_of_every_layer(style_block, names):
    G = _tiny(style_block)
    captured: dict = {}
    for name, _, probe in probe_points(G):
        probe.register_forward_hook(lambda m, i, o, name=name: captured.setdefault(name, []).append(o.double()))
    result = measure(G, [0, 1, 2], batch_size=2, keep=2)
    rows = result.rows()
    assert [r["layer"] for r in rows] == names + ["all"] * 3
    assert len(result.images) == 2 and all(len(result.maps[n]) == 1 for n in names)  # 2 seeds kept, batch 1 only
    by_res: dict = {}
    for r in rows[: len(names)]:
        a = torch.cat(captured[r["layer"]]).abs().flatten(2).numpy()  # [3, C, H*W], float64, numpy's median
        ratio = a.max(axis=-1) / np.median(a, axis=-1)
        assert r["resolution"] == int(r["layer"].split(".")[0][1:])
        assert r["spike_ratio"] == pytest.approx(np.median(ratio), rel=1e-5)
        by_res.setdefault(r["resolution"], []).append(ratio.ravel())
    for r in rows[len(names):]:
        assert r["spike_ratio"] == pytest.approx(np.median(np.concatenate(by_res[r["resolution"]])), rel=1e-5)


def _by_hand(G: Generator, seeds: list[int]) -> tuple[dict[int, float], torch.Tensor, torch.Tensor]:
    """Each block run alone with img=None (its output is then its ToRGB alone), up-sampled by the float64 reference
    upfirdn2d, std over the seeds (numpy, ddof=1) averaged; also their sum and G's image."""
    syn = G.synthesis
    z = seed_latents(seeds, G.z_dim)
    with torch.no_grad():
        ws = G.mapping(z, None)
        img = G(z, None, noise_mode="const")
        x, w_idx, total, stds = None, 0, 0, {}
        for res in syn.block_resolutions:
            block = getattr(syn, f"b{res}")
            x, y = block(x, None, ws.narrow(1, w_idx, block.num_conv + block.num_torgb), "const", True)
            w_idx += block.num_conv
            y = y.double()
            while y.shape[-1] < G.img_resolution:
                y = upfirdn2d_ref(y, fir_taps(), up=2, pad=(2, 1, 2, 1), gain=4)
            stds[res] = float(np.std(y.numpy(), axis=0, ddof=1).mean())
            total = total + y
    return stds, total, img


def test_contributions_equal_hand_computed_stds_on_the_official_fixture():
    G = _fixture()
    seeds = [0, 1, 2, 3, 4, 5]
    expected, total, img = _by_hand(G, seeds)
    torch.testing.assert_close(total, img.double(), rtol=0, atol=1e-4)  # the contributions sum to the image
    got = contribution_stds(G, seeds, batch_size=4)
    assert list(got) == [4, 8, 16, 32]
    for res in got:
        assert got[res] == pytest.approx(expected[res], rel=1e-5), res
    share = shares(got)
    assert sum(share.values()) == pytest.approx(100.0, abs=1e-9) and min(share.values()) > 0
    up, image = torgb_contributions(G, seed_latents(seeds, G.z_dim), torch.zeros(6, 0))
    torch.testing.assert_close(sum(up.values()), image, rtol=0, atol=1e-5)
    with torch.no_grad():  # zero the 32x32 ToRGB: that resolution contributes exactly 0, the rest still sum to 100
        G.synthesis.b32.torgb.weight.zero_()
        G.synthesis.b32.torgb.bias.zero_()
    share = shares(contribution_stds(G, seeds, batch_size=4))
    assert share[32] == 0.0 and sum(share.values()) == pytest.approx(100.0, abs=1e-9)


@pytest.mark.parametrize("style_block", ["adain", "stylegan1"])
def test_contributions_sum_to_the_image_for_other_style_blocks(style_block):
    """StyleGAN1's skip G has unstyled ToRGBs (plain 1x1 convs): the same hooks and up-sampling apply."""
    G = _tiny(style_block)
    up, img = torgb_contributions(G, seed_latents([0, 1], 8), torch.zeros(2, 0))
    assert sorted(up) == [4, 8, 16] and all(y.shape == img.shape for y in up.values())
    torch.testing.assert_close(sum(up.values()), img, rtol=0, atol=1e-5)


def _csv(path) -> list[list[str]]:
    return [line.split(",") for line in path.read_text().splitlines()]


def test_cli_end_to_end_on_the_fixture(tmp_path, capsys):
    G = _fixture()
    out = tmp_path / "a"
    assert main(["analyze", "contributions", "--model", str(OFFICIAL_FIXTURE), "--out", str(out), "--seeds", "0-5",
                 "--device", "cpu"]) == 0
    rows = _csv(out / "contributions.csv")
    stds = contribution_stds(G, list(range(6)))
    assert rows[0] == ["resolution", "share", "std"]
    assert [(int(r), float(s), float(d)) for r, s, d in rows[1:]] == [(r, shares(stds)[r], stds[r]) for r in stds]
    assert main(["analyze", "droplets", "--model", str(OFFICIAL_FIXTURE), "--out", str(out), "--seeds", "0-2",
                 "--device", "cpu"]) == 0
    rows = _csv(out / "droplets.csv")
    expected = measure(G, [0, 1, 2]).rows()
    assert rows[0] == ["layer", "resolution", "spike_ratio", "colocation"]
    assert [(a, int(b), float(c), float(d)) for a, b, c, d in rows[1:]] == [
        (r["layer"], r["resolution"], r["spike_ratio"], r["colocation"]) for r in expected]
    for name in ("contributions.png", "droplets.png"):
        assert Image.open(out / name).size[0] > 100
    assert "wrote droplets.csv, droplets.png" in capsys.readouterr().out


def test_contributions_of_a_run_folder_against_kimg(tmp_path):
    run = tmp_path / "run"
    gs = {kimg: _tiny(seed=kimg) for kimg in (4, 8)}
    for kimg, G in gs.items():
        _ckpt(G, run / "checkpoints" / f"snapshot-{kimg:06d}.ckpt", cur_nimg=kimg * 1000)
    _ckpt(gs[8], run / "checkpoints" / "last.ckpt", cur_nimg=8000)  # not a snapshot: not in the series
    assert main(["analyze", "contributions", "--model", str(run), "--out", str(tmp_path / "o"), "--seeds", "0-3",
                 "--device", "cpu"]) == 0
    rows = _csv(tmp_path / "o" / "contributions.csv")
    assert rows[0] == ["kimg", "resolution", "share", "std"]
    expected = [(float(k), r, s) for k, G in gs.items() for r, s in shares(contribution_stds(G, [0, 1, 2, 3])).items()]
    assert [(float(k), int(r)) for k, r, _, _ in rows[1:]] == [(k, r) for k, r, _ in expected]
    assert [float(s) for _, _, s, _ in rows[1:]] == pytest.approx([s for _, _, s in expected], rel=1e-6)
    assert (tmp_path / "o" / "contributions.png").is_file()


def test_bad_inputs_are_one_line_before_any_work(tmp_path, capsys):
    orig = _ckpt(_tiny(architecture="orig"), tmp_path / "orig.ckpt")
    skip = _ckpt(_tiny(), tmp_path / "skip.ckpt")
    (tmp_path / "file").write_text("x")
    (tmp_path / "empty_run").mkdir()
    out = tmp_path / "out"
    cases = [
        (["contributions", "--model", str(orig)], "need the skip architecture"),
        (["contributions", "--model", str(skip), "--seeds", "3-1"], "range 3-1 runs backwards"),
        (["contributions", "--model", str(skip), "--seeds", "4"], "needs at least 2 seeds"),
        (["droplets", "--model", str(tmp_path / "none.ckpt")], f"--model {tmp_path / 'none.ckpt'} does not exist"),
        (["droplets", "--model", str(skip), "--noise-mode", "loud"], "--noise-mode 'loud': use one of"),
        (["droplets", "--model", str(skip), "--class", "1"], "this generator is unconditional"),
        (["droplets", "--model", str(tmp_path / "empty_run")], "is a folder: droplets measures one model file"),
        (["contributions", "--model", str(tmp_path / "empty_run")], "no checkpoints/snapshot-*.ckpt"),
    ]
    for argv, expected in cases:
        assert main(["analyze", *argv, "--out", str(out), "--device", "cpu"]) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("stylegan: error: ") and expected in err and len(err.splitlines()) == 1, err
    assert not out.exists()  # refused before any work
    assert main(["analyze", "droplets", "--model", str(skip), "--out", str(tmp_path / "file")]) == 2
    assert "is a file; pass a folder" in capsys.readouterr().err
