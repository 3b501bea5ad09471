"""``stylegan generate`` / ``stylegan export`` (issue 17, first part): the official seed convention checked against
numpy, safetensors round trip bit-exact with a torch + safetensors only loader, one-line errors before any work."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from references import OFFICIAL_FIXTURE
from stylegan.export import load_safetensors
from stylegan.networks import Generator
from stylegan.official import load_official_file
from stylegan.tools.__main__ import main
from stylegan.tools.generate import ToolError, parse_seeds


def _png(path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_parse_seeds():
    assert parse_seeds("0-3,10") == [0, 1, 2, 3, 10] and parse_seeds(" 7 ") == [7]
    for bad, why in [("5-2", "runs backwards"), ("a", "not a seed"), ("1,,2", "not a seed"), ("-3", "not a seed")]:
        with pytest.raises(ToolError, match=why):
            parse_seeds(bad)


def test_generate_follows_the_official_seed_convention(tmp_path):
    """seedNNNN.png == quantize(G(RandomState(seed).randn(1, z_dim), psi)) computed here, as gen_images.py."""
    assert main(["generate", "--model", str(OFFICIAL_FIXTURE), "--seeds", "3,10-11", "--trunc", "0.7",
                 "--outdir", str(tmp_path), "--batch-size", "1", "--quiet"]) == 0
    G, _ = load_official_file(OFFICIAL_FIXTURE)
    G.eval()
    for seed in (3, 10, 11):
        z = torch.from_numpy(np.random.RandomState(seed).randn(1, G.z_dim)).float()
        with torch.no_grad():
            img = G(z, torch.zeros([1, G.c_dim]), truncation_psi=0.7, noise_mode="const")
        expected = np.clip(np.floor(img[0].permute(1, 2, 0).numpy() * 127.5 + 128), 0, 255).astype(np.uint8)
        assert np.array_equal(_png(tmp_path / f"seed{seed:04d}.png"), expected)
    # batched generation: the same images up to float rounding in the batched convolutions
    assert main(["generate", "--model", str(OFFICIAL_FIXTURE), "--seeds", "3,10-11", "--trunc", "0.7",
                 "--outdir", str(tmp_path / "batched"), "--batch-size", "3", "--quiet"]) == 0
    for seed in (3, 10, 11):
        a, b = _png(tmp_path / f"seed{seed:04d}.png"), _png(tmp_path / "batched" / f"seed{seed:04d}.png")
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    # --grid: one grid.png, ceil(sqrt(3)) = 2 columns, the seeds' images in order, the fourth cell black
    assert main(["generate", "--model", str(OFFICIAL_FIXTURE), "--seeds", "3,10-11", "--trunc", "0.7", "--grid",
                 "--outdir", str(tmp_path / "grid"), "--batch-size", "1", "--quiet"]) == 0
    assert [f.name for f in (tmp_path / "grid").iterdir()] == ["grid.png"]
    grid, R = _png(tmp_path / "grid" / "grid.png"), G.img_resolution
    assert grid.shape == (2 * R, 2 * R, 3)
    for i, seed in enumerate((3, 10, 11)):
        r, c = divmod(i, 2)
        assert np.array_equal(grid[r * R:(r + 1) * R, c * R:(c + 1) * R], _png(tmp_path / f"seed{seed:04d}.png"))
    assert not grid[R:, R:].any()


def _conditional(tmp_path):
    torch.manual_seed(0)
    G = Generator(z_dim=8, w_dim=8, c_dim=3, img_resolution=16, img_channels=3, channel_base=256, channel_max=16,
                  mapping_kwargs={"num_layers": 2}).eval()
    with torch.no_grad():
        G.mapping.w_avg.normal_()
    ckpt = tmp_path / "model.ckpt"  # the layout stylegan-train writes (state_dict with G_ema.*, stylegan.G_kwargs)
    torch.save({"state_dict": {f"G_ema.{k}": v for k, v in G.state_dict().items()},
                "stylegan": {"G_kwargs": G.init_kwargs, "cur_nimg": 1000}}, ckpt)
    return G, ckpt


def test_safetensors_round_trip_is_bit_exact(tmp_path):
    G, ckpt = _conditional(tmp_path)
    out = tmp_path / "g.safetensors"
    assert main(["export", "--model", str(ckpt), str(out)]) == 0
    assert json.loads(out.with_suffix(".json").read_text()) == json.loads(json.dumps(G.init_kwargs))
    G2 = load_safetensors(out)
    assert G2.init_kwargs == G.init_kwargs
    for k, v in G.state_dict().items():
        assert torch.equal(v, G2.state_dict()[k]), k
    z, c = torch.randn(4, 8), torch.eye(3)[[0, 1, 2, 0]]
    with torch.no_grad():
        assert torch.equal(G(z, c, truncation_psi=0.5, noise_mode="const"),
                           G2(z, c, truncation_psi=0.5, noise_mode="const"))
    # the loader needs neither Lightning nor Hydra
    code = (f"import sys; from stylegan.export import load_safetensors; load_safetensors({str(out)!r}); "
            "print(sorted(m for m in ('lightning', 'hydra', 'omegaconf', 'wandb') if m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"


def test_conditional_generation_and_one_line_errors(tmp_path, capsys):
    G, ckpt = _conditional(tmp_path)
    assert main(["generate", "--model", str(ckpt), "--seeds", "5", "--class", "2", "--outdir", str(tmp_path / "c"),
                 "--batch-size", "1", "--quiet"]) == 0
    z = torch.from_numpy(np.random.RandomState(5).randn(1, 8)).float()
    with torch.no_grad():
        img = G(z, torch.eye(3)[[2]], noise_mode="const")
    expected = np.clip(np.floor(img[0].permute(1, 2, 0).numpy() * 127.5 + 128), 0, 255).astype(np.uint8)
    assert np.array_equal(_png(tmp_path / "c" / "seed0005.png"), expected)
    (tmp_path / "file").write_text("x")
    cases = [
        (["--class", "3"], "--class 3: this generator is conditional on 3 classes; pass --class 0..2"),
        ([], "no --class: this generator is conditional on 3 classes"),
        (["--class", "0", "--trunc", "5"], "--trunc 5.0: truncation psi must be in"),
        (["--class", "0", "--seeds", "3-1"], "range 3-1 runs backwards"),
    ]
    for extra, expected_line in cases:
        argv = ["generate", "--model", str(ckpt), "--seeds", "0", "--outdir", str(tmp_path / "e"), *extra]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("stylegan: error: ") and expected_line in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "e").exists()  # refused before any work
    assert main(["generate", "--model", str(tmp_path / "none.ckpt"), "--seeds", "0", "--outdir", str(tmp_path)]) == 2
    assert f"--model {tmp_path / 'none.ckpt'} does not exist" in capsys.readouterr().err
    assert main(["generate", "--model", str(ckpt), "--class", "0", "--seeds", "0", "--outdir",
                 str(tmp_path / "file"), "--quiet"]) == 2
    assert "is a file; pass a folder" in capsys.readouterr().err
