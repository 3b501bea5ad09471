"""Progressive growing (networks/progressive.py, training/progressive.py): the schedule in float64 against the
official TrainingSchedule written independently as a sum of fade ramps, G and D at lod 0 bit-identical to the
networks without it, the fades exact at both ends, the reals' fade, per-resolution learning rates, and real
Hydra runs of experiment=config_d growing 8 -> 16 -> 32 (with an exact resume in the middle of a fade)."""

from __future__ import annotations

import math
import subprocess
from types import SimpleNamespace

import pytest
import torch

from stylegan.evaluate import load_generator
from stylegan.networks import STYLE_BLOCKS, Discriminator, Generator
from stylegan.networks.progressive import downsample_box, fade_reals, set_lod, split_lod, upsample_nearest
from stylegan.training.config import ConfigError, LossConfig, OptimConfig
from stylegan.training.progressive import (
    MinibatchSchedule,
    ProgressiveConfig,
    apply_stage,
    progressive_config,
    schedule_minibatch,
    stage_at,
)
from sweeping import kill_at_checkpoint, train_process

R = 32
NET = dict(img_resolution=R, img_channels=1, channel_base=64, channel_max=8, architecture="orig")
GNET = dict(z_dim=8, w_dim=8, mapping_kwargs={"num_layers": 2}, **NET)


# ----------------------------------------------------------------------------------------------- schedule
def _expected_lod(kimg: float, R: int, start: int, train: float, trans: float) -> float:
    """Written differently from the official phase arithmetic: the lod falls by one over each fade
    [i * (train + trans) + train, (i + 1) * (train + trans)], clipped at 0."""
    fades = sum(min(max((kimg - i * (train + trans) - train) / trans, 0.0), 1.0) for i in range(20))
    return max(math.log2(R) - math.log2(start) - fades, 0.0)


@pytest.mark.parametrize("R,start,train,trans", [(1024, 8, 600, 600), (64, 8, 600, 600), (32, 4, 3, 5)])
def test_schedule_matches_the_official_formula(R, start, train, trans):
    cfg = ProgressiveConfig(start_resolution=start, training_kimg=train, transition_kimg=trans)
    period = train + trans
    boundaries = [i * period + d for i in range(12) for d in (0, train, train + trans / 4, train + trans / 2)]
    for kimg in [*sorted(set(boundaries)), 1e6]:
        s = stage_at(round(kimg * 1000), R, cfg)
        lod = _expected_lod(kimg, R, start, train, trans)
        assert math.isclose(s.lod, lod, rel_tol=0, abs_tol=1e-12), (kimg, s.lod, lod)
        assert s.resolution == R >> math.floor(lod) and math.isclose(s.alpha, 1 - (lod - math.floor(lod)))
    # the phase boundaries themselves, exactly (float64)
    lod0 = math.log2(R / start)
    assert stage_at(0, R, cfg) == stage_at(train * 1000, R, cfg)
    assert (stage_at(0, R, cfg).lod, stage_at(0, R, cfg).resolution, stage_at(0, R, cfg).alpha) == (lod0, start, 1.0)
    mid = stage_at(round((train + trans / 2) * 1000), R, cfg)
    assert (mid.lod, mid.resolution, mid.alpha) == (lod0 - 0.5, 2 * start, 0.5)
    end = stage_at(period * 1000, R, cfg)
    assert (end.lod, end.resolution, end.alpha) == (lod0 - 1, 2 * start, 1.0)
    assert stage_at(10**12, R, cfg).lod == 0.0 and stage_at(10**12, R, cfg).resolution == R


def test_schedule_refuses_bad_settings():
    with pytest.raises(ValueError, match="power of two"):
        ProgressiveConfig(start_resolution=12)
    with pytest.raises(ValueError, match="above the data"):
        stage_at(0, 8, ProgressiveConfig(start_resolution=16))
    with pytest.raises(ValueError, match="lod must be"):
        split_lod(3.5, 32)


# ----------------------------------------------------------------------------------------------- networks
def _pair(cls, seed: int = 0, **kw):
    torch.manual_seed(seed)
    plain = cls(**kw)
    grown = cls(progressive=True, **kw)
    missing, unexpected = grown.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all("torgb" in k or "fromrgb" in k for k in missing)
    return plain.double(), grown.double()


@pytest.mark.parametrize("style", STYLE_BLOCKS)
def test_lod0_is_the_network_without_progressive_growing(style):
    G, G_prog = _pair(Generator, style_block=style, **GNET)
    z = torch.randn(4, 8, dtype=torch.float64)
    torch.manual_seed(5)
    a = G(z, noise_mode="random")
    torch.manual_seed(5)
    b = G_prog(z, noise_mode="random")
    assert torch.equal(a, b)
    D, D_prog = _pair(Discriminator, **NET)
    assert torch.equal(D(a), D_prog(a))
    assert G_prog.init_kwargs["progressive"] and "progressive" not in G.init_kwargs


