"""``stylegan analyze ppl`` (issue 30, per-image PPL): the trimmed mean of the saved samples is what the ``ppl`` metric
(MetricRunner) reports for the same pairs and settings, the 1 %-99 % trim against a hand count in float64, the files
through the real entry point, the stand-in distance never called PPL, and bad input in one line before any work."""

from __future__ import annotations

import csv
import math
from fractions import Fraction
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from metrics_testing import PixelDistance as InjectedDistance
from stylegan.analysis.ppl_samples import Settings, measure, summarize
from stylegan.metrics import MetricRunner, Networks
from stylegan.metrics.generate import LabelSampler
from stylegan.metrics.ppl import path_distances
from stylegan.networks import Generator
from stylegan.tools.__main__ import main
from stylegan.tools.projection import PixelDistance


def _tiny(c_dim: int = 0) -> Generator:
    torch.manual_seed(0)
    G = Generator(z_dim=8, c_dim=c_dim, w_dim=8, img_resolution=16, img_channels=3, channel_base=256, channel_max=16,
                  mapping_kwargs={"num_layers": 2}).eval()
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.normal_()  # noise on (init 0): each pair's noise draw changes its distance
    return G


def _ckpt(G: Generator, path):
    """The layout stylegan-train writes (state_dict with G_ema.*, stylegan.G_kwargs, cur_nimg)."""
    torch.save({"state_dict": {f"G_ema.{k}": v for k, v in G.state_dict().items()},
                "stylegan": {"G_kwargs": G.init_kwargs, "cur_nimg": 1000}}, path)
    return path


@pytest.mark.parametrize("settings,c_dim", [(Settings(), 0), (Settings("z", "full", 1e-4, True), 0),
                                             (Settings(), 3)])
def test_the_trimmed_mean_of_the_samples_is_the_metric(settings, c_dim):
    """Seeds 0..N-1 are the N pairs of the metric at batch size 1, seed 0 (a conditional G: a dataset whose labels
    are all the --class): the same per-sample values and the same trimmed mean as MetricRunner reports."""
    G, n = _tiny(c_dim), 24
    labels = None if not c_dim else np.full(7, 2)
    d, t = measure(G, InjectedDistance(), list(range(n)), settings, class_idx=2 if c_dim else None)
    name = settings.metric_name(n)
    runner = MetricRunner([name], Networks(distance=InjectedDistance()), batch_size=1, seed=0, progress=False)
    dm = SimpleNamespace(setup=lambda: None, store=SimpleNamespace(labels=labels))
    (key, value), = runner.run(G, dm, "cpu").items()
    assert key == f"{name}@pixmse"
    assert summarize(d)["mean"] == pytest.approx(value, rel=1e-12)
    metric = torch.cat(list(path_distances(G, InjectedDistance(), n, 1, 0, LabelSampler(labels, c_dim),
                                           torch.device("cpu"), settings.space, settings.sampling, settings.epsilon,
                                           settings.crop))).numpy()
    np.testing.assert_array_equal(d, metric)
    assert len(set(d.tolist())) == n  # every seed its own pair
    assert (t == 0).all() if settings.sampling == "end" else (0 < t.min() < t.max() < 1)


