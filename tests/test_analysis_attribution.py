"""``stylegan analyze attribution`` (issue 30, StyleGAN2 Sec. 5): the ROC AUC against a brute-force pair count and
the normal-distribution formula, the distances of a run against a float64 re-computation from the images and their
re-synthesis, and one-line errors before any work."""

from __future__ import annotations

import csv
import math
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from stylegan.analysis.attribution import open_reals
from stylegan.analysis.roc import auc, roc_curve
from stylegan.networks import Generator
from stylegan.tools.__main__ import main
from stylegan.tools.projection import PixelDistance, ProjectionConfig, project, render


def _pairs(lower, higher) -> float:
    """The AUC by definition: over every pair, 1 if a < b, 1/2 if equal, in float64."""
    total = 0.0
    for a in lower:
        for b in higher:
            total += 1.0 if a < b else 0.5 if a == b else 0.0
    return total / (len(lower) * len(higher))


def test_auc_is_the_pair_count_with_ties_as_half_and_the_area_under_the_roc_curve():
    rng = np.random.default_rng(0)
    gen = np.round(rng.normal(0.0, 1.0, 37), 1)  # rounded: ties within and across the two sets
    real = np.round(rng.normal(0.7, 1.0, 23), 1)
    assert len(set(gen) & set(real)) > 3
    expected = _pairs(gen.tolist(), real.tolist())
    assert auc(gen, real) == pytest.approx(expected, abs=1e-12) and 0.6 < expected < 0.95
    assert auc(real, gen) == pytest.approx(1 - expected, abs=1e-12)  # the direction: the first set is "lower"
    fpr, tpr = roc_curve(gen, real)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1) and (np.diff(fpr) >= 0).all()
    area = float(np.sum((fpr[1:] - fpr[:-1]) * (tpr[1:] + tpr[:-1]) / 2))  # trapezoids: a tie is a diagonal step
    assert area == pytest.approx(expected, abs=1e-12)
    assert auc([1, 2], [3, 4]) == 1.0 and auc([3, 4], [1, 2]) == 0.0 and auc([2, 2, 2], [2, 2]) == 0.5
    assert math.isnan(auc([], [1.0])) and math.isnan(auc([1.0, math.nan], [2.0]))


def test_auc_of_two_normals_matches_the_formula():
    """Known distributions: for N(0, 1) against N(d, 1), P(a < b) = Phi(d / sqrt 2) (d = 0.7: 0.6915); from 3000
    samples each the estimate's standard deviation is ~0.006; the pair count is the broadcast comparison."""
    rng = np.random.default_rng(1)
    gen, real = rng.normal(0.0, 1.0, 3000), rng.normal(0.7, 1.0, 3000)
    brute = float(((gen[:, None] < real[None]) + 0.5 * (gen[:, None] == real[None])).mean())
    assert auc(gen, real) == pytest.approx(brute, abs=1e-12)
    assert auc(gen, real) == pytest.approx(0.5 * (1 + math.erf(0.7 / 2)), abs=0.025)


def _tiny_ckpt(path) -> Generator:
    torch.manual_seed(0)
    G = Generator(z_dim=8, w_dim=8, img_resolution=16, img_channels=3, channel_base=256, channel_max=16,
                  architecture="skip", style_block="demod", mapping_kwargs={"num_layers": 2}).eval()
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.normal_()  # noise on (init 0): the re-synthesis depends on the projected noise maps too
    torch.save({"state_dict": {f"G_ema.{k}": v for k, v in G.state_dict().items()},
                "stylegan": {"G_kwargs": G.init_kwargs, "cur_nimg": 1000}}, path)
    return G


