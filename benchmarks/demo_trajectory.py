"""Demo tuning aid: train with snapshots, then judge every snapshot with the MNIST classifier of tests/.

    PYTHONPATH=src:tests python benchmarks/demo_trajectory.py RUN_DIR KIMG [hydra overrides...]

Prints, per snapshot: the judge's Frechet distance to held-out digits (FD), the digit classes among confidently
classified samples, the confident fraction, and the effective number of classes ``exp(H(mean softmax))`` (10 for
uniform coverage, 1 for a collapsed G) and the per-pixel standard deviation of the samples across latents (real
digits: 0.29). A finished run in RUN_DIR is judged again without retraining.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from stylegan.evaluate import load_generator

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from demo_learning_check import demo_judge, samples
from mnist_judge import judge


def train(run: Path, kimg: float, overrides: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB", "LOCAL_RANK", "RANK", "WORLD"))}
    every = max(kimg / 10, 1)
    cmd = [sys.executable, "-m", "stylegan.train", "experiment=mnist_demo", f"hydra.run.dir={run}",
           f"total_kimg={kimg}", "logger=none",
           "callbacks.progress.refresh_rate=0", f"callbacks.checkpoint.every_kimg={every}",
           "callbacks.checkpoint.keep_snapshots=true", *overrides]
    subprocess.run(cmd, env=env, check=True)


def trajectory(run: Path) -> list[dict[str, float]]:
    net, x, _, held_out = demo_judge()  # trains the judge: outside no_grad
    rows = []
    for path in sorted((run / "checkpoints").glob("snapshot-*.ckpt")):
        G, kimg = load_generator(path)  # its G_ema
        fake = samples(G)
        row = {"kimg": kimg, **judge(net, x[held_out], fake)}
        row["z_std"] = float(fake.std(0).mean())  # per-pixel std across latents (reals: 0.29)
        rows.append(row)
    return rows


if __name__ == "__main__":
    run_dir, total = Path(sys.argv[1]), float(sys.argv[2])
    if not (run_dir / "checkpoints" / "last.ckpt").exists():
        train(run_dir, total, sys.argv[3:])
    for r in trajectory(run_dir):
        print("kimg {kimg:6.1f}  FD {fd:7.1f}  classes {classes:2.0f}  confident {confident:.2f}  "
              "effective classes {effective_classes:.2f}  std across z {z_std:.3f}".format(**r))
