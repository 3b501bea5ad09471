"""The LightningModule's training iterations against an independent, plain-PyTorch re-implementation of the
official loop (../shared/reference/OFFICIAL_TRAINING.md): phases Gmain, Greg, Dmain, Dreg in that order, each
with its own latents, lazy intervals with Adam's lr*c / beta**c correction, requires_grad toggling, style
mixing, the path-length running mean and the G EMA. Both run in float64 from the same weights, batches and RNG
state; the weights must agree to float64 rounding. The losses are written out inline here (not imported from
``stylegan.losses``) so that a wiring mistake in either place shows up.
"""

from __future__ import annotations

import copy
import math

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from stylegan.networks import Discriminator, Generator
from stylegan.training import StyleGAN2Module

N, LR, BETAS, GAMMA, PL_WEIGHT, MIXING = 4, 0.002, (0.0, 0.99), 0.5, 2.0, 0.9
INTERVAL = 2  # both regularizers are due at iteration 0 and not at iteration 1


class _Recorder(L.Callback):
    """The RNG state and the batch at the start of every training iteration."""

    def __init__(self) -> None:
        self.seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.seen.append((torch.get_rng_state(), batch[0].detach().clone()))


def _networks() -> tuple[Generator, Discriminator]:
    torch.manual_seed(3)
    G = Generator(z_dim=8, w_dim=8, img_resolution=16, img_channels=1, channel_base=64, channel_max=16,
                  use_noise=False, mapping_kwargs={"num_layers": 2})
    D = Discriminator(img_resolution=16, img_channels=1, channel_base=64, channel_max=16, mbstd_group_size=4)
    return G.double(), D.double()