def _pyramid64(a: np.ndarray, b: np.ndarray) -> float:
    """The stand-in distance by its definition, float64: mean squared difference of [-1, 1] images, summed over
    2x2 averages down to 8x8."""
    a, b = a.astype(np.float64) / 127.5 - 1, b.astype(np.float64) / 127.5 - 1
    total = 0.0
    while True:
        total += float(((a - b) ** 2).mean())
        if a.shape[0] <= 8:
            return total
        a = a.reshape(a.shape[0] // 2, 2, a.shape[1] // 2, 2, -1).mean(axis=(1, 3))
        b = b.reshape(b.shape[0] // 2, 2, b.shape[1] // 2, 2, -1).mean(axis=(1, 3))


def test_end_to_end_rows_distances_and_auc(tmp_path, capsys, monkeypatch):
    """Seeds 0-2 against three real files: seed 0's and seed 1's images as ``stylegan generate`` writes them, and a
    noise image. A file holding a seed's image is the same target, so its distance equals that seed's exactly; the
    noise image's distance is the float64 pixel pyramid between it and its re-synthesis (projected again here, the
    same 4 steps from torch seed 303); the printed AUC is the pair count of the csv's distances. Without LPIPS
    (here: torch-fidelity missing) the default ``--distance auto`` warns and names the stand-in."""
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)  # `import torch_fidelity.*` raises ImportError
    G = _tiny_ckpt(tmp_path / "g.ckpt")
    reals = tmp_path / "reals"
    assert main(["generate", "--model", str(tmp_path / "g.ckpt"), "--seeds", "0-1", "--outdir", str(reals)]) == 0
    noise = np.random.default_rng(2).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(noise).save(reals / "zz_noise.png")
    out = tmp_path / "out"
    capsys.readouterr()
    with pytest.warns(UserWarning, match="LPIPS is unavailable, so the projection uses the pixel distance"):
        assert main(["analyze", "attribution", "--model", str(tmp_path / "g.ckpt"), "--out", str(out), "--seeds",
                     "0-2", "--reals", str(reals), "--num-steps", "4", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    with open(out / "attribution.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["kind", "seed", "file", "pixel-pyramid"]  # the stand-in is named, never LPIPS
    assert [r[:3] for r in rows[1:]] == [["generated", "0", ""], ["generated", "1", ""], ["generated", "2", ""],
                                         ["real", "", "seed0000.png"], ["real", "", "seed0001.png"],
                                         ["real", "", "zz_noise.png"]]
    d = [float(r[3]) for r in rows[1:]]
    assert d[0] == d[3] and d[1] == d[4] and len(set(d[:3])) == 3
    cfg = ProjectionConfig(num_steps=4)
    target = torch.from_numpy(noise).permute(2, 0, 1).float()
    resynth = render(G, project(G, target, PixelDistance(), cfg, seed=303))
    assert d[5] == pytest.approx(_pyramid64(noise, resynth), rel=1e-5)
    assert f"ROC AUC {_pairs(d[:3], d[3:]):.3f}" in printed and "lpips" not in printed.lower()
    with Image.open(out / "attribution.png") as im:
        assert im.size == (900, 340)


def test_bad_inputs_are_one_line_before_any_work(tmp_path, capsys):
    G = _tiny_ckpt(tmp_path / "g.ckpt")
    rng = np.random.default_rng(0)
    for name, shape in (("few", (16, 16, 3)), ("big", (32, 32, 3)), ("gray", (16, 16))):
        (tmp_path / name).mkdir()
        for i in range(2 if name == "few" else 4):
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(tmp_path / name / f"{i}.png")
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken").mkdir()
    for i in range(3):
        (tmp_path / "broken" / f"{i}.png").write_bytes(b"not a png")
    (tmp_path / "notes.txt").write_text("x")
    out = tmp_path / "out"
    base = ["analyze", "attribution", "--model", str(tmp_path / "g.ckpt"), "--out", str(out), "--device", "cpu",
            "--seeds", "0-2"]
    cases = [
        ([], "pass --reals"),
        (["--reals", str(tmp_path / "none")], f"--reals {tmp_path / 'none'} does not exist"),
        (["--reals", str(tmp_path / "notes.txt")], "is not a folder, a .zip or a stylegan-prepare output"),
        (["--reals", str(tmp_path / "empty")], "no PNG/JPEG/WebP images found"),
        (["--reals", str(tmp_path / "big")], "32x32 but the generator's resolution is 16; resize them"),
        (["--reals", str(tmp_path / "broken")], f"bad image {tmp_path / 'broken'}/0.png: cannot be decoded"),
        (["--reals", str(tmp_path / "gray")], "(L) but the generator's channel count is 3; convert them"),
        (["--reals", str(tmp_path / "few")], "has 2 usable image(s) but there are 3 seeds"),
        (["--reals", str(tmp_path / "few"), "--seeds", "4"], "needs at least 2 generated and 2 real images"),
        (["--reals", str(tmp_path / "few"), "--steps", "0"], "--steps 0: the projection needs at least 1 step"),
        (["--reals", str(tmp_path / "few"), "--distance", "l2"], "--distance 'l2': use one of auto, lpips, pixel"),
    ]
    for extra, expected in cases:
        assert main([*base, *extra]) == 2, extra
        err = capsys.readouterr().err
        assert err.startswith("stylegan: error: ") and expected in err and len(err.splitlines()) == 1, (extra, err)
        assert "data." not in err, err  # the training settings' names mean nothing here
    assert not out.exists()  # refused before any work
    drawn = open_reals(str(tmp_path / "gray"), Generator(**{**G.init_kwargs, "img_channels": 1}), 3)
    assert len(drawn) == 3 and len(set(drawn.names)) == 3  # a subset when there are more images than seeds
