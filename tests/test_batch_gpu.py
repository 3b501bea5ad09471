"""Gradient accumulation in rounds (``model.batch_gpu``, the official ``--batch-gpu``) against an independent float64
loop of the official semantics (stylegan3 / stylegan2-ada-pytorch ``training_loop`` + ``StyleGAN2Loss``): each phase
splits this device's batch into rounds, runs its loss on every round (a mean over the round, times the lazy gain),
back-propagates each, and steps once; minibatch-std groups, style mixing and path length (with its running mean,
updated after every round) work per round; the G EMA and ADA see the whole minibatch. The reference is written
here from those semantics with the project's networks and pure loss functions; it draws its random numbers in the
module's order (latents at the start of each phase, for the phase's whole batch, then split)."""

from __future__ import annotations

import copy

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from stylegan.losses import (
    discriminator_loss,
    generator_loss,
    path_length_noise,
    path_length_penalty,
    path_lengths,
    r1_loss,
    r1_penalty,
)
from stylegan.networks import Discriminator, Generator
from stylegan.training import StyleGAN2Module

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks (conftest)

N, ROUND, GROUP, LR, GAMMA, PL_WEIGHT, MIXING, INTERVAL = 8, 4, 2, 0.002, 0.5, 2.0, 0.9, 2


def _networks() -> tuple[Generator, Discriminator]:
    torch.manual_seed(3)
    G = Generator(z_dim=8, w_dim=8, img_resolution=8, img_channels=1, channel_base=32, channel_max=8,
                  mapping_kwargs={"num_layers": 2})
    D = Discriminator(img_resolution=8, img_channels=1, channel_base=32, channel_max=8, mbstd_group_size=GROUP)
    return G.double(), D.double()


class _Recorder(L.Callback):
    """The torch RNG state and the batch at the start of every iteration."""

    def __init__(self) -> None:
        self.seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.seen.append((torch.get_rng_state(), batch[0].detach().clone()))


class _Observer(torch.nn.Module):
    """An identity augmentation whose ``observe`` (ADA's p controller hook) records the logits it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int, tuple[int, ...]]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def observe(self, real_logits: torch.Tensor, iteration: int) -> dict:
        self.calls.append((iteration, tuple(real_logits.shape)))
        return {}


def _train(G, D, iterations: int, batch_gpu: int | None, lazy: bool = True, augment=None) -> StyleGAN2Module:
    loss = {"r1_gamma": GAMMA, "d_reg_interval": INTERVAL, "pl_weight": PL_WEIGHT, "g_reg_interval": INTERVAL,
            "style_mixing_prob": MIXING, "lazy": lazy}
    module = StyleGAN2Module(copy.deepcopy(G), copy.deepcopy(D), loss=loss, batch_gpu=batch_gpu, augment=augment,
                             optim={"g_lr": LR, "d_lr": LR, "betas": [0.0, 0.99]})
    torch.manual_seed(7)
    data = TensorDataset(torch.rand([N * iterations, 1, 8, 8]) * 2 - 1, torch.zeros([N * iterations, 0]))
    module.recorder = _Recorder()
    trainer = L.Trainer(accelerator="cpu", devices=1, precision="64-true", max_epochs=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[module.recorder])
    trainer.fit(module, DataLoader(data, batch_size=N))
    assert module.iteration == iterations
    return module


def _run_G(G: Generator, z: torch.Tensor, update_emas: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Official ``run_G`` on one round: mapping, style mixing (cutoff, coin, second z always drawn), synthesis."""
    c = torch.zeros([z.shape[0], 0], dtype=torch.float64)
    ws = G.mapping(z, c, update_emas=update_emas)
    cutoff = int(torch.empty([], dtype=torch.int64).random_(1, ws.shape[1]))
    cutoff = cutoff if float(torch.rand([], dtype=torch.float32)) < MIXING else ws.shape[1]
    ws2 = G.mapping(torch.randn_like(z), c)
    ws = torch.cat([ws[:, :cutoff], ws2[:, cutoff:]], dim=1)
    return G.synthesis(ws), ws


def _latents(n: int, G: Generator) -> torch.Tensor:
    """A phase's z for all its rounds, drawn at once (float32, as the module's ``Draws``)."""
    return torch.randn([n, G.z_dim], dtype=torch.float32)