def _run_G(G: Generator, z: torch.Tensor, update_emas: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Official ``run_G``: mapping, then style mixing if enabled (cutoff, coin, second z: always drawn), then
    synthesis."""
    c = torch.zeros([z.shape[0], 0], dtype=z.dtype)
    ws = G.mapping(z, c, update_emas=update_emas)
    if MIXING <= 0:
        return G.synthesis(ws), ws
    cutoff = int(torch.empty([], dtype=torch.int64).random_(1, ws.shape[1]))
    if float(torch.rand([])) >= MIXING:
        cutoff = ws.shape[1]
    ws2 = G.mapping(torch.randn_like(z), c, update_emas=False)
    ws = torch.cat([ws[:, :cutoff], ws2[:, cutoff:]], dim=1)
    return G.synthesis(ws), ws


def _reference(G, D, iterations, interval, wgan=False):
    """Plain-PyTorch official loop; returns (G, D, G_ema, pl_mean). ``interval`` 1: not lazy, each regularizer in
    its network's main step (official "Gboth" / "Dboth"), no Adam correction. ``wgan``: the official TF G_wgan /
    D_wgan_gp instead (lambda 10, target 1, epsilon 0.001; the interpolation weights drawn after D's fakes), no R1
    and no path length."""
    G, D = copy.deepcopy(G), copy.deepcopy(D)
    G_ema = copy.deepcopy(G).requires_grad_(False)
    c = interval / (interval + 1) if interval > 1 and not wgan else 1.0
    opt_g = torch.optim.Adam(G.parameters(), lr=LR * c, betas=(BETAS[0] ** c, BETAS[1] ** c), eps=1e-8)
    opt_d = torch.optim.Adam(D.parameters(), lr=LR * c, betas=(BETAS[0] ** c, BETAS[1] ** c), eps=1e-8)
    pl_mean, cur_nimg = torch.zeros([], dtype=torch.float64), 0
    no_c = torch.zeros([N, 0], dtype=torch.float64)
    for i, (rng, real) in enumerate(iterations):
        torch.set_rng_state(rng)
        real = real.double()
        # Gmain: only G trains
        G.requires_grad_(True), D.requires_grad_(False)
        img, _ = _run_G(G, torch.randn([N, G.z_dim]))
        g_main = -D(img, no_c).mean() if wgan else F.softplus(-D(img, no_c)).mean()
        if interval > 1 or wgan:
            g_main.backward()
            opt_g.step(), opt_g.zero_grad(set_to_none=True)
            g_main = 0
        if i % interval == 0 and not wgan:  # Greg: path length on half the batch, noise / sqrt(H*W)
            img, ws = _run_G(G, torch.randn([N // 2, G.z_dim]))
            y = torch.randn(img.shape, dtype=img.dtype) / math.sqrt(img.shape[2] * img.shape[3])
            (g,) = torch.autograd.grad((img * y).sum(), ws, create_graph=True)
            lengths = g.square().sum(2).mean(1).sqrt()
            a = pl_mean + 0.01 * (lengths.mean() - pl_mean)
            (g_main + (lengths - a).square().mean() * PL_WEIGHT * interval).backward()
            opt_g.step(), opt_g.zero_grad(set_to_none=True)
            pl_mean = a.detach()
        # Dmain: only D trains; fakes without graph (w_avg is tracked here)
        G.requires_grad_(False), D.requires_grad_(True)
        with torch.no_grad():
            fake, _ = _run_G(G, torch.randn([N, G.z_dim]), update_emas=True)
        x = real.detach().requires_grad_(interval == 1)
        real_logits = D(x, no_c)
        d_main = F.softplus(D(fake, no_c)).mean() + F.softplus(-real_logits).mean()
        if wgan:
            d_main = (D(fake, no_c) - real_logits + 0.001 * real_logits.square()).mean()
            u = torch.rand([N, 1, 1, 1], dtype=torch.float32).double()
            mixed = (real + u * (fake - real)).requires_grad_(True)
            (g,) = torch.autograd.grad(D(mixed, no_c).sum(), mixed, create_graph=True)
            d_main = d_main + 10 * (g.square().sum([1, 2, 3]).sqrt() - 1).square().mean()
        if interval > 1 or wgan:
            d_main.backward()
            opt_d.step(), opt_d.zero_grad(set_to_none=True)
            d_main = 0
        if i % interval == 0 and not wgan:  # Dreg: R1 on reals
            if interval > 1:
                x = real.detach().requires_grad_(True)
                real_logits = D(x, no_c)
            (g,) = torch.autograd.grad(real_logits.sum(), x, create_graph=True)
            (d_main + g.square().sum([1, 2, 3]).mean() * (GAMMA / 2) * interval).backward()
            opt_d.step(), opt_d.zero_grad(set_to_none=True)
        # G EMA: half-life N*10/32 images, ramp-up 0.05
        beta = 0.5 ** (N / max(min(N * 10 / 32 * 1000, cur_nimg * 0.05), 1e-8))
        with torch.no_grad():
            for pe, p in zip(G_ema.parameters(), G.parameters(), strict=True):
                pe.copy_(p + beta * (pe - p))
            for be, b in zip(G_ema.buffers(), G.buffers(), strict=True):
                be.copy_(b)
        cur_nimg += N
    return G, D, G_ema, pl_mean


@pytest.mark.parametrize("iterations,lazy,gan", [(2, True, "logistic"), (3, True, "logistic"), (2, False, "logistic"),
                                                (2, False, "wgan_gp")])
def test_module_matches_an_independent_official_loop(iterations, lazy, gan):
    G, D = _networks()
    g0, d0 = copy.deepcopy(G), copy.deepcopy(D)
    loss = {"r1_gamma": GAMMA, "d_reg_interval": INTERVAL, "pl_weight": PL_WEIGHT, "g_reg_interval": INTERVAL,
            "style_mixing_prob": MIXING, "lazy": lazy}
    if gan == "wgan_gp":  # as conf/loss/wgan_gp.yaml: no R1, no path length, not lazy
        loss.update(gan=gan, r1_gamma=0.0, pl_weight=0.0)
    module = StyleGAN2Module(G, D, loss=loss, optim={"g_lr": LR, "d_lr": LR, "betas": list(BETAS)})
    torch.manual_seed(7)
    data = TensorDataset(torch.rand([N * iterations, 1, 16, 16]) * 2 - 1, torch.zeros([N * iterations, 0]))
    recorder = _Recorder()
    trainer = L.Trainer(accelerator="cpu", devices=1, precision="64-true", max_epochs=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[recorder])
    trainer.fit(module, DataLoader(data, batch_size=N))
    assert len(recorder.seen) == iterations and module.iteration == iterations

    ref_G, ref_D, ref_G_ema, ref_pl_mean = _reference(g0, d0, recorder.seen, INTERVAL if lazy else 1,
                                                      wgan=gan == "wgan_gp")
    for name, ours, ref in [("G", module.G, ref_G), ("D", module.D, ref_D), ("G_ema", module.G_ema, ref_G_ema)]:
        theirs = ref.state_dict()
        for k, v in ours.state_dict().items():
            torch.testing.assert_close(v, theirs[k], rtol=1e-10, atol=1e-12, msg=f"{name}.{k}")
    torch.testing.assert_close(module.pl_mean, ref_pl_mean, rtol=1e-10, atol=0)
    # the run did move the weights (so agreement is not vacuous)
    assert not torch.allclose(module.D.state_dict()["b4.out.weight"], d0.state_dict()["b4.out.weight"])
