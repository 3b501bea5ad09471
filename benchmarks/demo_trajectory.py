"""Demo tuning aid: train with snapshots, then judge every snapshot with the MNIST classifier of tests/.

    PYTHONPATH=src:tests python benchmarks/demo_trajectory.py RUN_DIR KIMG [hydra overrides...]

Prints, per snapshot: the judge's Frechet distance to held-out digits (FD), the digit classes among confidently
classified samples, the confident fraction, and the effective number of classes ``exp(H(mean softmax))`` (10 for
uniform coverage, 1 for a collapsed G). A finished run in RUN_DIR is judged again without retraining.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from mnist_judge import judge, train_judge
from stylegan.data import ImageDataModule
from stylegan.networks import Generator


def train(run: Path, kimg: float, overrides: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB", "LOCAL_RANK", "RANK", "WORLD"))}
    every = max(kimg / 10, 1)
    cmd = [sys.executable, "-m", "stylegan.train", f"hydra.run.dir={run}", f"total_kimg={kimg}", "logger=none",
           "callbacks.progress.refresh_rate=0", f"callbacks.checkpoint.every_kimg={every}",
           "callbacks.checkpoint.keep_snapshots=true", *overrides]
    subprocess.run(cmd, env=env, check=True)


@torch.no_grad()
def trajectory(run: Path, n: int = 1000) -> list[dict[str, float]]:
    dm = ImageDataModule("mnist", use_labels=True)
    dm.setup()
    x, y = dm.real_images(5000), torch.as_tensor(dm.store.labels).long()
    perm = torch.randperm(5000, generator=torch.Generator().manual_seed(1))
    with torch.enable_grad():
        net = train_judge(x[perm[:4000]], y[perm[:4000]])
    rows = []
    for path in sorted((run / "checkpoints").glob("snapshot-*.ckpt")):
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        G = Generator(**ckpt["stylegan"]["G_kwargs"])
        G.load_state_dict({k[6:]: v for k, v in ckpt["state_dict"].items() if k.startswith("G_ema.")})
        z = torch.randn([n, G.z_dim], generator=torch.Generator().manual_seed(123))
        c = torch.eye(G.c_dim)[torch.arange(n) % G.c_dim] if G.c_dim else torch.zeros(n, 0)
        fake = G.eval()(z, c, noise_mode="const").clamp(-1, 1)
        p = F.softmax(net(fake), dim=1).mean(0)
        row = {"kimg": ckpt["stylegan"]["cur_nimg"] / 1000, **judge(net, x[perm[4000:]], fake)}
        row["effective_classes"] = float((-(p * p.clamp_min(1e-12).log()).sum()).exp())
        rows.append(row)
    return rows


if __name__ == "__main__":
    run_dir, total = Path(sys.argv[1]), float(sys.argv[2])
    if not (run_dir / "checkpoints" / "last.ckpt").exists():
        train(run_dir, total, sys.argv[3:])
    for r in trajectory(run_dir):
        print("kimg {kimg:6.1f}  FD {fd:7.1f}  classes {classes:2.0f}  confident {confident:.2f}  "
              "effective classes {effective_classes:.2f}".format(**r))
