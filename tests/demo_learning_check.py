"""The `make train` demo judged by an MNIST classifier: the measurement behind ``tests/test_demo_learning.py``.

Also a tuning tool (pytest does not collect this file): ``python tests/demo_learning_check.py KIMG [overrides...]``
trains the demo with the overrides for KIMG and prints the judge's numbers.

The judge is trained here on 4000 of the 5000 demo digits and evaluated on the other 1000: the Frechet distance of
its features (FD) between held-out real digits and G_ema samples, the digit classes among confidently classified
samples, and the effective number of classes (see ``mnist_judge.judge``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from mnist_judge import DigitNet, judge, pixel_w1, train_judge
from stylegan.data import ImageDataModule
from stylegan.evaluate import load_generator
from stylegan.networks import Generator
from sweeping import in_process


@torch.no_grad()
def samples(G: Generator, n: int = 1000) -> torch.Tensor:
    z = torch.randn([n, G.z_dim], generator=torch.Generator().manual_seed(123))
    c = torch.eye(G.c_dim)[torch.arange(n) % G.c_dim] if G.c_dim else torch.zeros(n, 0)  # classes in turn
    batches = zip(z.split(200), c.split(200), strict=True)
    return torch.cat([G(zb, cb, noise_mode="const") for zb, cb in batches]).clamp(-1, 1)


def demo_judge() -> tuple[DigitNet, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The judge trained on 4000 demo digits, checked on the other 1000: (net, images, train idx, held-out idx)."""
    dm = ImageDataModule("mnist", use_labels=True)
    dm.setup()
    x, y = dm.real_images(5000), torch.as_tensor(dm.store.labels).long()
    perm = torch.randperm(5000, generator=torch.Generator().manual_seed(1))
    train, held_out = perm[:4000], perm[4000:]
    net = train_judge(x[train], y[train])
    with torch.no_grad():
        accuracy = (net(x[held_out]).argmax(1) == y[held_out]).float().mean().item()
    assert accuracy > 0.9, f"the judge itself is too weak ({accuracy:.3f})"
    return net, x, train, held_out


def measure(run_dir: Path, kimg: float, overrides: tuple[str, ...] = ()) -> dict[str, dict[str, float]]:
    in_process("experiment=mnist_demo", f"hydra.run.dir={run_dir}", f"total_kimg={kimg}",
               "callbacks.samples.every_kimg=1000", "callbacks.progress.refresh_rate=0", *overrides)
    G, trained_kimg = load_generator(run_dir / "checkpoints" / "last.ckpt")  # its G_ema
    assert trained_kimg >= kimg

    net, x, train, held_out = demo_judge()
    trained = judge(net, x[held_out], samples(G))
    torch.manual_seed(0)
    untrained = judge(net, x[held_out], samples(Generator(**G.init_kwargs).eval()))
    real = judge(net, x[held_out], x[train[:1000]])
    mean_image = {"pixel_w1": pixel_w1(x[held_out], x[train].mean(0, keepdim=True).expand(1000, -1, -1, -1))}
    return {"trained": trained, "untrained": untrained, "real": real, "mean_image": mean_image}


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for name, numbers in measure(Path(tmp), float(sys.argv[1]), tuple(sys.argv[2:])).items():
            print(name, {k: round(v, 3) for k, v in numbers.items()})
