"""Cost growth: time and peak memory of one StyleGAN2 training iteration against resolution and batch size.

Every (resolution, batch) point runs in its own fresh process, so that its peak memory is its own. The networks are
config F's (skip G, resnet D, demodulation, z = w = 512, 8 mapping layers, channel_max 512, the official 'auto'
size: channel_base 16384 below 512 px, 32768 from 512; float32; conv_clamp 256), unless ``--channel-base`` /
``--channel-max`` say otherwise. The four phases of the official loop (StyleGAN2 Appendix B, lazy regularization
Sec. 3.1), each with its backward:

- ``Gmain``: ``softplus(-D(G(z)))``, mixing off, noise random.
- ``Dmain``: ``softplus(D(G(z))) + softplus(-D(x))``, G under ``no_grad``.
- ``Dreg``: R1 on the reals (D's double backward).
- ``Greg``: path length on half the batch (G's double backward).

Reported per point: the median ms of each phase over ``--repeats`` iterations after ``--warmup``; ``iter ms`` =
Gmain + Dmain + Greg / 4 + Dreg / 16 (the official intervals); images/s from it; peak memory: on CUDA
``max_memory_allocated`` over the whole run, on CPU the process's peak resident set (``ru_maxrss``) and its rise
above the resident set once the networks are built (what the iterations themselves add).

Usage (from the repository root)::

    PYTHONPATH=src python benchmarks/cost_growth.py --res 32 64 128 256 --batch 1 4 16 --device cpu
    PYTHONPATH=src python benchmarks/cost_growth.py --res 256 512 1024 --batch 4 16 32 --device cuda --json g.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

from stylegan.losses.logistic import discriminator_loss, generator_loss
from stylegan.losses.path_length import path_length_penalty, path_lengths
from stylegan.losses.r1 import r1_penalty
from stylegan.networks import Discriminator, Generator

PHASES = ("Gmain", "Dmain", "Greg", "Dreg")
G_REG_INTERVAL, D_REG_INTERVAL = 4, 16


def auto_channel_base(res: int) -> int:
    """The official 'auto' config's size (stylegan2-ada-pytorch train.py): fmaps 1 below 512 px, else 0.5 x 2."""
    return 32768 if res >= 512 else 16384