@pytest.mark.parametrize("style", ["demod", "stylegan1"])
def test_generator_fade_is_exact_at_both_ends_and_linear_between(style):
    torch.manual_seed(1)
    G = Generator(style_block=style, progressive=True, **GNET).double().eval()  # fused modconv, as synthesize_at
    ws = G.mapping(torch.randn(3, 8, dtype=torch.float64), None)
    syn = G.synthesis
    # alpha 1 (t = 0): the new block's image; it is a 16x16 G with the same weights, nearest-upsampled
    torch.manual_seed(1)
    small = Generator(style_block=style, **{**GNET, "img_resolution": 16}).double().eval()
    small.synthesis.load_state_dict({k: v for k, v in syn.state_dict().items() if k in small.synthesis.state_dict()})
    ref16 = small.synthesis(ws[:, :small.num_ws], noise_mode="const")
    assert torch.equal(syn.synthesize_at(ws, 1, 0.0, "const"), upsample_nearest(ref16, 2))
    # alpha 0 (t = 1): the lower resolution's image, upsampled
    assert torch.equal(syn.synthesize_at(ws, 1, 1.0, "const"), syn.synthesize_at(ws, 2, 0.0, "const"))
    for lod, t in [(1.25, 0.25), (0.5, 0.5)]:
        set_lod(lod, G)
        lo, hi = math.floor(lod), math.floor(lod) + 1
        mixed = (1 - t) * syn.synthesize_at(ws, lo, 0.0, "const") + t * syn.synthesize_at(ws, hi, 0.0, "const")
        torch.testing.assert_close(syn(ws, noise_mode="const"), mixed, rtol=1e-12, atol=1e-12)
    set_lod(1.0, G)
    assert torch.equal(syn(ws, noise_mode="const"), upsample_nearest(ref16, 2))


def test_discriminator_fade_is_exact_at_both_ends():
    torch.manual_seed(2)
    D = Discriminator(progressive=True, **NET).double()
    img = torch.randn(4, 1, R, R, dtype=torch.float64)
    small = Discriminator(**{**NET, "img_resolution": 16}).double()
    small.load_state_dict({k: v for k, v in D.state_dict().items() if k in small.state_dict()})
    set_lod(1.0, D)  # alpha 1: FromRGB at 16x16 of the box-downsampled image, then the 16x16 network
    assert torch.equal(D(img), small(downsample_box(img, 2)))
    assert torch.equal(D.features_at(img, 1, 1.0), D.features_at(img, 2, 0.0))  # alpha 0: the 8x8 path
    set_lod(1.5, D)
    x16, x8 = D.b16.conv1(D.b16.conv0(D.b16.fromrgb(downsample_box(img, 2)))), D.b8.fromrgb(downsample_box(img, 4))
    x = torch.lerp(x16, x8, 0.5)
    assert torch.equal(D.features_at(img, 1, 0.5), D.b8.conv1(D.b8.conv0(x)))


def test_only_orig_networks_grow():
    with pytest.raises(ValueError, match="orig"):
        Generator(**{**GNET, "architecture": "skip"}, progressive=True)
    with pytest.raises(ValueError, match="orig"):
        Discriminator(**{**NET, "architecture": "resnet"}, progressive=True)
    with pytest.raises(ValueError, match=r"model\.generator\.progressive=true"):
        progressive_config({"start_resolution": 8}, Generator(**GNET), Discriminator(**NET))


def test_reals_fade_like_the_official_process_reals():
    img = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    assert fade_reals(img, 0.0) is img
    k1 = img.reshape(2, 3, 8, 2, 8, 2).mean(dim=(3, 5)).repeat_interleave(2, 2).repeat_interleave(2, 3)
    torch.testing.assert_close(fade_reals(img, 1.0), k1, rtol=0, atol=1e-15)
    k2 = img.reshape(2, 3, 4, 4, 4, 4).mean(dim=(3, 5)).repeat_interleave(4, 2).repeat_interleave(4, 3)
    torch.testing.assert_close(fade_reals(img, 1.25), 0.75 * k1 + 0.25 * k2, rtol=0, atol=1e-14)
    torch.testing.assert_close(fade_reals(img, 0.5), 0.5 * img + 0.5 * k1, rtol=0, atol=1e-14)


