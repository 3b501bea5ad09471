"""A small MNIST classifier used as an independent judge of generated digits (tests and demo tuning).

``fd``: Frechet distance between Gaussian fits of the classifier's 64-d penultimate features of real and fake
digits (float64). ``classes``: how many digit classes appear among confidently classified fakes;
``confident``: the fraction of fakes classified with probability > 0.9. ``pixel_w1``: the 1-Wasserstein distance
between the pixel-intensity distributions of real and fake images (first-order statistics only: dark background,
bright strokes; blind to which digits are drawn).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F
from torch import nn


class DigitNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc = nn.Linear(32 * 8 * 8, 64)
        self.out = nn.Linear(64, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return F.relu(self.fc(x.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x))


def train_judge(images: torch.Tensor, labels: torch.Tensor, epochs: int = 4, seed: int = 0) -> DigitNet:
    """Train on [N, 1, 32, 32] images in [-1, 1] with integer labels (a few seconds on 2 CPU cores)."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = DigitNet()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    for _ in range(epochs):
        for idx in torch.randperm(len(images), generator=gen).split(64):
            loss = F.cross_entropy(net(images[idx]), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def pixel_w1(a: torch.Tensor, b: torch.Tensor) -> float:
    """W1 between the empirical distributions of the values of ``a`` and ``b`` (same number of elements): the mean
    absolute difference of the sorted values, in float64."""
    if a.numel() != b.numel():
        raise ValueError(f"pixel_w1 needs equally many values, got {a.numel()} and {b.numel()}")
    return float((a.flatten().double().sort().values - b.flatten().double().sort().values).abs().mean())


@torch.no_grad()
def judge(net: DigitNet, real: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
    fr, ff = net.features(real).double().numpy(), net.features(fake).double().numpy()
    prob = F.softmax(net.out(net.features(fake)), dim=1)
    conf, pred = prob.max(1)
    confident = conf > 0.9
    p = prob.double().mean(0)
    return {
        "fd": frechet_distance(fr, ff),
        "classes": float(len(set(pred[confident].tolist()))),
        "confident": float(confident.float().mean()),
        # exp(entropy of the mean softmax): 10 for even coverage of the digits, 1 for a collapsed G
        "effective_classes": float((-(p * p.clamp_min(1e-12).log()).sum()).exp()),
        "pixel_w1": pixel_w1(real, fake) if real.numel() == fake.numel() else float("nan"),
    }
