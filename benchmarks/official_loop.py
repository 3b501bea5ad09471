"""The official StyleGAN2 training iteration, timed beside ours (``train_throughput.py --official``).

The networks and ``StyleGAN2Loss`` are imported from a stylegan2-ada-pytorch (or stylegan3) checkout in an ignored
folder, never copied. One iteration is the work of the official ``training_loop.py`` per minibatch: the phases
Gmain, Greg (every G interval), Dmain, Dreg (every D interval), each with ``requires_grad`` on its network only,
``zero_grad``, ``accumulate_gradients`` (gain = the interval) on each round of ``batch_gpu`` images (the config's
``model.batch_gpu``, as the official ``--batch-gpu``; null: one round), ``nan_to_num`` of the gradients and an Adam
step with the lazy ratio (lr x r, betas ^ r, r = interval / (interval + 1)); then the G EMA (lerp of the parameters,
copy of the buffers). Not timed, as in the official loop's step: the augment pipe (off), statistics and snapshots.
The official loop draws its latents on the device for all phases at once and its labels on the host; so does this.
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
        if batch_idx % phase["interval"] != 0:
            continue
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
