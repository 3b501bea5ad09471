"""Real Hydra composition, real Lightning runs of the entry point, and exact resume after SIGKILL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from stylegan.networks import Discriminator, Generator
from stylegan.networks.style_blocks import AdaINLayer, SynthesisLayer
from sweeping import clean_env, in_process, kill_at_checkpoint, refusal, train_process

CONF = str(Path(__file__).resolve().parents[1] / "conf")
TINY = ["model.generator.channel_base=64", "model.generator.channel_max=8", "model.generator.z_dim=8",
        "model.generator.w_dim=8"]


def _compose(overrides: list[str]):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


@pytest.mark.parametrize("style", ["demod", "modulate", "adain"])
@pytest.mark.parametrize("g_arch", ["orig", "skip", "resnet"])
@pytest.mark.parametrize("d_arch", ["orig", "skip", "resnet"])
def test_every_network_choice_composes(g_arch, d_arch, style):
    cfg = _compose([f"model/generator={g_arch}", f"model/discriminator={d_arch}", f"model/style={style}", *TINY])
    G, D = instantiate(cfg.model.generator), instantiate(cfg.model.discriminator)
    assert isinstance(G, Generator) and isinstance(D, Discriminator)
    assert (G.synthesis.architecture, D.architecture, G.synthesis.style_block) == (g_arch, d_arch, style)
    layer = G.synthesis.b8.conv0
    assert isinstance(layer, AdaINLayer if style == "adain" else SynthesisLayer)
    assert getattr(layer, "demodulate", None) == {"demod": True, "modulate": False, "adain": None}[style]
    img = G(torch.randn(4, 8), torch.zeros(4, 0))
    assert img.shape == (4, 1, 32, 32) and D(img).shape == (4, 1)


@pytest.mark.parametrize("resolution,channel_base", [(32, 16384), (256, 16384), (512, 32768), (1024, 32768)])
def test_the_default_is_the_papers_stylegan2_sized_by_resolution(resolution, channel_base):
    """No experiment: config F's G and D (skip/resnet, demodulation, 8 mapping layers, lazy R1 + path length,
    mixing 0.9), with the official 'auto' size: channel_base 32768 from 512 px up, else 16384."""
    cfg = _compose(["data=folder", "data.source=x", f"data.resolution={resolution}"])
    g, d = cfg.model.generator, cfg.model.discriminator
    assert (g.z_dim, g.w_dim, g.channel_max, g.mapping_kwargs.num_layers, g.style_block) == (512, 512, 512, 8, "demod")
    assert (g.architecture, d.architecture, g.channel_base, d.channel_base) == ("skip", "resnet", channel_base,
                                                                                channel_base)
    assert (cfg.loss.r1_gamma, cfg.loss.pl_weight, cfg.loss.style_mixing_prob, cfg.loss.lazy) == (10.0, 2.0, 0.9, True)
    assert (cfg.loss.g_reg_interval, cfg.loss.d_reg_interval, cfg.total_kimg) == (4, 16, 25000)


def _run(tmp: Path, *overrides: str, wait: bool = True) -> subprocess.Popen:
    return train_process("experiment=smoke", f"hydra.run.dir={tmp}", *overrides, wait=wait)


def _weights(ckpt: Path) -> dict[str, torch.Tensor]:
    return torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]


def test_entry_point_trains_and_writes_outputs(tmp_path):
    in_process("experiment=smoke", f"hydra.run.dir={tmp_path}", "total_kimg=0.128")
    samples = sorted(p.name for p in (tmp_path / "samples").glob("*.png"))
    assert "reals.png" in samples and "fakes_final.png" in samples and len(samples) >= 3
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["stylegan"]["cur_nimg"] == 128 and ckpt["stylegan"]["iteration"] == 16
    assert (tmp_path / "csv" / "metrics.csv").read_text().startswith("epoch,kimg,")
    assert not list(tmp_path.rglob("*.tmp*")), "a temporary checkpoint file was left behind"


def test_bf16_mixed_precision_trains(tmp_path):
    """bf16 autocast for the main passes; R1 and path length run in float32; weights stay finite."""
    in_process("experiment=smoke", f"hydra.run.dir={tmp_path}", "total_kimg=0.128", "trainer.precision=bf16-mixed")
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["stylegan"]["cur_nimg"] == 128 and not ckpt["stylegan"]["nan_skips"]
    weights = ckpt["state_dict"]
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())
    assert weights["pl_mean"] > 0  # the path-length phase ran


def test_bad_data_is_one_clear_line(tmp_path, capsys):
    missing = tmp_path / "no_such_folder"
    line = refusal(capsys, ["stylegan-train", "experiment=smoke", "data=folder", f"data.source={missing}",
                            "data.resolution=32", "data.channels=1", f"hydra.run.dir={tmp_path / 'run'}"])
    assert str(missing) in line


# (global, 1 process) is implied by (global, DDP): the shared generator's state is restored on every rank there;
# (per_rank, 1 process) is test_progressive's config_d run, killed in the middle of a fade; (per_rank, DDP) is
# test_interruptions' SIGTERM sweep (2 gloo processes, noise on, resumed under another seed)
@pytest.mark.slow  # about 40 s: started early, it does not trail the suite (conftest)
@pytest.mark.parametrize("draws", ["global"])
def test_exact_resume_after_sigkill_under_ddp(tmp_path, draws):
    """N iterations straight == N/2, SIGKILL, resume to N: identical G, D, G_ema and optimizer states (with the
    torch RNG, or with the shared generator of ``model.draws=global``, restored from the checkpoint). Under DDP
    (2 gloo processes, synthesis noise on) every rank restores its own RNG streams. The resumed run gets another
    ``seed``: a run that ignored ``ckpt_path`` and started from zero would build other weights and draw other
    latents, and end elsewhere."""
    common = [f"model.draws={draws}", "trainer=ddp_sim", "logger=none"]
    total, half = "0.128", 64
    straight = tmp_path / "straight"
    _run(straight, f"total_kimg={total}", "callbacks.checkpoint.every_kimg=100", *common)
    killed = tmp_path / "killed"
    proc = _run(killed, "total_kimg=100", f"callbacks.checkpoint.every_kimg={half / 1000}", *common, wait=False)
    ckpt = killed / "checkpoints" / "last.ckpt"
    kill_at_checkpoint(proc, ckpt)  # the whole process group: rank 1 too
    half_state = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert half_state["stylegan"]["cur_nimg"] == half
    assert len(half_state["stylegan"]["rng_per_rank"]) == 2
    _run(killed, f"total_kimg={total}", "callbacks.checkpoint.every_kimg=100", *common, f"ckpt_path={ckpt}", "seed=7")
    a, b = _weights(straight / "checkpoints" / "last.ckpt"), _weights(ckpt)
    assert a.keys() == b.keys()
    diff = {k: (a[k] - b[k]).abs().max().item() for k in a if a[k].is_floating_point()}
    assert max(diff.values()) == 0.0, {k: v for k, v in diff.items() if v}


@pytest.mark.parametrize("script,args,expected", [
    ("stylegan-train", ["experiment=smoke", "data.source=/no/such/data"], "stylegan-train: error: data.source="),
    ("stylegan-evaluate", ["ckpt=/no/such.ckpt"], "stylegan-evaluate: error: ckpt=/no/such.ckpt does not exist"),
])
def test_console_scripts_find_the_configs_from_any_directory(tmp_path, script, args, expected):
    """The installed entry points (not only ``python -m``) compose conf/ when started outside the repository."""
    exe = Path(sys.executable).parent / script
    out = subprocess.run([str(exe), *args, f"hydra.run.dir={tmp_path}/run"], cwd=tmp_path, env=clean_env(),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stderr[-2000:]
    assert expected in out.stderr and "Traceback" not in out.stderr

