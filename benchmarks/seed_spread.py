"""Spread of outcomes over seeds: ``stylegan-train experiment=mnist_demo`` against the official networks and
``StyleGAN2Loss`` in a plain training loop, both judged per kimg by the project's MNIST judge (issue 28).

    PYTHONPATH=src:benchmarks .venv/bin/python benchmarks/seed_spread.py run --seeds 0 1 2 3 4 --jobs 2
    PYTHONPATH=src:benchmarks .venv/bin/python benchmarks/seed_spread.py table

``run`` trains what is missing (each process with one torch thread, ``--jobs`` at once) under ``--out``
(default outputs/seed_spread, ignored), then prints the table: per seed and side the final FD, the minimum and the FD
at 5/10/15/20/25 kimg; median and standard deviation per side. ``table`` only collects finished runs.

Sides (``--sides``; folders under ``--out``):

- ``project``: ``stylegan-train experiment=mnist_demo seed=S metrics=cpu callbacks.metrics.every_kimg=1`` (+
  ``--project-args``); the FD of ``fd1k_full@mnist_lenet`` from its CSV log.
- ``official``: the official stylegan2-ada-pytorch networks and loss (imported from ``--official``, an ignored
  checkout; never copied) in the loop of its ``training_loop.py``: seeds ``torch.manual_seed(S)`` and
  ``np.random.seed(S)``, the official networks built (their own initialization) with the demo's kwargs
  (``export_official`` of the project's networks), its ``InfiniteSampler(seed=S)`` over the same 5000 digits, per
  iteration the latents of all four phases drawn at once, phases Gmain/Greg/Dmain/Dreg with the lazy intervals
  (gain = interval, Adam lr x r and betas ^ r, r = I / (I + 1)), ``nan_to_num`` of the gradients, then the G EMA
  (half-life ``model.ema_kimg``, ramp-up ``model.ema_rampup``). The official G has no output activation: its
  synthesis output goes through tanh (the demo's ``output_activation=tanh``) for the loss and the judge. G's Adam
  as stylegan2-ada-pytorch (and the TF StyleGAN2): corrected for ``G_reg_interval=4`` although path length is off
  (lr x 0.8, betas ^ 0.8). Judged by the same MetricsCallback config (``metrics=cpu``) whenever a whole kimg is
  passed and at the end, as the training callback does.
- ``official_sg3``: the same with stylegan3's rule instead (``G_reg_interval=None`` when path length is off: one
  'Gboth' phase, G's lr and betas as given, as the project does); ``official_pnets`` / ``official_sg3_pnets``: the
  same two loops with the project's networks (numerically the official ones) in place of the official networks.

``check`` runs the project's module and the official loop from the same weights, batches and latents for
``--iterations`` minibatches (``official_loop.compare_with_module``) and prints how far apart their weights end,
for both G rules.
"""

from __future__ import annotations

import argparse
import copy
import csv
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
KEY = "fd1k_full@mnist_lenet"
MARKS = (5, 10, 15, 20, 25)
# side -> None (stylegan-train) or (networks in the official loop, its G lazy correction: see the docstring)
SIDES = {"project": None, "official": ("official", "ada"), "official_pnets": ("project", "ada"),
         "official_sg3": ("official", "stylegan3"), "official_sg3_pnets": ("project", "stylegan3")}