def rss_bytes() -> int:
    """Resident set of this process now (Linux /proc), in bytes."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure_point(res: int, batch: int, device: str, channel_base: int | None, channel_max: int, warmup: int,
                  repeats: int, seed: int) -> dict:
    """One (resolution, batch) point in this process: the four phases timed, peak memory."""
    torch.manual_seed(seed)
    cb = channel_base or auto_channel_base(res)
    G = Generator(z_dim=512, w_dim=512, img_resolution=res, img_channels=3, channel_base=cb, channel_max=channel_max,
                  architecture="skip").to(device).train()
    D = Discriminator(img_resolution=res, img_channels=3, channel_base=cb, channel_max=channel_max,
                      architecture="resnet", mbstd_group_size=min(4, batch)).to(device).train()
    reals = torch.randn(batch, 3, res, res, device=device)
    pl_mean = torch.zeros([], device=device)
    cuda = device.startswith("cuda")

    def gmain() -> None:
        generator_loss(D(G(torch.randn(batch, 512, device=device), None))).backward()

    def dmain() -> None:
        with torch.no_grad():
            fake = G(torch.randn(batch, 512, device=device), None)
        discriminator_loss(D(reals), D(fake)).backward()

    def greg() -> None:
        n = max(batch // 2, 1)
        ws = G.mapping(torch.randn(n, 512, device=device), None)
        lengths = path_lengths(G.synthesis(ws), ws)
        penalty, _ = path_length_penalty(lengths, pl_mean)
        (penalty.mean() * 2.0 * G_REG_INTERVAL).backward()

    def dreg() -> None:
        x = reals.detach().requires_grad_(True)
        (r1_penalty(x, D(x)).mean() * 5.0 * D_REG_INTERVAL).backward()

    steps = dict(zip(PHASES, (gmain, dmain, greg, dreg), strict=True))
    samples: dict[str, list[float]] = {k: [] for k in PHASES}
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    built = rss_bytes()
    for i in range(warmup + repeats):
        for name, step in steps.items():
            t0 = time.perf_counter()
            step()
            if cuda:
                torch.cuda.synchronize(device)
            if i >= warmup:
                samples[name].append((time.perf_counter() - t0) * 1e3)
            G.zero_grad(set_to_none=True)
            D.zero_grad(set_to_none=True)
    median = {k: sorted(v)[len(v) // 2] for k, v in samples.items()}
    iter_ms = median["Gmain"] + median["Dmain"] + median["Greg"] / G_REG_INTERVAL + median["Dreg"] / D_REG_INTERVAL
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    out = {"res": res, "batch": batch, "device": device, "channel_base": cb, "channel_max": channel_max,
           "g_params": sum(p.numel() for p in G.parameters()), "d_params": sum(p.numel() for p in D.parameters()),
           "phase_ms": median, "samples_ms": samples, "iter_ms": iter_ms, "images_per_s": batch / iter_ms * 1e3}
    if cuda:
        out["cuda_peak_bytes"] = torch.cuda.max_memory_allocated(device)
    else:
        out["cpu_peak_rss_bytes"], out["cpu_rss_rise_bytes"] = peak, peak - built
    return out


def mib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:.0f}"


def table(points: list[dict]) -> str:
    rows = ["| res | batch | channel_base | Gmain ms | Dmain ms | Greg ms | Dreg ms | iter ms | img/s | peak MiB | "
            "rise MiB |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for p in points:
        if "error" in p:
            rows.append(f"| {p['res']} | {p['batch']} | - | {p['error']} | | | | | | | |")
            continue
        ph = p["phase_ms"]
        peak = p.get("cuda_peak_bytes", p.get("cpu_peak_rss_bytes"))
        rows.append(f"| {p['res']} | {p['batch']} | {p['channel_base']} | {ph['Gmain']:.0f} | {ph['Dmain']:.0f} | "
                    f"{ph['Greg']:.0f} | {ph['Dreg']:.0f} | {p['iter_ms']:.0f} | {p['images_per_s']:.3g} | "
                    f"{mib(peak)} | {mib(p.get('cpu_rss_rise_bytes'))} |")
    return "\n".join(rows)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--res", type=int, nargs="+", default=[32, 64, 128, 256])
    p.add_argument("--batch", type=int, nargs="+", default=[1, 4, 16])
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--channel-base", type=int, default=None, help="default: the official 'auto' size")
    p.add_argument("--channel-max", type=int, default=512)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=1800, help="seconds per point")
    p.add_argument("--json", metavar="PATH", help="write every point (with its samples) here")
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a child: one point, JSON on stdout
    args = p.parse_args(argv)
    if args.repeats < 1 or args.warmup < 0 or min(args.batch) < 1:
        p.error("need --repeats >= 1, --warmup >= 0 and every --batch >= 1")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error(f"--device {args.device}: CUDA is not available here")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.one:
        point = measure_point(args.res[0], args.batch[0], args.device, args.channel_base, args.channel_max,
                              args.warmup, args.repeats, args.seed)
        print(json.dumps(point))
        return
    points = []
    for res in args.res:
        for batch in args.batch:
            cmd = [sys.executable, __file__, "--one", "--res", str(res), "--batch", str(batch), "--device",
                   args.device, "--channel-max", str(args.channel_max), "--warmup", str(args.warmup),
                   "--repeats", str(args.repeats), "--seed", str(args.seed)]
            cmd += ["--channel-base", str(args.channel_base)] if args.channel_base else []
            cmd += ["--threads", str(args.threads)] if args.threads else []
            t0 = time.perf_counter()
            try:
                out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
                point = json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else {
                    "res": res, "batch": batch, "error": (out.stderr.strip().splitlines() or ["failed"])[-1][:80]}
            except subprocess.TimeoutExpired:
                point = {"res": res, "batch": batch, "error": f"over {args.timeout:.0f} s"}
            points.append(point)
            print(f"res {res} batch {batch}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    print(table(points))
    print(f"\n{args.device}, torch {torch.__version__}, threads {args.threads or torch.get_num_threads()}, "
          f"warmup {args.warmup}, repeats {args.repeats}; peak: "
          + ("CUDA max_memory_allocated" if args.device.startswith("cuda") else
             "the point's process peak RSS; rise: above the RSS once its networks were built"))
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "points": points}, indent=1) + "\n")


if __name__ == "__main__":
    main()