def _reference(G, D, seen, batch_gpu: int, lazy: bool):
    """The official accumulation in plain PyTorch; returns (G, D, G_ema, pl_mean). Float64 by default, as the
    module's precision=64-true: the synthesis noise is drawn in the default dtype; z in float32 as the module's."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        return _official_loop(G, D, seen, batch_gpu, lazy)
    finally:
        torch.set_default_dtype(default)


def _official_loop(G, D, seen, batch_gpu: int, lazy: bool):
    G, D = copy.deepcopy(G), copy.deepcopy(D)
    G_ema = copy.deepcopy(G).requires_grad_(False)
    interval = INTERVAL if lazy else 1
    r = interval / (interval + 1) if lazy else 1.0
    opt_g = torch.optim.Adam(G.parameters(), lr=LR * r, betas=(0.0, 0.99**r), eps=1e-8)
    opt_d = torch.optim.Adam(D.parameters(), lr=LR * r, betas=(0.0, 0.99**r), eps=1e-8)
    pl_mean, cur_nimg, c = torch.zeros([], dtype=torch.float64), 0, torch.zeros([batch_gpu, 0], dtype=torch.float64)

    def step(opt):
        opt.step()
        opt.zero_grad(set_to_none=True)

    for i, (rng, real) in enumerate(seen):
        torch.set_rng_state(rng)
        due = i % interval == 0
        G.requires_grad_(True), D.requires_grad_(False)
        for z in _latents(N, G).split(batch_gpu):  # Gmain: gain 1, the rounds' gradients summed
            img, _ = _run_G(G, z)
            generator_loss(D(img, c)).backward()
        if lazy or not due:
            step(opt_g)
        if due:  # Greg ("Gboth" when not lazy): path length on batch_gpu / 2 per round, gain = interval
            n = batch_gpu // 2
            for z in _latents(len(real) // batch_gpu * n, G).split(n):
                img, ws = _run_G(G, z)
                y = path_length_noise(img, torch.randn(img.shape, dtype=img.dtype))
                penalty, pl_mean = path_length_penalty(path_lengths(img, ws, y), pl_mean, 0.01)
                (penalty.mean() * PL_WEIGHT * interval).backward()  # a' = lerp of the round: per-round mean
            step(opt_g)
        G.requires_grad_(False), D.requires_grad_(True)
        both = due and not lazy
        for x, z in zip(real.double().split(batch_gpu), _latents(N, G).split(batch_gpu), strict=True):
            with torch.no_grad():
                fake, _ = _run_G(G, z, update_emas=True)
            x = x.detach().requires_grad_(both)
            real_logits = D(x, c)
            loss = discriminator_loss(real_logits, D(fake, c))
            if both:  # "Dboth": R1 on the main pass
                loss = loss + r1_loss(r1_penalty(x, real_logits), GAMMA)
            loss.backward()
        if not both:
            step(opt_d)
        if due and lazy:  # Dreg: R1 per round, gain = interval
            for x in real.double().split(batch_gpu):
                x = x.detach().requires_grad_(True)
                (r1_loss(r1_penalty(x, D(x, c)), GAMMA) * interval).backward()
        if due:
            step(opt_d)
        beta = 0.5 ** (N / max(min(N * 10 / 32 * 1000, cur_nimg * 0.05), 1e-8))  # EMA of the whole minibatch
        with torch.no_grad():
            for pe, p in zip(G_ema.parameters(), G.parameters(), strict=True):
                pe.copy_(p.lerp(pe, beta))
            for be, b in zip(G_ema.buffers(), G.buffers(), strict=True):
                be.copy_(b)
        cur_nimg += N
    return G, D, G_ema, pl_mean


def _assert_same(module, G, D, G_ema, pl_mean, exact: bool = False) -> None:
    tol = dict(rtol=0, atol=0) if exact else dict(rtol=1e-10, atol=1e-12)
    for name, ours, ref in [("G", module.G, G), ("D", module.D, D), ("G_ema", module.G_ema, G_ema)]:
        theirs = ref.state_dict()
        for k, v in ours.state_dict().items():
            torch.testing.assert_close(v, theirs[k], **tol, msg=f"{name}.{k}")
    torch.testing.assert_close(module.pl_mean, pl_mean, **tol)


@pytest.mark.parametrize("lazy", [True, False])
def test_rounds_match_an_independent_official_accumulation_loop(lazy):
    """3 iterations of 8 images in 2 rounds of 4 (minibatch-std groups of 2, synthesis noise, style mixing): R1 and
    path length at iterations 0 and 2 (lazy, each its own step) or every iteration in the main step (not lazy)."""
    G, D = _networks()
    observer = _Observer()
    module = _train(G, D, 3, ROUND, lazy, augment=observer)
    _assert_same(module, *_reference(G, D, module.recorder.seen, ROUND, lazy))
    assert float(module.pl_mean) > 0 and not torch.equal(module.D.b8.conv0.weight, D.b8.conv0.weight)
    # ADA's controller sees the whole minibatch's real logits once per iteration, not one round's
    assert observer.calls == [(i, (N, 1)) for i in range(3)]
    logged = module.trainer.callback_metrics  # the global minibatch and its rounds, for sweep reports
    assert (float(logged["progress/minibatch"]), float(logged["progress/rounds"])) == (N, N // ROUND)


def test_one_round_is_the_unsplit_module_and_two_are_not():
    """batch_gpu >= the per-device batch is one round: the very same run as batch_gpu=null; 2 rounds differ (the
    minibatch-std groups, mixing cutoffs and path-length means are then per round)."""
    G, D = _networks()
    whole = _train(G, D, 2, None)
    for batch_gpu in (N, 2 * N):
        _assert_same(_train(G, D, 2, batch_gpu), whole.G, whole.D, whole.G_ema, whole.pl_mean, exact=True)
    split = _train(G, D, 2, ROUND)
    assert not torch.allclose(split.D.b8.conv0.weight, whole.D.b8.conv0.weight, rtol=1e-6, atol=0)


@pytest.mark.parametrize("value,says", [
    ("3", "model.batch_gpu=3 does not divide data.batch_size=8 (per device) into rounds"),
    ("2", "model.batch_gpu=2 is not a multiple of model.discriminator.mbstd_group_size=4"),
    ("0", "model.batch_gpu=0 must be a positive integer"),
])
def test_a_batch_gpu_that_cannot_split_the_batch_is_one_line(capsys, tmp_path, value, says):
    """The official train.py refuses --batch not a multiple of --batch-gpu (times --gpus) and --batch-gpu below
    --mbstd; a round that is not whole groups cannot be grouped (the layer's reshape)."""
    from sweeping import QUICK, refusal

    line = refusal(capsys, ["stylegan-train", *QUICK, "logger=none", f"hydra.run.dir={tmp_path}",
                            f"model.batch_gpu={value}"])
    assert line.startswith(f"stylegan-train: error: {says}"), line


def test_resume_with_rounds_is_exact(tmp_path):
    """The real entry point, experiment=smoke (8 images per minibatch) in 2 rounds of 4, R1 and path length every
    2nd minibatch: 4 minibatches straight == 2, a new process-like start from the checkpoint, 2 more."""
    from sweeping import in_process

    common = ["experiment=smoke", "model.batch_gpu=4", "loss.d_reg_interval=2", "loss.g_reg_interval=2",
              "logger=none", "callbacks.samples.every_kimg=1000", "callbacks.checkpoint.every_kimg=1000"]
    in_process(f"hydra.run.dir={tmp_path / 'straight'}", "total_kimg=0.032", *common)
    in_process(f"hydra.run.dir={tmp_path / 'half'}", "total_kimg=0.016", *common)
    half = tmp_path / "half" / "checkpoints" / "last.ckpt"
    in_process(f"hydra.run.dir={tmp_path / 'resumed'}", "total_kimg=0.032", f"ckpt_path={half}", *common)
    a, b = (torch.load(tmp_path / run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
            for run in ("straight", "resumed"))
    assert a["stylegan"]["iteration"] == b["stylegan"]["iteration"] == 4
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for k, v in a["state_dict"].items():
        assert torch.equal(v, b["state_dict"][k]), k
    for opt_a, opt_b in zip(a["optimizer_states"], b["optimizer_states"], strict=True):
        for i, state in opt_a["state"].items():
            assert all(torch.equal(v, opt_b["state"][i][k]) for k, v in state.items()), i


def test_a_nan_in_the_last_round_drops_the_step_and_the_path_length_mean():
    """NaN guard across rounds: a non-finite path length in round 2 of 2 drops the whole G reg step (counted) and
    keeps the running mean of before the phase, not the one round 1 had moved."""
    G, D = _networks()
    module = StyleGAN2Module(G, D, loss={"r1_gamma": GAMMA, "pl_weight": PL_WEIGHT}, batch_gpu=ROUND)
    calls, eager = [], module._path_lengths

    def second_round_nan(z, c):
        calls.append(len(calls))
        lengths = eager(z, c)
        return lengths * float("nan") if len(calls) == 2 else lengths

    module._path_lengths = second_round_nan
    data = TensorDataset(torch.rand([N, 1, 8, 8], dtype=torch.float64) * 2 - 1, torch.zeros([N, 0]))
    trainer = L.Trainer(accelerator="cpu", devices=1, precision="64-true", max_epochs=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, DataLoader(data, batch_size=N))
    assert calls == [0, 1] and dict(module.skip_counts()) == {"Greg": 1}
    assert float(module.pl_mean) == 0.0
    assert all(torch.isfinite(p).all() for p in module.G.parameters())


def test_progressive_growing_rounds_follow_the_official_minibatch_gpu_dict():
    """experiment=config_d on one device: rounds = minibatch_size_dict[res] / minibatch_gpu_dict[res] as NVlabs
    run_training.py configs A-D (sizes typed in from it), the resolution from the growth schedule; none with
    model.batch_gpu=null (scale=cpu)."""
    from stylegan.training.progressive import ProgressiveConfig
    from stylegan.training.rounds import count_rounds
    from test_presets import _compose

    official = {8: (256, 32), 16: (128, 16), 32: (64, 8), 64: (32, 4), 128: (32, 4)}  # size, minibatch_gpu
    for overrides, no_rounds in ((["data.resolution=128"], False), (["data.resolution=128", "scale=cpu"], True)):
        m = _compose(["experiment=config_d", "trainer.devices=1", *overrides]).model
        cfg = ProgressiveConfig(**m.progressive)
        D = Discriminator(img_resolution=128, img_channels=1, channel_base=128, channel_max=4, mbstd_group_size=4)
        for kimg, res in ((0, 8), (700, 16), (2400, 32), (4000, 64), (6000, 128)):  # stable 600 + fade 600 each
            size, per_round = official[res]
            assert count_rounds(size, m.batch_gpu, D, cfg, kimg * 1000) == (1 if no_rounds else size // per_round)