def test_the_trim_and_the_deciles_against_a_hand_count():
    """n = 250 values k^2 (k = 0..249), shuffled: numpy's 'lower' 1 % index is floor(249 / 100) = 2 and the
    'higher' 99 % index ceil(249 * 99 / 100) = 247, so k = 2..247 stay (246 values)."""
    n = 250
    order = np.random.default_rng(0).permutation(n)
    d = (order.astype(np.float64)) ** 2
    lo_k = math.floor(Fraction(n - 1, 100))
    hi_k = math.ceil(Fraction((n - 1) * 99, 100))
    assert (lo_k, hi_k) == (2, 247)
    s = summarize(d)
    assert (s["lo"], s["hi"]) == (float(lo_k**2), float(hi_k**2))
    kept = [k for k in order if lo_k <= k <= hi_k]
    assert s["in_trim"].tolist() == [lo_k <= k <= hi_k for k in order] and len(kept) == 246
    assert s["mean"] == pytest.approx(math.fsum(float(k) ** 2 for k in kept) / len(kept), rel=1e-15)
    assert (np.percentile(d, 1, method="lower"), np.percentile(d, 99, method="higher")) == (s["lo"], s["hi"])
    # deciles by rank: value k has rank k, decile floor(10 k / 250) + 1 (25 each)
    assert s["decile"].tolist() == [10 * k // n + 1 for k in order]
    assert np.bincount(s["decile"]).tolist() == [0] + [25] * 10


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_the_files_through_the_entry_point(tmp_path, capsys):
    G = _tiny()
    model = _ckpt(G, tmp_path / "g.ckpt")
    out = tmp_path / "out"
    seeds = list(range(3, 23))
    assert main(["analyze", "ppl", "--model", str(model), "--out", str(out), "--seeds", "3-22", "--distance", "pixel",
                 "--gallery", "5", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    rows = _rows(out / "ppl.csv")
    assert rows[0] == ["seed", "t", "path_length@pixel-pyramid", "decile", "in_trim"]  # the stand-in, named
    expected, _ = measure(G, PixelDistance(), seeds, Settings())
    assert [int(r[0]) for r in rows[1:]] == seeds
    assert [float(r[2]) for r in rows[1:]] == expected.tolist()
    s = summarize(expected)
    assert [int(r[3]) for r in rows[1:]] == s["decile"].tolist()
    assert [bool(int(r[4])) for r in rows[1:]] == s["in_trim"].tolist()
    assert "PPL (" not in printed and "not PPL" in printed and f"trimmed mean {s['mean']:.6g}" in printed
    assert "wrote ppl.csv, ppl_hist.png, ppl_low.png, ppl_high.png" in printed
    hist = Image.open(out / "ppl_hist.png")
    low, high = Image.open(out / "ppl_low.png"), Image.open(out / "ppl_high.png")
    assert hist.size[0] > 300 and low.size == high.size  # 20 seeds: 2 per decile, both galleries show 2
    assert low.size == (600, 540)  # 2 columns, not the --gallery 5 (8.3 in): the 6 in minimum width at 100 dpi


def test_a_standard_distance_is_ppl_and_a_missing_one_falls_back_with_a_warning(tmp_path, capsys, monkeypatch):
    import stylegan.metrics.extractors as extractors

    class FakeLPIPS(InjectedDistance):
        name, standard = "lpips-vgg16", True

    model = _ckpt(_tiny(), tmp_path / "g.ckpt")
    argv = ["analyze", "ppl", "--model", str(model), "--seeds", "0-9", "--gallery", "1", "--device", "cpu"]
    monkeypatch.setattr(extractors, "build_lpips", lambda: FakeLPIPS())
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0
    assert _rows(tmp_path / "a" / "ppl.csv")[0][2] == "ppl"
    assert "PPL (LPIPS-VGG16): trimmed mean" in capsys.readouterr().out

    def unavailable():
        raise extractors.MetricSetupError("no weights here")

    monkeypatch.setattr(extractors, "build_lpips", unavailable)
    with pytest.warns(UserWarning, match="pixel-pyramid stand-in"):
        assert main([*argv, "--out", str(tmp_path / "b")]) == 0
    assert _rows(tmp_path / "b" / "ppl.csv")[0][2] == "path_length@pixel-pyramid"
    assert main([*argv, "--out", str(tmp_path / "c"), "--distance", "lpips"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("stylegan: error: --distance lpips: no weights here") and len(err.splitlines()) == 1
    assert not (tmp_path / "c").exists()


def test_bad_inputs_are_one_line_before_any_work(tmp_path, capsys):
    model = str(_ckpt(_tiny(), tmp_path / "g.ckpt"))
    out = tmp_path / "out"
    cases = [
        (["--seeds", "0-8"], "--seeds 0-8: 9 seed(s); the lowest and highest deciles need at least 10"),
        (["--seeds", "0-9,4"], "seed 4 is listed twice"),
        (["--space", "x"], "--space 'x': use w"),
        (["--sampling", "mid"], "--sampling 'mid': use end"),
        (["--epsilon", "0"], "--epsilon '0': must be a number in (0, 1)"),
        (["--epsilon", "abc"], "--epsilon 'abc': must be a number"),
        (["--distance", "vgg"], "--distance 'vgg': use one of auto, lpips, pixel"),
        (["--gallery", "0"], "--gallery '0': the samples per gallery"),
        (["--noise-mode", "random"], "--noise-mode random: ppl draws each pair's constant noise from its seed"),
        (["--class", "1"], "this generator is unconditional"),
    ]
    for extra, expected in cases:
        argv = ["analyze", "ppl", "--model", model, "--out", str(out), "--seeds", "0-9", "--distance", "pixel",
                "--device", "cpu"]
        assert main([*argv, *extra]) == 2, extra
        err = capsys.readouterr().err
        assert err.startswith("stylegan: error: ") and expected in err and len(err.splitlines()) == 1, err
    assert not out.exists()  # refused before any work