# ----------------------------------------------------------------------------------------------- official side
def tanh_wrap(module, **fixed):
    """``module``'s output through tanh (the demo's ``output_activation=tanh``; the official G has none); ``fixed``:
    keyword arguments added to every call."""
    import torch

    class Tanh(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner
            for name in ("z_dim", "c_dim", "w_dim", "num_ws", "img_resolution", "img_channels"):
                if hasattr(inner, name):
                    setattr(self, name, getattr(inner, name))

        def forward(self, *args, **kwargs):
            return torch.tanh(self.inner(*args, **kwargs, **fixed))

    return Tanh(module)


def compose_demo(seed: int, run_dir: Path, extra: list[str]):
    from hydra import compose, initialize_config_dir

    overrides = ["experiment=mnist_demo", f"seed={seed}", "metrics=cpu", "callbacks.metrics.every_kimg=1",
                 f"paths.root_dir={ROOT}", f"paths.output_dir={run_dir}", *extra]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def official_phases(G, D, cfg, g_lazy: str):
    """The official phase list (training_loop.py): lazy phases with Adam lr x r, betas ^ r per network. G's interval
    is the official one, not the config's (the demo sets ``loss.g_reg_interval=1``): stylegan2-ada-pytorch's
    ``G_reg_interval`` is always 4 (its train.py keeps the loop's default, also with path length off);
    ``g_lazy='stylegan3'``: none ('Gboth', plain Adam) when path length is off. An interval of 1 is no lazy phase."""
    import torch

    out = []
    if g_lazy == "ada":
        g_interval = 4
    else:
        g_interval = None if cfg.loss.pl_weight == 0 else cfg.loss.g_reg_interval
    betas = tuple(cfg.model.optim.betas)
    for name, module, lr, interval in (("G", G, cfg.model.optim.g_lr, g_interval),
                                       ("D", D, cfg.model.optim.d_lr, cfg.loss.d_reg_interval)):
        if interval is None or interval <= 1:
            opt = torch.optim.Adam(module.parameters(), lr=lr, betas=betas, eps=cfg.model.optim.eps)
            out.append(dict(name=name + "both", module=module, opt=opt, interval=1))
            continue
        r = interval / (interval + 1)
        opt = torch.optim.Adam(module.parameters(), lr=lr * r, betas=tuple(b**r for b in betas),
                               eps=cfg.model.optim.eps)
        out += [dict(name=name + "main", module=module, opt=opt, interval=1),
                dict(name=name + "reg", module=module, opt=opt, interval=interval)]
    return out


def official_networks(nets, cfg):
    """The official G and D, built (their own initialization, from the torch RNG) with the demo's kwargs."""
    from hydra.utils import instantiate

    from stylegan.official import export_official

    with torch_rng_kept():
        blob = export_official(instantiate(cfg.model.generator), instantiate(cfg.model.discriminator))
    gk, dk = dict(blob["G_kwargs"]), dict(blob["D_kwargs"])
    top = {k: gk.pop(k) for k in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs")}
    gk.pop("fused_modconv_default", None)
    gk["num_fp16_res"] = dk["num_fp16_res"] = 0
    G = nets.Generator(**top, synthesis_kwargs=gk).train().requires_grad_(False)
    return G, nets.Discriminator(**dk).train().requires_grad_(False)


def torch_rng_kept():
    import torch

    return torch.random.fork_rng(devices=[])


def official_run(args) -> None:
    """One seed of the official loop; writes ``trajectory.csv`` (kimg, FD) and ``done``."""
    import numpy as np
    import torch
    from hydra.utils import instantiate

    torch.set_num_threads(1)
    from networks import import_official

    official = import_official(args.official)
    from torch_utils import misc
    from training.loss import StyleGAN2Loss

    from official_loop import ema_update, phase_step

    out = Path(args.out) / args.side / f"seed{args.seed}"
    out.mkdir(parents=True, exist_ok=True)
    cfg = compose_demo(args.seed, out, ["model.generator.output_activation=linear", *args.official_args])
    nets, g_lazy = SIDES[args.side]
    S = int(cfg.seed)
    dm = instantiate(cfg.data)
    dm.setup()
    np.random.seed(S)
    torch.manual_seed(S)
    if nets == "project":  # the project's networks (their init: as the project run of this seed draws it)
        G = instantiate(cfg.model.generator, output_activation="linear").train().requires_grad_(False)
        D = instantiate(cfg.model.discriminator).train().requires_grad_(False)
        g_kwargs = {}
    else:  # the official networks (their own init) with the demo's kwargs (export_official of the project's)
        G, D = official_networks(official[0], cfg)
        g_kwargs = {"fused_modconv": False}  # G_ema at the judge: its eval default's math, faster on CPU
    G_ema = copy.deepcopy(G).eval()
    # the official sampler's own __iter__ (its __init__ passes the dataset to Sampler, which torch >= 2.2 refuses)
    sampler = SimpleNamespace(dataset=dm.dataset, rank=0, num_replicas=1, shuffle=True, seed=S, window_size=0.5)
    batch, order = int(cfg.data.batch_size), misc.InfiniteSampler.__iter__(sampler)
    loss = StyleGAN2Loss(torch.device("cpu"), G.mapping, tanh_wrap(G.synthesis), D, r1_gamma=cfg.loss.r1_gamma,
                         style_mixing_prob=cfg.loss.style_mixing_prob, pl_weight=cfg.loss.pl_weight,
                         pl_batch_shrink=cfg.loss.pl_batch_shrink, pl_decay=cfg.loss.pl_decay)
    phases = official_phases(G, D, cfg, g_lazy)
    judge = instantiate(cfg.callbacks.metrics)
    G_judged = tanh_wrap(G_ema, **g_kwargs)
    judge.setup(None, SimpleNamespace(G_ema=G_judged), "fit")
    ema_kimg, ema_rampup = float(cfg.model.ema_kimg), cfg.model.ema_rampup
    total, every = float(cfg.total_kimg) * 1000, float(cfg.callbacks.metrics.every_kimg) * 1000
    rows, cur_nimg, batch_idx, tick, t0 = [], 0, 0, 0, time.time()
    while True:
        real = dm.dataset.batch([next(order) for _ in range(batch)], 0)[0]
        real_c = torch.zeros([batch, 0])
        all_z = torch.randn([len(phases) * batch, G.z_dim]).split(batch)
        [np.random.randint(len(dm.dataset)) for _ in range(len(phases) * batch)]  # the official label draws
        for phase, z in zip(phases, all_z, strict=True):
            if batch_idx % phase["interval"] == 0:
                phase_step(phase, loss, real, real_c, z, real_c)
        ema_update(G_ema, G, batch, cur_nimg, ema_kimg, ema_rampup)
        cur_nimg += batch
        batch_idx += 1
        done = cur_nimg >= total
        if cur_nimg // every > tick or done:
            tick = int(cur_nimg // every)
            fd = judge.runner.run(G_judged, dm, "cpu")[KEY]
            rows.append((cur_nimg / 1000, fd))
            print(f"seed {S} kimg {cur_nimg / 1000:.3f} FD {fd:.2f} ({time.time() - t0:.0f}s)", flush=True)
        if done:
            break
    with open(out / "trajectory.csv", "w", newline="") as f:
        csv.writer(f).writerows([("kimg", KEY), *rows])
    (out / "done").write_text(f"{time.time() - t0:.0f} s, networks {nets}, G lazy correction {g_lazy}\n")


# ----------------------------------------------------------------------------------------------- launching
def project_cmd(seed: int, run: Path, extra: list[str]) -> list[str]:
    return [str(ROOT / ".venv/bin/stylegan-train"), "experiment=mnist_demo", f"seed={seed}", "metrics=cpu",
            "callbacks.metrics.every_kimg=1", f"hydra.run.dir={run}", "logger=csv",
            "callbacks.progress.refresh_rate=0", *extra]


def jobs(args) -> list[tuple[Path, list[str], Path]]:
    """(run dir, command, log file) of every run not yet finished."""
    out, todo = Path(args.out), []
    for seed in args.seeds:
        for side in args.sides:
            run = out / side / f"seed{seed}"
            if (run / "done").exists():
                continue
            if side == "project":
                cmd = project_cmd(seed, run, args.project_args)
            else:
                cmd = [sys.executable, __file__, "official-run", "--seed", str(seed), "--out", str(out),
                       "--official", args.official, "--side", side,
                       *[f"--official-arg={a}" for a in args.official_args]]
            todo.append((run, cmd, out / side / f"seed{seed}.log"))
    return todo


def launch(args) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "benchmarks")])}
    env = {k: v for k, v in env.items() if not k.startswith(("WANDB", "LOCAL_RANK", "RANK", "WORLD"))}
    queue, running = jobs(args), []
    while queue or running:
        while queue and len(running) < args.jobs:
            run, cmd, log = queue.pop(0)
            log.parent.mkdir(parents=True, exist_ok=True)
            print("start:", " ".join(cmd), flush=True)
            with open(log, "w") as f:  # the child keeps its own handle
                running.append((run, subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT)))
        time.sleep(5)
        for run, proc in list(running):
            if proc.poll() is not None:
                running.remove((run, proc))
                if proc.returncode == 0:
                    run.mkdir(parents=True, exist_ok=True)
                    (run / "done").touch()
                else:
                    print(f"failed ({proc.returncode}): {run}", flush=True)