def test_stage_sets_lod_lr_and_fades_reals():
    G, D = Generator(progressive=True, **GNET), Discriminator(progressive=True, **NET)
    opts = [torch.optim.Adam(G.parameters(), lr=1.0), torch.optim.Adam(D.parameters(), lr=1.0)]
    cfg = ProgressiveConfig(training_kimg=1, transition_kimg=1, g_lr={16: 0.003}, d_lr={32: 0.004})
    module = SimpleNamespace(progressive=cfg, cur_nimg=1500, G=G, G_ema=G, D=D, optimizers=lambda: opts,
                             optim_cfg=OptimConfig(g_lr=0.001, d_lr=0.002), loss_cfg=LossConfig())
    real = torch.randn(2, 1, R, R)
    faded, logs = apply_stage(module, real)
    assert G.synthesis.lod == D.lod == 1.5 and torch.equal(faded, fade_reals(real, 1.5))
    assert (float(logs["progress/resolution"]), float(logs["progress/alpha"])) == (16, 0.5)
    g_ratio, d_ratio = 4 / 5, 16 / 17  # lazy regularization: path length every 4, R1 every 16
    assert opts[0].param_groups[0]["lr"] == 0.003 * g_ratio and opts[1].param_groups[0]["lr"] == 0.002 * d_ratio
    # Adam restarts (official reset_opt_for_new_lod) when floor or ceil of the lod changes since the last minibatch
    for step, cur_nimg, reset in [(0, 1500, False), (1, 1000, False), (2, 1002, True), (3, 1998, False),
                                  (4, 2000, True), (5, 2002, False)]:
        for opt in opts:
            opt.zero_grad()
            sum(p.sum() for group in opt.param_groups for p in group["params"]).backward()
            opt.step()
        module.cur_nimg = cur_nimg
        apply_stage(module, real)  # batch 2: the previous minibatch was at cur_nimg - 2
        assert all(bool(opt.state) != reset for opt in opts), (step, cur_nimg)
    # minibatches of different sizes: the previous one is the module's prev_nimg, not this one's size back. The
    # fade starts after 1000 images; 998 -> 1006 crosses it, 1002 -> 1006 would not.
    opts[0].step()
    module.prev_nimg, module.cur_nimg = 998, 1006
    apply_stage(module, real)
    assert not opts[0].state


def test_minibatch_schedule_follows_the_resolution_and_is_checked():
    """The official minibatch_size_dict: the global minibatch of the stage's resolution (None where not listed),
    refused where it cannot split over the ranks or into D's minibatch-std groups; unused keys are ignored."""
    cfg = ProgressiveConfig(training_kimg=1, transition_kimg=1, minibatch={8: 256, 16: 128, 64: 32})
    sched = MinibatchSchedule(R, cfg)
    assert [sched(n) for n in (0, 999, 1000, 1001, 2999, 3000, 3001, 10**6)] == [256, 256, 256, 128, 128, 128,
                                                                                    None, None]
    G, D = Generator(progressive=True, **GNET), Discriminator(progressive=True, mbstd_group_size=4, **NET)
    dm = SimpleNamespace(batch_schedule=None)
    schedule_minibatch(cfg, G, D, dm, 2)  # 64: above the data's 32, unused
    assert dm.batch_schedule == sched
    for minibatch, world, message in [({8: 24}, 16, "24 does not split over 16 devices"),
                                      ({16: 12}, 2, "16: 12 gives 6 images per device, not a multiple of "
                                                    "model.discriminator.mbstd_group_size=4")]:
        with pytest.raises(ConfigError, match=message):
            schedule_minibatch(ProgressiveConfig(minibatch=minibatch), G, D, dm, world)
    with pytest.raises(ConfigError, match="needs a data module with a batch_schedule"):
        schedule_minibatch(cfg, G, D, object(), 1)
    # null (model.progressive.minibatch=null on the command line) lists no resolution: data.batch_size everywhere
    unlisted = ProgressiveConfig(training_kimg=1, transition_kimg=1, minibatch=None, batch_gpu=None, g_lr=None)
    assert (unlisted.minibatch, unlisted.batch_gpu, unlisted.g_lr) == ({}, {}, {})
    assert [MinibatchSchedule(R, unlisted)(n) for n in (0, 1500, 10**6)] == [None, None, None]
    with pytest.raises(ValueError, match=r"powers of two >= 4.*48: 16"):
        ProgressiveConfig(minibatch={48: 16})


