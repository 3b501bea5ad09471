"""Lazy regularization, G EMA and style mixing against the official training loop's formulas."""

from __future__ import annotations

import copy

import pytest
import torch

from stylegan.networks import Generator
from stylegan.training.config import LossConfig
from stylegan.training.ema import ema_beta, update_ema
from stylegan.training.lazy import lazy_adam, lazy_ratio
from stylegan.training.mixing import mix_styles


def test_lazy_adam_matches_official_numbers():
    """OFFICIAL_TRAINING.md Sec. 4: G lr 0.0016, betas (0, 0.991992); D lr 0.00188235, betas (0, 0.990585)."""
    p = [torch.nn.Parameter(torch.zeros(1))]
    g = lazy_adam(p, 0.002, (0.0, 0.99), 1e-8, interval=4).param_groups[0]
    d = lazy_adam(p, 0.002, (0.0, 0.99), 1e-8, interval=16).param_groups[0]
    assert g["lr"] == pytest.approx(0.0016, abs=1e-12) and g["betas"][1] == pytest.approx(0.991992, abs=1e-6)
    assert d["lr"] == pytest.approx(0.00188235, abs=1e-8) and d["betas"][1] == pytest.approx(0.990585, abs=1e-6)
    assert g["betas"][0] == 0 and g["eps"] == 1e-8
    assert lazy_ratio(None) == lazy_ratio(1) == 1.0


def test_lazy_schedule_in_one_place():
    """Lazy: path length every 4, R1 every 16 (their iterations), Adam corrected for those intervals. Not lazy
    (configs A-B): every step, in the main step, no Adam correction. Disabled: never, but Adam keeps the correction
    of its interval (the official loops correct whenever a reg interval is set); interval 1: none."""
    lazy, eager, off = LossConfig(), LossConfig(lazy=False), LossConfig(pl_weight=0, r1_gamma=0)
    assert [i for i in range(33) if lazy.path_length.due(i)] == [0, 4, 8, 12, 16, 20, 24, 28, 32]
    assert [i for i in range(33) if lazy.r1.due(i)] == [0, 16, 32]
    assert (lazy.path_length.adam_interval, lazy.r1.adam_interval) == (4, 16)
    assert not lazy.r1.with_main and eager.r1.with_main and eager.path_length.with_main
    assert all(eager.r1.due(i) and eager.path_length.due(i) for i in range(5))
    assert lazy_ratio(eager.r1.adam_interval) == lazy_ratio(eager.path_length.adam_interval) == 1.0
    assert not any(off.r1.due(i) or off.path_length.due(i) for i in range(20))
    assert (off.path_length.adam_interval, off.r1.adam_interval) == (4, 16)
    assert lazy_ratio(LossConfig(pl_weight=0, g_reg_interval=1).path_length.adam_interval) == 1.0
    with pytest.raises(ValueError, match=r"loss\.d_reg_interval"):
        LossConfig(d_reg_interval=0)


def test_loss_wgan_gp_composes_without_r1_and_path_length():
    """`loss=wgan_gp` (StyleGAN1's CelebA-HQ objective): WGAN-GP, R1 and path length off; bad values refused."""
    from pathlib import Path

    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    with initialize_config_dir(config_dir=str(Path(__file__).resolve().parents[1] / "conf"), version_base="1.3"):
        cfg = instantiate(compose(config_name="train", overrides=["loss=wgan_gp"]).loss)
    assert (cfg.gan, cfg.wgan_lambda, cfg.wgan_target, cfg.wgan_epsilon) == ("wgan_gp", 10.0, 1.0, 0.001)
    assert not cfg.r1.enabled and not cfg.path_length.enabled and cfg.style_mixing_prob == 0.9
    with pytest.raises(ValueError, match=r"loss\.gan must be 'logistic' or 'wgan_gp', got 'hinge'"):
        LossConfig(gan="hinge")
    with pytest.raises(ValueError, match=r"loss\.wgan_target > 0"):
        LossConfig(gan="wgan_gp", wgan_target=0)


def test_ema_beta_schedule():
    # official: beta = 0.5 ** (batch / max(min(ema_kimg*1000, cur_nimg*rampup), 1e-8))
    assert ema_beta(32, 0, 10, 0.05) == 0.0  # first iteration: G_ema = G
    assert ema_beta(32, 10**7, 10, 0.05) == pytest.approx(0.997784, abs=1e-6)  # steady state, half-life 10 kimg
    assert ema_beta(32, 1000, 10, 0.05) == pytest.approx(0.5 ** (32 / 50), rel=1e-12)  # ramp-up: 1000*0.05 = 50
    assert ema_beta(32, 1000, 10, None) == pytest.approx(0.5 ** (32 / 10000), rel=1e-12)
    # half-life: after ema_kimg thousand images the old weights have weight 1/2
    beta = ema_beta(100, 10**9, 1.0, None)
    assert beta**10 == pytest.approx(0.5, rel=1e-12)


def test_update_ema_lerps_parameters_and_copies_buffers():
    torch.manual_seed(0)
    G = Generator(z_dim=4, w_dim=4, img_resolution=8, img_channels=1, channel_base=32, channel_max=4,
                  mapping_kwargs={"num_layers": 1})
    G_ema = copy.deepcopy(G)
    with torch.no_grad():
        for p in G.parameters():
            p.add_(torch.randn_like(p))
        G.mapping.w_avg.fill_(3.0)
    before = {k: v.clone() for k, v in G_ema.named_parameters()}
    update_ema(G_ema, G, 0.9)
    for name, p in G.named_parameters():
        expected = 0.9 * before[name] + 0.1 * p
        torch.testing.assert_close(dict(G_ema.named_parameters())[name], expected, rtol=1e-6, atol=1e-6)
    assert torch.equal(G_ema.mapping.w_avg, G.mapping.w_avg)