# ----------------------------------------------------------------------------------------------- the table
def trajectory(run: Path) -> list[tuple[float, float]]:
    """(kimg, FD) rows of a finished run (project: its CSV log; official: trajectory.csv)."""
    path = run / "trajectory.csv"
    if not path.exists():
        path = run / "csv" / "metrics.csv"
    if not path.exists():
        return []
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    key = KEY if KEY in (rows[0] if rows else {}) else f"metrics/{KEY}"
    return [(float(r["kimg"]), float(r[key])) for r in rows if r.get(key) not in (None, "")]


def at(traj: list[tuple[float, float]], kimg: float) -> float | None:
    """FD of the first evaluation at or after ``kimg`` (within one kimg)."""
    for k, fd in traj:
        if kimg - 1e-6 <= k < kimg + 1:
            return fd
    return None


def table(args) -> str:
    head = " | ".join(f"FD@{m}" for m in MARKS)
    lines = [f"| seed | side | final FD | min FD (kimg) | {head} | kimg to FD<200 |", "|---" * (5 + len(MARKS)) + "|"]
    finals: dict[str, list[float]] = {}
    fmt = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
    for side in args.sides:
        for seed in args.seeds:
            run = Path(args.out) / side / f"seed{seed}"
            traj = trajectory(run)
            if not traj or not (run / "done").exists():
                lines.append(f"| {seed} | {side} | (not finished: {len(traj)} evaluations) |" + " |" * (3 + len(MARKS)))
                continue
            k_min, fd_min = min(traj, key=lambda r: r[1])
            finals.setdefault(side, []).append(traj[-1][1])
            below = next((k for k, fd in traj if fd < 200), None)  # when the recovery from the early collapse lands
            lines.append(f"| {seed} | {side} | {traj[-1][1]:.1f} | {fd_min:.1f} ({k_min:.1f}) | "
                         + " | ".join(fmt(at(traj, m)) for m in MARKS) + f" | {fmt(below)} |")
    if args.trajectories:  # every evaluation: FD per whole kimg
        lines.append("")
        for side in args.sides:
            for seed in args.seeds:
                traj = trajectory(Path(args.out) / side / f"seed{seed}")
                lines.append(f"{side} seed {seed}: " + " ".join(f"{k:.0f}:{fd:.0f}" for k, fd in traj))
    lines.append("")
    for side, vals in finals.items():
        sd = statistics.stdev(vals) if len(vals) > 1 else float("nan")
        med = statistics.median(vals)
        mad = statistics.median(abs(v - med) for v in vals)  # robust: one outlying seed barely moves it
        lines.append(f"{side}: {len(vals)} seeds, final FD median {med:.1f}, mean {statistics.fmean(vals):.1f}, "
                     f"sd {sd:.1f}, MAD {mad:.1f}, range {min(vals):.1f}-{max(vals):.1f}")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("command", choices=["run", "table", "official-run", "check"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--seed", type=int, default=0, help="official-run: the seed")
    p.add_argument("--sides", nargs="+", default=["project", "official"], choices=list(SIDES))
    p.add_argument("--side", default="official", choices=[k for k, v in SIDES.items() if v], help="official-run")
    p.add_argument("--out", default=str(ROOT / "outputs" / "seed_spread"))
    p.add_argument("--official", default=str(ROOT / ".official" / "stylegan2-ada-pytorch"))
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--trajectories", action="store_true", help="table: also every run's FD per kimg")
    p.add_argument("--iterations", type=int, default=17, help="check: minibatches (17: R1 at 0 and 16)")
    p.add_argument("--project-args", nargs="*", default=[], help="extra overrides for stylegan-train")
    p.add_argument("--official-arg", dest="official_args", action="append", default=[],
                   help="an extra config override for the official side (repeatable)")
    args = p.parse_args()
    if args.command == "official-run":
        official_run(args)
        return
    if args.command == "check":  # the two loops from the same weights, batches and latents (official_loop.py)
        import torch

        from networks import import_official
        from official_loop import compare_with_module

        torch.set_num_threads(1)
        official = import_official(args.official)
        cfg = compose_demo(args.seed, Path(args.out) / "check", args.official_args)
        for g_lazy in ("ada", "stylegan3"):
            diff = compare_with_module(official, cfg, args.iterations, g_lazy)
            print(f"{args.iterations} iterations, official G lazy correction as {g_lazy}: weight distance / "
                  "distance moved " + ", ".join(f"{k} {v:.2e}" for k, v in diff.items()), flush=True)
        return
    if args.command == "run":
        launch(args)
    print(table(args))


if __name__ == "__main__":
    main()
