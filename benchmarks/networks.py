"""Wall-time benchmark of the StyleGAN2 generator and discriminator (forward + backward).

Measured per configuration and device, each network on its own:

- ``G``: train mode (non-fused modulated conv, random noise), ``img = G(z, c)`` then
  ``img.square().mean().backward()``.
- ``D``: ``D(img).sum().backward()`` on a fixed random image batch that does not require grad.
- ``G fused`` (``--fused``): eval mode, fused (grouped-conv) modulated conv, forward only under ``no_grad``.

Timing: ``--warmup`` untimed iterations, then ``--repeats`` timed iterations, interleaved round-robin over all
measurements of a device (one iteration of each, then the next round), so that slow drifts of a busy machine
hit every configuration alike. Reported: median and interquartile range (p25-p75) in ms, and images/s.

Usage (from the repository root)::

    PYTHONPATH=src python benchmarks/networks.py --quick --res 32 64
    PYTHONPATH=src python benchmarks/networks.py --official .official/stylegan2-ada-pytorch --res 32 64

``--official PATH`` times the official StyleGAN2 networks (a stylegan2-ada-pytorch or stylegan3 checkout,
imported from PATH; never copied into the project) in the same process, interleaved with ours, on the very same
weights, and reports the ratio ours / official: the only valid comparison (same machine, same session).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from stylegan.networks import ARCHITECTURES, Discriminator, Generator

CONV_CLAMP = 256
IMG_CHANNELS = 3

@dataclass(frozen=True)
class NetConfig:
    res: int
    g_arch: str
    d_arch: str
    batch: int
    channel_base: int
    channel_max: int
    z_dim: int
    w_dim: int
    mapping_layers: int

    @property
    def name(self) -> str:
        return f"r{self.res}-{self.g_arch}-{self.d_arch}-cb{self.channel_base}-cm{self.channel_max}"


@dataclass
class Measurement:
    """One timed quantity (``kind`` in G, D, G fused) of one configuration on one device."""

    config: NetConfig
    device: str
    kind: str
    step: Callable[[], None]
    prepare: Callable[[], None]
    cleanup: Callable[[], None]
    num_params: int
    samples_ms: list[float] = field(default_factory=list)
    peak_bytes: list[int] = field(default_factory=list)
    step_peak_bytes: list[int] = field(default_factory=list)


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between order statistics (numpy's default method)."""
    s = sorted(values)
    pos = (len(s) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def summarize(m: Measurement) -> dict[str, float | int | None]:
    median = percentile(m.samples_ms, 0.5)
    return {
        "median_ms": median,
        "p25_ms": percentile(m.samples_ms, 0.25),
        "p75_ms": percentile(m.samples_ms, 0.75),
        "images_per_s": m.config.batch / (median / 1e3),
        "max_peak_bytes": max(m.peak_bytes) if m.peak_bytes else None,
        "max_step_peak_bytes": max(m.step_peak_bytes) if m.step_peak_bytes else None,
    }


def count_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def import_official(root: str):
    """The official networks module of a stylegan2-ada-pytorch (training/networks.py) or stylegan3
    (training/networks_stylegan2.py) checkout at ``root``; returns (module, flavor)."""
    if not os.path.isdir(os.path.join(root, "training")):
        sys.exit(f"--official {root}: not a stylegan2-ada-pytorch or stylegan3 checkout (no training/ folder); "
                 "git clone https://github.com/NVlabs/stylegan2-ada-pytorch into an ignored folder such as .official/")
    sys.path.insert(0, os.path.abspath(root))
    if os.path.exists(os.path.join(root, "training", "networks_stylegan2.py")):
        from training import networks_stylegan2 as nets  # stylegan3

        return nets, "stylegan3"
    from training import networks as nets  # stylegan2-ada-pytorch

    return nets, "ada"


def build_official(cfg: NetConfig, device: str, G: nn.Module, D: nn.Module, official) -> tuple[nn.Module, nn.Module]:
    """The official G and D with our settings (fp32: num_fp16_res 0), loaded with our weights (same names)."""
    nets, flavor = official
    common = dict(c_dim=0, img_resolution=cfg.res, img_channels=IMG_CHANNELS)
    synth = dict(channel_base=cfg.channel_base, channel_max=cfg.channel_max, num_fp16_res=0, conv_clamp=CONV_CLAMP,
                 architecture=cfg.g_arch)
    mapping = dict(num_layers=cfg.mapping_layers)
    if flavor == "ada":
        oG = nets.Generator(z_dim=cfg.z_dim, w_dim=cfg.w_dim, mapping_kwargs=mapping, synthesis_kwargs=synth, **common)
    else:
        oG = nets.Generator(z_dim=cfg.z_dim, w_dim=cfg.w_dim, mapping_kwargs=mapping, **synth, **common)
    oD = nets.Discriminator(channel_base=cfg.channel_base, channel_max=cfg.channel_max, num_fp16_res=0,
                            conv_clamp=CONV_CLAMP, architecture=cfg.d_arch, block_kwargs={}, mapping_kwargs={},
                            epilogue_kwargs=dict(mbstd_group_size=4), **common)
    oG.load_state_dict(G.state_dict())
    oD.load_state_dict(D.state_dict())
    return oG.to(device), oD.to(device)


def parity(G, D, oG, oD, z: torch.Tensor, img: torch.Tensor) -> dict[str, float]:
    """Max |ours - official| of the image (noise const, train-mode non-fused path) and of the logits."""
    c = torch.zeros([z.shape[0], 0], device=z.device)
    with torch.no_grad():
        a, b = G(z, None, noise_mode="const"), oG(z, c, noise_mode="const")
        return {"G image": (a - b).abs().max().item(), "D logits": (D(img) - oD(img, c)).abs().max().item()}


def build_measurements(cfg: NetConfig, device: str, seed: int, fused: bool, official=None) -> list[Measurement]:
    torch.manual_seed(seed)
    G = Generator(
        z_dim=cfg.z_dim,
        c_dim=0,
        w_dim=cfg.w_dim,
        img_resolution=cfg.res,
        img_channels=IMG_CHANNELS,
        channel_base=cfg.channel_base,
        channel_max=cfg.channel_max,
        architecture=cfg.g_arch,
        conv_clamp=CONV_CLAMP,
        mapping_kwargs={"num_layers": cfg.mapping_layers},
    ).to(device)
    D = Discriminator(
        c_dim=0,
        img_resolution=cfg.res,
        img_channels=IMG_CHANNELS,
        channel_base=cfg.channel_base,
        channel_max=cfg.channel_max,
        architecture=cfg.d_arch,
        conv_clamp=CONV_CLAMP,
    ).to(device)
    inputs = torch.Generator().manual_seed(seed + 1)
    z = torch.randn([cfg.batch, cfg.z_dim], generator=inputs).to(device)
    img = torch.randn([cfg.batch, IMG_CHANNELS, cfg.res, cfg.res], generator=inputs).to(device)

    def g_step() -> None:
        out = G(z, None)
        out.square().mean().backward()

    def d_step() -> None:
        D(img).sum().backward()

    def g_fused_step() -> None:
        with torch.no_grad():
            G(z, None, fused_modconv=True)

    def nothing() -> None:
        pass

    common = {"config": cfg, "device": device}
    out = [
        Measurement(kind="G", step=g_step, prepare=G.train, cleanup=lambda: G.zero_grad(set_to_none=True),
                    num_params=count_params(G), **common),
        Measurement(kind="D", step=d_step, prepare=D.train, cleanup=lambda: D.zero_grad(set_to_none=True),
                    num_params=count_params(D), **common),
    ]  # fmt: skip
    if fused:
        out.append(Measurement(kind="G fused", step=g_fused_step, prepare=G.eval, cleanup=nothing,
                               num_params=count_params(G), **common))  # fmt: skip
    if official is not None:
        oG, oD = build_official(cfg, device, G, D, official)
        c = torch.zeros([cfg.batch, 0], device=device)
        G.train(), oG.train()
        diff = parity(G, D, oG, oD, z, img)
        print(f"[{cfg.name}] parity with the official networks: " + ", ".join(f"{k} max |diff| {v:.2e}"
              for k, v in diff.items()), file=sys.stderr)  # fmt: skip

        def og_step() -> None:
            oG(z, c).square().mean().backward()

        def od_step() -> None:
            oD(img, c).sum().backward()

        out += [
            Measurement(kind="official G", step=og_step, prepare=oG.train,
                        cleanup=lambda: oG.zero_grad(set_to_none=True), num_params=count_params(oG), **common),
            Measurement(kind="official D", step=od_step, prepare=oD.train,
                        cleanup=lambda: oD.zero_grad(set_to_none=True), num_params=count_params(oD), **common),
        ]  # fmt: skip
    return out


def time_once(m: Measurement) -> tuple[float, int | None, int | None]:
    """One iteration: wall ms; on CUDA also the peak allocated bytes and the peak above the pre-step level."""
    cuda = m.device.startswith("cuda")
    m.prepare()
    if cuda:
        torch.cuda.synchronize(m.device)
        base = torch.cuda.memory_allocated(m.device)
        torch.cuda.reset_peak_memory_stats(m.device)
    t0 = time.perf_counter()
    m.step()
    if cuda:
        torch.cuda.synchronize(m.device)
    elapsed_ms = (time.perf_counter() - t0) * 1e3
    peak = step_peak = None
    if cuda:
        peak = torch.cuda.max_memory_allocated(m.device)
        step_peak = peak - base
    m.cleanup()
    return elapsed_ms, peak, step_peak


def run_interleaved(measurements: list[Measurement], warmup: int, repeats: int, label: str) -> None:
    for _ in range(warmup):
        for m in measurements:
            time_once(m)
    for i in range(repeats):
        t0 = time.perf_counter()
        for m in measurements:
            ms, peak, step_peak = time_once(m)
            m.samples_ms.append(ms)
            if peak is not None and step_peak is not None:
                m.peak_bytes.append(peak)
                m.step_peak_bytes.append(step_peak)
        elapsed = time.perf_counter() - t0
        print(f"[{label}] round {i + 1}/{repeats}: {elapsed:.2f} s", file=sys.stderr, flush=True)


def fmt_ms(s: dict[str, float | int | None]) -> str:
    return f"{s['median_ms']:.1f} [{s['p25_ms']:.1f}-{s['p75_ms']:.1f}]"


def fmt_mib(n: float | int | None) -> str:
    return "n/a" if n is None else f"{n / 2**20:.1f}"


def markdown_table(measurements: list[Measurement], args: argparse.Namespace) -> str:
    rows: dict[tuple[str, NetConfig], dict[str, Measurement]] = {}
    for m in measurements:
        rows.setdefault((m.device, m.config), {})[m.kind] = m
    any_cuda = any(device.startswith("cuda") for device, _ in rows)
    header = ["config", "device", "threads", "batch", "res", "arch (G/D)",
              "G ms median [p25-p75]", "G img/s", "D ms median [p25-p75]", "D img/s"]  # fmt: skip
    if args.fused:
        header += ["G fused fwd ms median [p25-p75]", "G fused img/s"]
    if any_cuda:
        header += ["G step peak MiB", "D step peak MiB"]
    if args.official:
        header += ["official G ms [p25-p75]", "G ours/official", "official D ms [p25-p75]", "D ours/official"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for (device, cfg), by_kind in rows.items():
        g, d = summarize(by_kind["G"]), summarize(by_kind["D"])
        arch = f"{cfg.g_arch}/{cfg.d_arch}"
        cells = [cfg.name, device, str(args.threads), str(cfg.batch), str(cfg.res), arch]
        cells += [fmt_ms(g), f"{g['images_per_s']:.1f}", fmt_ms(d), f"{d['images_per_s']:.1f}"]
        if args.fused:
            f = summarize(by_kind["G fused"])
            cells += [fmt_ms(f), f"{f['images_per_s']:.1f}"]
        if any_cuda:
            cells += [fmt_mib(g["max_step_peak_bytes"]), fmt_mib(d["max_step_peak_bytes"])]
        if args.official:
            for kind, ours in (("G", g), ("D", d)):
                ref = summarize(by_kind[f"official {kind}"])
                cells += [fmt_ms(ref), f"{ours['median_ms'] / ref['median_ms']:.2f}x"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_footer(args: argparse.Namespace, machine: dict[str, object]) -> str:
    notes = [
        f"Median and interquartile range (p25-p75) of {args.repeats} timed iterations after {args.warmup} "
        "warm-up iteration(s), interleaved round-robin over all measurements of a device; "
        "img/s = batch / median.",
        "G: train mode (non-fused modconv, random noise), forward + backward of img.square().mean(). "
        "D: forward + backward of D(img).sum() on a fixed random image batch (no grad on the input).",
    ]
    if args.fused:
        notes.append("G fused: eval mode, fused modconv, forward only under torch.no_grad().")
    if any(d.startswith("cuda") for d in args.devices):
        notes.append(
            "CUDA: synchronized around each iteration; step peak = max_memory_allocated during the "
            "iteration minus the memory allocated before it (absolute peaks are in the JSON)."
        )
    if args.official:
        notes.append(
            f"Official: the networks of {args.official} (fp32, num_fp16_res 0, train mode: non-fused modconv; on "
            "CPU its reference ops), built with the same settings and loaded with the same weights, timed in this "
            "process, interleaved with ours; the ratio is ours / official of the medians."
        )
    notes.append(
        f"Machine: {machine['platform']}, {machine['cpu_count']} CPUs, torch {machine['torch']}, "
        f"{machine['date']}."
    )
    return "\n".join(f"- {n}" for n in notes)


def machine_info(devices: list[str]) -> dict[str, object]:
    info: dict[str, object] = {
        "platform": platform.platform(),
        "processor": platform.processor(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_num_threads": torch.get_num_threads(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    if any(d.startswith("cuda") for d in devices):
        info["cuda_device"] = torch.cuda.get_device_name()
        info["cuda_version"] = torch.version.cuda
    return info


def resolve_devices(choice: str, parser: argparse.ArgumentParser) -> list[str]:
    available = torch.cuda.is_available()
    if choice == "cpu":
        return ["cpu"]
    if choice == "cuda":
        if not available:
            parser.error("--device cuda: CUDA is not available")
        return ["cuda"]
    return ["cpu", "cuda"] if available else ["cpu"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    p.add_argument("--res", type=int, nargs="+", default=[32, 64, 256], help="image resolutions")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--g-arch", nargs="+", choices=ARCHITECTURES, default=["skip"], help="generator archs")
    p.add_argument("--d-arch", nargs="+", choices=ARCHITECTURES, default=["resnet"], help="discrim. archs")
    p.add_argument("--channel-base", type=int, default=2048)
    p.add_argument("--channel-max", type=int, default=128)
    p.add_argument("--z-dim", type=int, default=64)
    p.add_argument("--w-dim", type=int, default=64)
    p.add_argument("--mapping-layers", type=int, default=2)
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--device", choices=["cpu", "cuda", "auto"], default="auto",
                   help="auto: cpu, plus cuda when available")  # fmt: skip
    p.add_argument("--warmup", type=int, default=None, help="untimed iterations (default 3, --quick 1)")
    p.add_argument("--repeats", type=int, default=None, help="timed iterations (default 15, --quick 3)")
    p.add_argument("--quick", action="store_true", help="smoke test: repeats 3, warmup 1")
    p.add_argument("--fused", action="store_true", help="also time fused modconv (eval, forward only)")
    p.add_argument("--official", metavar="PATH",
                   help="a stylegan2-ada-pytorch / stylegan3 checkout: time its G and D beside ours")  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="PATH", help="write all samples and machine info to this file")
    args = p.parse_args(argv)
    if args.warmup is None:
        args.warmup = 1 if args.quick else 3
    if args.repeats is None:
        args.repeats = 3 if args.quick else 15
    if args.repeats < 1 or args.warmup < 0 or args.batch < 1 or args.threads < 1:
        p.error("need --repeats >= 1, --warmup >= 0, --batch >= 1, --threads >= 1")
    args.devices = resolve_devices(args.device, p)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    configs = [
        NetConfig(res=res, g_arch=g_arch, d_arch=d_arch, batch=args.batch, channel_base=args.channel_base,
                  channel_max=args.channel_max, z_dim=args.z_dim, w_dim=args.w_dim,
                  mapping_layers=args.mapping_layers)
        for res in args.res
        for g_arch in args.g_arch
        for d_arch in args.d_arch
    ]  # fmt: skip
    official = import_official(args.official) if args.official else None
    measurements: list[Measurement] = []
    for device in args.devices:
        group: list[Measurement] = []
        for i, cfg in enumerate(configs):
            group += build_measurements(cfg, device, args.seed + i, args.fused, official)
        run_interleaved(group, args.warmup, args.repeats, device)
        measurements += group

    machine = machine_info(args.devices)
    print(markdown_table(measurements, args))
    print()
    print(markdown_footer(args, machine))

    if args.json:
        results = [
            {"config": cfg_dict, "name": m.config.name, "device": m.device, "kind": m.kind,
             "num_params": m.num_params, "samples_ms": m.samples_ms, "peak_bytes": m.peak_bytes,
             "step_peak_bytes": m.step_peak_bytes, **summarize(m)}
            for m in measurements
            for cfg_dict in [asdict(m.config)]
        ]  # fmt: skip
        settings = {k: v for k, v in vars(args).items() if k != "json"}
        payload = {"machine": machine, "settings": settings, "conv_clamp": CONV_CLAMP, "results": results}
        with open(args.json, "w") as f:
            json.dump(payload, f, indent=2)
            f.write("\n")
        print(f"wrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