def test_style_mixing_follows_official_rng_order():
    """cutoff = random_(1, num_ws); coin = rand() < p; z2 = randn_like(z) always; ws[:, cutoff:] from z2."""
    torch.manual_seed(0)
    G = Generator(z_dim=8, w_dim=8, img_resolution=16, img_channels=1, channel_base=64, channel_max=8,
                  mapping_kwargs={"num_layers": 2})
    z = torch.randn(3, 8)
    c = torch.zeros(3, 0)
    ws = G.mapping(z, c)
    for seed in range(20):
        torch.manual_seed(seed)
        cutoff = int(torch.empty([], dtype=torch.int64).random_(1, G.num_ws))
        mixed = float(torch.rand([])) < 0.5
        ws2 = G.mapping(torch.randn_like(z), c)
        after = torch.randn(1)  # the next draw must be the same: mix_styles consumed exactly these
        torch.manual_seed(seed)
        out = mix_styles(G, ws, z, c, prob=0.5)
        assert torch.equal(torch.randn(1), after)
        cut = cutoff if mixed else G.num_ws
        assert torch.equal(out[:, :cut], ws[:, :cut]) and torch.equal(out[:, cut:], ws2[:, cut:])
    assert mix_styles(G, ws, z, c, prob=0.0) is ws


def test_ranks_get_distinct_reproducible_streams():
    from stylegan.training.state import per_rank_seed, reseed_for_rank

    seeds = {per_rank_seed(12345, r, 8) for r in range(8)}
    assert len(seeds) == 8 and per_rank_seed(12345, 3, 8) == per_rank_seed(12345, 3, 8)
    draws = []
    for rank in range(2):  # both ranks start from the same stream, as after seed_everything or a restore
        torch.manual_seed(7)
        reseed_for_rank(rank, 2)
        draws.append(torch.randn(4))
    assert not torch.equal(draws[0], draws[1])
    torch.manual_seed(7)
    reseed_for_rank(0, 1)  # single process: untouched
    after_noop = torch.randn(4)
    torch.manual_seed(7)
    assert torch.equal(after_noop, torch.randn(4))


def test_global_draws_are_the_global_batch_sliced_by_rank():
    """draws=global: rank r of W gets rows r, r+W, ... of the 1-process draw; scalars are the same on all ranks."""
    from stylegan.training.draws import Draws

    torch.manual_seed(7)
    one = Draws("global")
    one.start(torch.device("cpu"), 0, 1)
    full, k1, u1 = one.normal([6, 3], torch.float64), one.randint(1, 9), one.rand()
    for r in range(3):
        torch.manual_seed(7)
        d = Draws("global")
        d.start(torch.device("cpu"), r, 3)
        assert torch.equal(d.normal([2, 3], torch.float64), full[r::3])
        assert (d.randint(1, 9), d.rand()) == (k1, u1)
    restored = Draws("global")
    restored.start(torch.device("cpu"), 0, 1, state=one.state())
    assert torch.equal(restored.normal([4]), one.normal([4]))
    with pytest.raises(ValueError, match="draws must be one of"):
        Draws("per_device")


@pytest.mark.parametrize("preset,g,d", [
    # stylegan2-ada-pytorch --cfg=cifar: lr 0.0025, G_reg_interval 4 although pl_weight is 0, D_reg_interval 16
    ("experiment=cifar", (0.0025 * 4 / 5, 0.99 ** (4 / 5)), (0.0025 * 16 / 17, 0.99 ** (16 / 17))),
    # TF StyleGAN2 config C: lazy_regularization (G every 4, D every 16) with path length off; the growing
    # schedule's lr 0.001 at the first resolutions
    ("experiment=config_c", (0.001 * 4 / 5, 0.99 ** (4 / 5)), (0.001 * 16 / 17, 0.99 ** (16 / 17))),
    # the demo: no G correction (loss.g_reg_interval=1), lazy R1 every 16 at lr 0.003
    ("experiment=mnist_demo", (0.003, 0.99), (0.003 * 16 / 17, 0.99 ** (16 / 17))),
    # StyleGAN1's WGAN-GP: no lazy regularization at all
    ("loss=wgan_gp", (0.002, 0.99), (0.002, 0.99)),
])
def test_the_presets_optimizers_have_the_official_lazy_correction(preset, g, d):
    """Adam's lr and beta2 of G and D as the module builds them from the composed preset, against the official
    numbers written out here (lr x c, beta ** c, c = interval / (interval + 1))."""
    from pathlib import Path

    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    with initialize_config_dir(config_dir=str(Path(__file__).resolve().parents[1] / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[preset, "scale=cpu"])
    opt_g, opt_d = instantiate(cfg.model).configure_optimizers()
    for opt, (lr, beta2) in ((opt_g, g), (opt_d, d)):
        group = opt.param_groups[0]
        assert group["lr"] == pytest.approx(lr, rel=1e-12) and group["betas"][1] == pytest.approx(beta2, rel=1e-12)
