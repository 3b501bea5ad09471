"""Training throughput of the real LightningModule: img/s, sec/kimg, peak memory and model FLOPs utilization.

Each case composes the project's Hydra config (``experiment=<preset>`` plus overrides), builds the real datamodule,
module and ``lightning.Trainer`` and trains: all four phases of the official loop with their lazy intervals
(Gmain, Greg every ``g_reg_interval``, Dmain, Dreg every ``d_reg_interval``), the G EMA, the NaN guard. The data is a
synthetic prepared dataset of the case's resolution (smooth random images written as PNGs, converted by the real
``stylegan-prepare`` code) read by the real loader. The iterations, counted from the first, are:

1. one lazy cycle (lcm of the two intervals, 16 by default) under ``torch.utils.flop_counter``'s formulas: the
   model FLOPs of a cycle (convolutions and matmuls, forward, backward and the regularizers' double backward);
2. one cycle of warm-up; on CUDA, under ``torch.cuda.set_sync_debug_mode('warn')``: the host synchronisations
   per iteration are counted (the step should have none);
3. ``--cycles`` timed cycles (whole cycles, so the lazy phases count at their share), synchronised at both ends.

The config's ``model.batch_gpu`` is honoured (the presets pick the official one, e.g. ``paper256`` on one device:
its global batch of 64 in 8 rounds of 8; ``--set model.batch_gpu=null`` for one round): the table shows the batch
(global = per device here, one device) and the images per round.

Reported: img/s and sec/kimg of the timed cycles; peak memory (CUDA ``max_memory_allocated`` over the timed cycles;
CPU the process's peak resident set); the model's TFLOP/s and MFU against this device's *measured* dense matmul peak
(bf16 on CUDA, fp32 on CPU); the loader alone (img/s of the same ``train_dataloader`` without training).

``--official PATH`` (a stylegan2-ada-pytorch checkout in an ignored folder; imported, never copied) also times the
official networks and ``StyleGAN2Loss`` in the official training loop's phase order (lazy Adam ratios, EMA,
``nan_to_num`` of the gradients) on the same weights and batches from the same loader, interleaved with ours in
this process, with ``num_fp16_res`` = ``--official-fp16-res`` (the official presets' 4 on CUDA): the only valid
ratio is this one, same device, same session.

Usage (from the repository root)::

    PYTHONPATH=src python benchmarks/train_throughput.py --case cifar --device cpu --cycles 1 \
        --set model.generator.channel_base=2048 data.batch_size=8
    PYTHONPATH=src python benchmarks/train_throughput.py --case paper256 cifar grid --device cuda \
        --precision 32-true bf16-mixed --official .official/stylegan2-ada-pytorch --json tp.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from stylegan.networks import ARCHITECTURES, layers
from stylegan.utils.config_dir import config_dir
from stylegan.utils.resolvers import register as register_resolvers
from timing import lazy_cycle, peak_memory, synchronize  # benchmarks/ (the script's folder)

PRESETS = ("paper256", "cifar")


@dataclass
class Case:
    name: str
    experiment: str
    overrides: list[str] = field(default_factory=list)


def cases(names: list[str]) -> list[Case]:
    """An experiment preset (the issue's: ``paper256``, ``cifar``), or ``grid``: the paper's Table 2 G x D
    architectures on ``paper256`` (256x256)."""
    out = []
    for name in names:
        if name == "grid":
            out += [Case(f"paper256 G={g} D={d}", "paper256", [f"model/generator={g}", f"model/discriminator={d}"])
                    for g, d in itertools.product(ARCHITECTURES, ARCHITECTURES)]
        elif (Path(config_dir()) / "experiment" / f"{name}.yaml").is_file():
            out.append(Case(name, name))
        else:
            sys.exit(f"--case {name}: no conf/experiment/{name}.yaml; e.g. {', '.join(PRESETS)}, grid")
    return out


def compose_config(case: Case, extra: list[str], device: str, precision: str, compile_mode: str = "off") -> DictConfig:
    """The case's training config on ``data=folder`` (its ``data.source`` is set once the synthetic data exists);
    ``compile_mode``: ``model.compile`` (off: null, on: true, else a torch.compile mode)."""
    compiled = {"off": "null", "on": "true"}.get(compile_mode, compile_mode)
    overrides = ["data=folder", "data.source=synthetic", f"experiment={case.experiment}",
                 f"trainer={'gpu' if device == 'cuda' else 'cpu'}", f"trainer.precision={precision}", "logger=none",
                 "metrics=none", "total_kimg=1000000", f"model.compile={compiled}", *case.overrides, *extra]
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def synthetic_dataset(root: Path, resolution: int, channels: int, count: int = 256) -> Path:
    """``count`` smooth random images (bilinear up-sampled 8x8 noise) as PNGs, prepared by ``prepare_dataset``."""
    from PIL import Image

    from stylegan.data.prepare import prepare_dataset

    dest = root / f"synthetic-{resolution}-{channels}"
    if dest.exists():
        return dest
    src = root / f"png-{resolution}-{channels}"
    src.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    for i in range(count):
        small = torch.rand([1, channels, 8, 8], generator=g)
        img = torch.nn.functional.interpolate(small, size=(resolution, resolution), mode="bilinear")[0]
        arr = (img * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        Image.fromarray(arr[:, :, 0] if channels == 1 else arr).save(src / f"{i:05d}.png")
    prepare_dataset(src, dest, resolution, channels, progress=False)
    return dest


def matmul_peak(device: str, seconds: float = 2.0) -> tuple[float, str]:
    """The measured dense matmul FLOP/s of this device: bf16 8192^3 on CUDA, fp32 2048^3 on CPU (best of a few)."""
    n, dtype = (8192, torch.bfloat16) if device == "cuda" else (2048, torch.float32)
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    best, start = 0.0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        synchronize(device)
        t = time.perf_counter()
        for _ in range(5):
            a @ b
        synchronize(device)
        best = max(best, 5 * 2 * n**3 / (time.perf_counter() - t))
    return best, f"{str(dtype).removeprefix('torch.')} {n}^3 matmul"


class FlopCount(TorchDispatchMode):
    """Sums ``torch.utils.flop_counter``'s formulas (convolutions, their backward, matmuls) over every op run
    under it. Unlike ``FlopCounterMode`` it installs no module hooks, which break ``autograd.grad`` (R1)."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.total += formula(*args, **kwargs, out_val=out)
        return out


class Meter(L.Callback):
    """Counts FLOPs over iterations [0, cycle), probes host syncs over [cycle, 2 cycle) on CUDA, times
    [2 cycle, (2 + cycles) cycle), with ``profile`` runs ``torch.profiler`` over one more cycle, then stops the run."""

    def __init__(self, cycle: int, cycles: int, device: str, profile: bool = False) -> None:
        self.cycle, self.cycles, self.device, self.profile = cycle, cycles, device, profile
        self.profile_table = ""
        self._profiler = None
        self.seen = 0
        self.flops = 0
        self.syncs: list[str] = []
        self.seconds = math.nan
        self.images = 0
        self.peak = 0
        self._counter = self._catch = None
        self._t0 = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        i, c = self.seen, self.cycle
        if i == 0:
            self._counter = FlopCount()
            self._counter.__enter__()
        elif i == c and self.device == "cuda":
            self._catch = warnings.catch_warnings(record=True)
            self._records = self._catch.__enter__()
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
        elif i == 2 * c:
            synchronize(self.device)
            if self.device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            self._t0 = time.perf_counter()
        elif i == (2 + self.cycles) * c and self.profile:
            activities = [torch.profiler.ProfilerActivity.CPU]
            if self.device == "cuda":
                activities.append(torch.profiler.ProfilerActivity.CUDA)
            self._profiler = torch.profiler.profile(activities=activities)
            self._profiler.__enter__()
        if 2 * c <= i < (2 + self.cycles) * c:
            self.images += batch[0].shape[0]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.seen += 1
        i, c = self.seen, self.cycle
        if i == c:
            self._counter.__exit__(None, None, None)
            self.flops = self._counter.total
        elif i == 2 * c and self._catch is not None:
            torch.cuda.set_sync_debug_mode("default")
            self._catch.__exit__(None, None, None)
            self.syncs = [str(w.message).splitlines()[0] for w in self._records if "synchroniz" in str(w.message)]
        elif i == (2 + self.cycles) * c:
            synchronize(self.device)
            self.seconds = time.perf_counter() - self._t0
            self.peak = peak_memory(self.device)
            trainer.should_stop = not self.profile
        elif i == (3 + self.cycles) * c and self._profiler is not None:
            synchronize(self.device)
            self._profiler.__exit__(None, None, None)
            key = "self_cuda_time_total" if self.device == "cuda" else "self_cpu_time_total"
            self.profile_table = self._profiler.key_averages().table(sort_by=key, row_limit=25)
            trainer.should_stop = True


def loader_alone(cfg: DictConfig, batches: int) -> float:
    """img/s of the training loader by itself (the configured workers), after 2 warm-up batches."""
    dm = instantiate(cfg.data)
    it = iter(dm.train_dataloader())
    for _ in range(2):
        next(it)
    t, n = time.perf_counter(), 0
    for _ in range(batches):
        n += next(it)[0].shape[0]
    return n / (time.perf_counter() - t)


def run_ours(cfg: DictConfig, cycles: int, device: str, out: Path, profile: bool) -> tuple[Meter, L.LightningModule]:
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    model = instantiate(cfg.model)
    meter = Meter(lazy_cycle(cfg), cycles, device, profile)
    trainer = instantiate(cfg.trainer, default_root_dir=str(out), callbacks=[meter], logger=False,
                          enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, datamodule=instantiate(cfg.data))
    return meter, model


def measure(case: Case, args, precision: str, compile_mode: str, data_root: Path, peak: float, official) -> dict:
    cfg = compose_config(case, args.set, args.device, precision, compile_mode)
    res = int(cfg.data.resolution)
    cfg.data.source = str(synthetic_dataset(data_root, res, int(cfg.data.channels)))
    meter, model = run_ours(cfg, args.cycles, args.device, data_root / "run", args.profile)
    if meter.profile_table:
        print(f"torch.profiler, one lazy cycle after the timed ones ({case.name}, {precision}):\n{meter.profile_table}")
    batch = int(cfg.data.batch_size)
    size = min(cfg.model.get("batch_gpu") or batch, batch)  # images per accumulation round
    row = {"case": case.name, "precision": precision, "compile": compile_mode, "resolution": res,
           "batch": batch, "batch_gpu": size, "rounds": batch // size,
           "img_per_s": meter.images / meter.seconds, "sec_per_kimg": meter.seconds / meter.images * 1000,
           "peak_GiB": meter.peak / 2**30, "flops_per_img": meter.flops / (meter.cycle * int(cfg.data.batch_size)),
           "host_syncs_per_iter": len(meter.syncs) / meter.cycle if args.device == "cuda" else None,
           "first_syncs": sorted(set(meter.syncs))[:3]}
    row["tflops"] = row["flops_per_img"] * row["img_per_s"] / 1e12
    row["mfu"] = row["tflops"] * 1e12 / peak
    row["loader_img_per_s"] = loader_alone(cfg, args.loader_batches)
    if official is not None:
        from official_loop import run_official

        o = run_official(official, model, cfg, args.cycles, args.device, args.official_fp16_res)
        row.update({f"official_{k}": v for k, v in o.items()})
        row["speedup"] = o["sec_per_kimg"] / row["sec_per_kimg"]
    del model
    if args.device == "cuda":
        torch.cuda.empty_cache()
    return row


def table(rows: list[dict]) -> str:
    head = ("| round | case | precision | compile | batch | batch_gpu | img/s | sec/kimg | peak GiB | GFLOP/img | "
            "TFLOP/s | MFU | loader img/s | official sec/kimg | ours/official speed |\n" + "|---" * 15 + "|")
    lines = [head]
    for r in rows:
        off = (f"{r['official_sec_per_kimg']:.2f} | {r['speedup']:.2f}x" if "speedup" in r else "- | -")
        lines.append(f"| {r['round']} | {r['case']} | {r['precision']} | {r['compile']} | {r['batch']} | "
                     f"{r['batch_gpu']} x {r['rounds']} | "
                     f"{r['img_per_s']:.3g} | {r['sec_per_kimg']:.3g} | {r['peak_GiB']:.2f} | "
                     f"{r['flops_per_img'] / 1e9:.3g} | {r['tflops']:.3g} | {r['mfu']:.1%} | "
                     f"{r['loader_img_per_s']:.3g} | {off} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--case", nargs="+", default=["cifar"], help="paper256, cifar, grid (3x3 G x D at 256)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    p.add_argument("--precision", nargs="+", default=["32-true"], help="trainer.precision values, e.g. bf16-mixed")
    p.add_argument("--compile", nargs="+", default=["off"],
                   help="model.compile values: off, on (inductor, default mode), or torch.compile modes")
    p.add_argument("--cycles", type=int, default=3, help="timed lazy cycles (16 iterations each by default)")
    p.add_argument("--rounds", type=int, default=1, help="repeat every measurement, interleaved (ours, official)")
    p.add_argument("--set", nargs="*", default=[], help="extra Hydra overrides, e.g. data.batch_size=16")
    p.add_argument("--memory-format", choices=["channels_last", "contiguous"], default="channels_last",
                   help="the networks' conv stacks in NHWC (default) or NCHW")
    p.add_argument("--loader-batches", type=int, default=20)
    p.add_argument("--profile", action="store_true", help="print the top ops of one more lazy cycle (torch.profiler)")
    p.add_argument("--official", help="a stylegan2-ada-pytorch checkout: time its loop beside ours")
    p.add_argument("--official-fp16-res", type=int, default=None, help="default: 4 on CUDA, 0 on CPU")
    p.add_argument("--data-root", help="where the synthetic datasets are kept (default: a temporary folder)")
    p.add_argument("--json", help="write the rows here")
    args = p.parse_args(argv)
    if args.official_fp16_res is None:
        args.official_fp16_res = 4 if args.device == "cuda" else 0
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    register_resolvers()
    layers.set_channels_last(args.memory_format == "channels_last")
    official = None
    if args.official:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from networks import import_official

        official = import_official(args.official)
    peak, peak_how = matmul_peak(args.device)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data_root = Path(args.data_root or tmp)
        for rnd, case, precision, mode in itertools.product(range(args.rounds), cases(args.case), args.precision,
                                                            args.compile):
            rows.append({"round": rnd + 1, **measure(case, args, precision, mode, data_root, peak, official)})
            print(json.dumps(rows[-1], default=float), flush=True)
    dev = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"\n{time.strftime('%Y-%m-%d %H:%M')}, {dev}, torch {torch.__version__}, memory format "
          f"{args.memory_format}, measured peak {peak / 1e12:.3g} TFLOP/s ({peak_how})\n")
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps({"peak_flops": peak, "peak_how": peak_how, "device": dev,
                                               "rows": rows}, indent=1, default=float))


if __name__ == "__main__":
    main()
