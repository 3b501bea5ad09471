"""notebooks/03_paper_analyses.ipynb executed for real (nbclient, the helpers of test_notebooks) on tiny checkpoints
made here: an AdaIN-style and a demodulated skip G (untrained: the notebook's wiring is under test, not the
artifact), the demodulated one's run folder with two snapshots (contributions against kimg)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from stylegan.analysis.contributions import contribution_stds, shares
from stylegan.analysis.droplets import measure
from stylegan.metrics.generate import LabelSampler
from stylegan.metrics.ppl import path_distances, trimmed_mean
from stylegan.networks import Generator
from stylegan.tools.projection import PixelDistance
from test_notebooks import _outputs, execute


def _G(style_block: str, seed: int) -> Generator:
    torch.manual_seed(seed)
    G = Generator(z_dim=8, w_dim=8, img_resolution=16, img_channels=3, channel_base=256, channel_max=16,
                  architecture="skip", style_block=style_block, mapping_kwargs={"num_layers": 2}).eval()
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.normal_()
    return G


def _ckpt(G: Generator, path: Path, kimg: int) -> Path:
    """The layout stylegan-train writes (state_dict with G_ema.*, stylegan.G_kwargs, cur_nimg)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {f"G_ema.{k}": v for k, v in G.state_dict().items()},
                "stylegan": {"G_kwargs": G.init_kwargs, "cur_nimg": kimg * 1000}}, path)
    return path


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _text(nb) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def test_paper_analyses_notebook(tmp_path, monkeypatch):
    adain, demod, older = _G("adain", 0), _G("demod", 1), _G("demod", 2)
    a = _ckpt(adain, tmp_path / "adain" / "checkpoints" / "last.ckpt", 8)
    run = tmp_path / "demod"
    b = _ckpt(demod, run / "checkpoints" / "last.ckpt", 8)
    _ckpt(older, run / "checkpoints" / "snapshot-000004.ckpt", 4)
    _ckpt(demod, run / "checkpoints" / "snapshot-000008.ckpt", 8)
    out = tmp_path / "analyses"
    nb = execute("03_paper_analyses.ipynb", tmp_path, monkeypatch, STYLEGAN_CKPT_A=str(a), STYLEGAN_CKPT_B=str(b),
                 STYLEGAN_RUN=str(run), STYLEGAN_SEEDS="0-3", STYLEGAN_CONTRIBUTION_SEEDS="0-7",
                 STYLEGAN_PPL_SEEDS="0-19", STYLEGAN_PPL_DISTANCE="pixel", STYLEGAN_ANALYSES_OUT=str(out))
    # droplets: the table has A = the AdaIN G's and B = the demodulated G's per-resolution medians
    (table,) = _outputs(nb, "text/markdown")
    text = table["data"]["text/markdown"]
    for key, G, block in (("A", adain, "adain"), ("B", demod, "demod")):
        for r in measure(G, [0, 1, 2, 3]).rows():
            if r["layer"] == "all":
                assert (f"| {key}: {block} / skip, 8.0 kimg | {r['resolution']} | {r['spike_ratio']:.3f} | "
                        f"{r['colocation']:.3f} |") in text
    # contributions against kimg from the two snapshots
    got = [(float(r["kimg"]), int(r["resolution"]), float(r["share"])) for r in _rows(out / "contributions" /
                                                                                        "contributions.csv")]
    expected = [(float(k), res, s) for k, G in ((4, older), (8, demod))
                for res, s in shares(contribution_stds(G, list(range(8)))).items()]
    assert [g[:2] for g in got] == [e[:2] for e in expected]
    assert [g[2] for g in got] == pytest.approx([e[2] for e in expected], rel=1e-6)
    # per-image PPL of B: the trimmed mean printed is the metric's at batch size 1 (the stand-in distance, named)
    metric = trimmed_mean(torch.cat(list(path_distances(demod, PixelDistance(), 20, 1, 0, LabelSampler(None, 0),
                                                        torch.device("cpu")))))
    line = next(x for x in _text(nb).splitlines() if x.startswith("path_length@pixel-pyramid: trimmed mean"))
    assert float(line.split()[3]) == pytest.approx(metric, rel=1e-12) and "not PPL" in line
    # the droplet curves, the two droplet figures, contributions, histogram, lowest and highest deciles
    assert len(_outputs(nb, "image/png")) == 6