# ----------------------------------------------------------------------------------------------- real runs
def _train(tmp, *overrides, wait: bool = True) -> subprocess.Popen:
    return train_process("experiment=config_d", "scale=cpu", "metrics=none", f"hydra.run.dir={tmp}",
                         "callbacks.progress.refresh_rate=0", "data.batch_size=8",
                         "model.progressive.training_kimg=0.016", "model.progressive.transition_kimg=0.032",
                         "callbacks.samples.every_kimg=100", "logger=csv", "trainer.log_every_n_steps=1", *overrides,
                         wait=wait)


def _log_column(tmp, name):
    import csv

    rows = list(csv.DictReader((tmp / "csv" / "metrics.csv").open()))
    return [float(r[name]) for r in rows if r.get(name)]


MINIBATCH = "model.progressive.minibatch={8:16,16:8,32:4}"


@pytest.mark.slow  # three real runs, about 30 s
def test_config_d_grows_8_16_32_and_resumes_mid_fade_exactly_after_sigkill(tmp_path):
    """48 images per phase (16 stable + 32 fade): 8x8 for 16 images, 16x16 faded in by 48, stable until 64, 32x32
    faded in by 96, with the global minibatch 16 / 8 / 4 at 8 / 16 / 32 (as the official minibatch_size_dict):
    0.136 kimg = 23 iterations. Straight vs a run SIGKILLed once its checkpoint at 0.08 kimg is written (in the
    16 -> 32 fade, lod 0.5), then resumed from it under another seed (a restart from zero would diverge), its first
    logged step the one after the checkpoint's: identical weights (one process: the torch RNG restored too)."""
    straight = tmp_path / "straight"
    _train(straight, "total_kimg=0.136", "callbacks.checkpoint.every_kimg=100", MINIBATCH)
    lods = _log_column(straight, "progress/lod")
    assert lods[0] == 2.0 and lods[-1] == 0.0 and lods == sorted(lods, reverse=True) and len(lods) == 23
    assert any(abs(x - 1.5) < 1e-6 for x in lods) and any(abs(x - 0.5) < 1e-6 for x in lods)
    resolutions, sizes = _log_column(straight, "progress/resolution"), _log_column(straight, "progress/minibatch")
    assert set(resolutions) == {8.0, 16.0, 32.0}
    assert sizes == [{8: 16, 16: 8, 32: 4}[int(r)] for r in resolutions]
    kimg = _log_column(straight, "kimg")
    assert [round(1000 * (b - a)) for a, b in zip([0.0, *kimg], kimg, strict=False)] == sizes  # images shown
    part = tmp_path / "part"
    ckpt = part / "checkpoints" / "last.ckpt"
    kill_at_checkpoint(_train(part, "total_kimg=100", "callbacks.checkpoint.every_kimg=0.08", MINIBATCH, wait=False),
                       ckpt)
    half = torch.load(ckpt, map_location="cpu", weights_only=True)["stylegan"]
    assert half["cur_nimg"] == 80 and len(half["rng_per_rank"]) == 1
    # evaluate and the tools take G_ema at the lod of its last minibatch (76 images: 0.625, in the 16 -> 32 fade)
    G, kimg = load_generator(ckpt)
    assert G.synthesis.lod == stage_at(76, 32, ProgressiveConfig(8, 0.016, 0.032)).lod and kimg == 0.08
    assert math.isclose(G.synthesis.lod, 0.625)
    _train(part, "total_kimg=0.136", "callbacks.checkpoint.every_kimg=100", f"ckpt_path={ckpt}", MINIBATCH, "seed=7")
    logged = [round(1000 * k) for k in _log_column(part, "kimg")]  # the killed run had flushed no rows
    assert logged == [round(1000 * k) for k in _log_column(straight, "kimg") if k > 0.0805] and logged[0] == 84
    a = torch.load(straight / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    b = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert a["stylegan"]["cur_nimg"] == b["stylegan"]["cur_nimg"] == 136
    assert a["state_dict"].keys() == b["state_dict"].keys() and "G.synthesis.b8.torgb.weight" in a["state_dict"]
    diff = {k: (v - b["state_dict"][k]).abs().max().item() for k, v in a["state_dict"].items() if v.is_floating_point()}
    assert max(diff.values()) == 0.0, {k: v for k, v in diff.items() if v}


def test_export_official_is_the_full_resolution_network():
    from stylegan.official import export_official, load_official

    torch.manual_seed(4)
    G, D = Generator(progressive=True, **GNET).eval(), Discriminator(progressive=True, **NET)
    blob = export_official(G, D)
    assert "progressive" not in blob["G_kwargs"] and "progressive" not in blob["D_kwargs"]
    G2, D2 = load_official(blob)
    z = torch.randn(2, 8)
    img = G(z, noise_mode="const")
    assert torch.equal(G2.eval()(z, noise_mode="const"), img) and torch.equal(D2(img), D(img))
