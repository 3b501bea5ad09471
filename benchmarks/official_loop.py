"""The official StyleGAN2 training iteration, timed beside ours (``train_throughput.py --official``).

The networks and ``StyleGAN2Loss`` are imported from a stylegan2-ada-pytorch (or stylegan3) checkout in an ignored
folder, never copied. One iteration is the work of the official ``training_loop.py`` per minibatch: the phases
Gmain, Greg (every G interval), Dmain, Dreg (every D interval), each with ``requires_grad`` on its network only,
``zero_grad``, ``accumulate_gradients`` (gain = the interval) on each round of ``batch_gpu`` images (the config's
``model.batch_gpu``, as the official ``--batch-gpu``; null: one round), ``nan_to_num`` of the gradients and an Adam
step with the lazy ratio (lr x r, betas ^ r, r = interval / (interval + 1)); then the G EMA (lerp of the parameters,
copy of the buffers). Not timed, as in the official loop's step: the augment pipe (off), statistics and snapshots.
The official loop draws its latents on the device for all phases at once and its labels on the host; so does this.
``compare_with_module``: the project's module against this loop from the same weights, batches and latents
(``seed_spread.py check``).
"""

from __future__ import annotations

import copy
import time

import torch

from stylegan.official import export_official


def build_networks(official, model, fp16_res: int, device: str):
    """The official G and D with our networks' kwargs and weights (export_official), ``num_fp16_res`` = fp16_res."""
    nets, flavor = official
    blob = export_official(model.G, model.D)
    gk, dk = dict(blob["G_kwargs"]), dict(blob["D_kwargs"])
    top = {k: gk.pop(k) for k in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs")}
    gk["num_fp16_res"] = dk["num_fp16_res"] = fp16_res
    if flavor == "ada":
        gk.pop("fused_modconv_default", None)
        G = nets.Generator(**top, synthesis_kwargs=gk)
    else:
        G = nets.Generator(**top, **gk)
    D = nets.Discriminator(**dk)
    G.load_state_dict(blob["G"])
    D.load_state_dict(blob["D"])
    return G.train().requires_grad_(False).to(device), D.train().requires_grad_(False).to(device)


def build_loss(official, G, D, loss_cfg, device: str):
    from training.loss import StyleGAN2Loss

    kw = dict(r1_gamma=loss_cfg.r1_gamma, style_mixing_prob=loss_cfg.style_mixing_prob, pl_weight=loss_cfg.pl_weight,
              pl_batch_shrink=loss_cfg.pl_batch_shrink, pl_decay=loss_cfg.pl_decay)
    if official[1] == "ada":
        return StyleGAN2Loss(torch.device(device), G.mapping, G.synthesis, D, **kw)
    return StyleGAN2Loss(torch.device(device), G, D, **kw)


def build_phases(G, D, cfg) -> list[dict]:
    """Official phase list: (name, module, opt, interval); lazy ratio on lr and betas."""
    phases = []
    for name, module, lr, interval in (("G", G, cfg.model.optim.g_lr, cfg.loss.g_reg_interval),
                                       ("D", D, cfg.model.optim.d_lr, cfg.loss.d_reg_interval)):
        r = interval / (interval + 1)
        betas = tuple(b ** r for b in cfg.model.optim.get("betas", (0.0, 0.99)))
        opt = torch.optim.Adam(module.parameters(), lr=lr * r, betas=betas, eps=1e-8)
        phases += [dict(name=name + "main", module=module, opt=opt, interval=1),
                   dict(name=name + "reg", module=module, opt=opt, interval=interval)]
    return phases


def iteration(phases, loss, G, G_ema, real: torch.Tensor, real_c: torch.Tensor, batch_idx: int, cur_nimg: int,
              ema_kimg: float, ema_rampup: float | None, batch_gpu: int | None = None, flavor: str = "ada") -> None:
    """One official iteration on this device's ``real`` batch, each phase in rounds of ``batch_gpu`` images (the
    rounds' gradients summed); ``flavor``: 'ada' (``accumulate_gradients(sync=...)``) or 'stylegan3' (``cur_nimg``)."""
    device, n = real.device, real.shape[0]
    size = min(batch_gpu or n, n)
    all_z = torch.randn([len(phases), n, G.z_dim], device=device)
    all_c = real_c[torch.randint(n, [len(phases), n], device=device)] if G.c_dim else real_c.new_zeros(
        [len(phases), n, 0])
    for phase, z, c in zip(phases, all_z, all_c, strict=True):
        if batch_idx % phase["interval"] == 0:
            phase_step(phase, loss, real, real_c, z, c, size, cur_nimg, flavor)
    ema_update(G_ema, G, n, cur_nimg, ema_kimg, ema_rampup)


def phase_step(phase, loss, real, real_c, z, c, batch_gpu: int | None = None, cur_nimg: int = 0,
               flavor: str = "ada") -> None:
    """One official phase: ``requires_grad`` on its network only, ``zero_grad``, ``accumulate_gradients`` (gain =
    the phase's interval) on each round of ``batch_gpu`` images (None: one round), ``nan_to_num`` of the gradients,
    the Adam step."""
    size = batch_gpu or real.shape[0]
    phase["opt"].zero_grad(set_to_none=True)
    phase["module"].requires_grad_(True)
    rounds = list(zip(real.split(size), real_c.split(size), z.split(size), c.split(size), strict=True))
    for i, (x, x_c, z_r, c_r) in enumerate(rounds):
        extra = dict(sync=i == len(rounds) - 1) if flavor == "ada" else dict(cur_nimg=cur_nimg)
        loss.accumulate_gradients(phase=phase["name"], real_img=x, real_c=x_c, gen_z=z_r, gen_c=c_r,
                                  gain=phase["interval"], **extra)
    phase["module"].requires_grad_(False)
    for p in phase["module"].parameters():
        if p.grad is not None:
            torch.nan_to_num(p.grad, nan=0, posinf=1e5, neginf=-1e5, out=p.grad)
    phase["opt"].step()


def ema_update(G_ema, G, n: int, cur_nimg: int, ema_kimg: float, ema_rampup: float | None) -> None:
    """The official G EMA after a minibatch of ``n`` images: half-life ``ema_kimg`` (ramped up to ``cur_nimg x
    ema_rampup``, ``cur_nimg`` counted before this minibatch), parameters lerped, buffers copied."""
    ema_nimg = ema_kimg * 1000
    if ema_rampup is not None:
        ema_nimg = min(ema_nimg, cur_nimg * ema_rampup)
    beta = 0.5 ** (n / max(ema_nimg, 1e-8))
    with torch.no_grad():
        for p_ema, p in zip(G_ema.parameters(), G.parameters(), strict=True):
            p_ema.copy_(p.lerp(p_ema, beta))
        for b_ema, b in zip(G_ema.buffers(), G.buffers(), strict=True):
            b_ema.copy_(b)


def run_official(official, model, cfg, cycles: int, device: str, fp16_res: int) -> dict:
    """Same schedule as ``train_throughput.Meter`` without the FLOP count: 2 lazy cycles of warm-up, then
    ``cycles`` timed ones, fed by a fresh instance of the same training loader."""
    from hydra.utils import instantiate

    from timing import lazy_cycle, peak_memory, synchronize

    G, D = build_networks(official, model, fp16_res, device)
    G_ema = copy.deepcopy(G).eval()
    loss = build_loss(official, G, D, cfg.loss, device)
    phases = build_phases(G, D, cfg)
    cycle = lazy_cycle(cfg)
    ema_kimg = cfg.model.ema_kimg if cfg.model.ema_kimg is not None else cfg.data.batch_size * 10 / 32
    batches = iter(instantiate(cfg.data).train_dataloader())
    cur_nimg, images, t0 = 0, 0, 0.0
    for i in range((2 + cycles) * cycle):
        if i == 2 * cycle:
            synchronize(device)
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
        real, real_c = (x.to(device, non_blocking=True) for x in next(batches))
        iteration(phases, loss, G, G_ema, real, real_c, i, cur_nimg, ema_kimg, cfg.model.get("ema_rampup"),
                  cfg.model.get("batch_gpu"), official[1])
        cur_nimg += real.shape[0]
        images += real.shape[0] if i >= 2 * cycle else 0
    synchronize(device)
    seconds = time.perf_counter() - t0
    return {"img_per_s": images / seconds, "sec_per_kimg": seconds / images * 1000,
            "peak_GiB": peak_memory(device) / 2**30 if device == "cuda" else None, "fp16_res": fp16_res,
            "batch_gpu": cfg.model.get("batch_gpu")}


def compare_with_module(official, cfg, iterations: int, g_lazy: str = "ada") -> dict[str, float]:
    """The project's module (``cfg.model``, a Lightning fit) and the official loop (its networks, loaded with the
    module's initial weights, and ``StyleGAN2Loss``), both in float32 (the official mapping casts z to float32), fed
    the same real batches and the same latents per phase (Gmain: the module's G-phase draw, Dmain: its D-phase draw)
    for ``iterations`` minibatches. Returns, per network (G, D, G_ema), the distance between the two final weights
    relative to how far the official loop moved them: ``|W_module - W_official| / |W_official - W_start|``.
    ``g_lazy``: 'ada' (stylegan2-ada-pytorch's and the TF StyleGAN2's G Adam correction from ``G_reg_interval``, also
    with path length off) or 'stylegan3' (none when it is off). The official G's output goes through tanh where
    ``model.generator.output_activation`` is tanh."""
    import lightning as L
    from hydra.utils import instantiate
    from training.loss import StyleGAN2Loss

    from seed_spread import official_phases, tanh_wrap

    torch.manual_seed(int(cfg.seed))
    module = instantiate(cfg.model, total_kimg=iterations * cfg.data.batch_size / 1000)
    act = cfg.model.generator.get("output_activation", "linear")
    linear = instantiate(cfg.model.generator, output_activation="linear")
    linear.load_state_dict(module.G.state_dict())
    blob = export_official(linear, module.D)
    blob["D"] = {k: v.detach().clone() for k, v in blob["D"].items()}  # a state_dict shares the module's storage
    nets = official[0]
    gk, dk = dict(blob["G_kwargs"]), dict(blob["D_kwargs"])
    top = {k: gk.pop(k) for k in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs")}
    gk.pop("fused_modconv_default", None)
    gk["num_fp16_res"] = dk["num_fp16_res"] = 0
    G, D = nets.Generator(**top, synthesis_kwargs=gk), nets.Discriminator(**dk)
    G.load_state_dict(blob["G"])
    D.load_state_dict(blob["D"])
    G, D = G.train().requires_grad_(False), D.train().requires_grad_(False)
    G_ema = copy.deepcopy(G).eval()

    seen, zs = [], []
    normal = module.draws.normal

    def recording(shape, dtype=torch.float32):
        z = normal(shape, dtype)
        zs.append(z.detach().clone())
        return z

    module.draws.normal = recording

    class Batches(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen.append(batch[0].detach().clone())

    trainer = L.Trainer(accelerator="cpu", devices=1, precision="32-true", max_steps=-1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[Batches()])
    trainer.fit(module, datamodule=instantiate(cfg.data))
    assert len(seen) == iterations and len(zs) == 2 * iterations, (len(seen), len(zs))

    synthesis = tanh_wrap(G.synthesis) if act == "tanh" else G.synthesis
    loss = StyleGAN2Loss(torch.device("cpu"), G.mapping, synthesis, D, r1_gamma=cfg.loss.r1_gamma,
                         style_mixing_prob=cfg.loss.style_mixing_prob, pl_weight=cfg.loss.pl_weight,
                         pl_batch_shrink=cfg.loss.pl_batch_shrink, pl_decay=cfg.loss.pl_decay)
    phases = official_phases(G, D, cfg, g_lazy)
    ema_kimg, rampup, n = float(cfg.model.ema_kimg), cfg.model.ema_rampup, int(cfg.data.batch_size)
    no_c = torch.zeros([n, 0])
    for i, real in enumerate(seen):
        for phase in phases:
            if i % phase["interval"] == 0:
                z = zs[2 * i] if phase["name"].startswith("G") else zs[2 * i + 1]
                phase_step(phase, loss, real, no_c, z, no_c)
        ema_update(G_ema, G, n, i * n, ema_kimg, rampup)
    out = {}
    for name, ours, theirs in (("G", module.G, G), ("D", module.D, D), ("G_ema", module.G_ema, G_ema)):
        mine = export_official(**{name[0]: ours if name[0] == "D" else _as_linear(cfg, ours)})[name[0]]
        ref, start = theirs.state_dict(), blob[name[0]]
        keys = [k for k in ref if ref[k].is_floating_point() and k in start]
        moved = torch.cat([(ref[k] - start[k]).flatten() for k in keys]).norm()
        apart = torch.cat([(mine[k] - ref[k]).flatten() for k in keys]).norm()
        out[name] = float(apart / moved.clamp(min=1e-30))
    return out


def _as_linear(cfg, G):
    """A linear-output copy of ``G`` (same weights), so that ``export_official`` names its tensors."""
    from hydra.utils import instantiate

    copy_ = instantiate(cfg.model.generator, output_activation="linear")
    copy_.load_state_dict(G.state_dict())
    return copy_
