"""The committed ``mnist_lenet`` judge (stylegan.metrics.judges): its held-out accuracy, its Frechet distances against
an independent scipy computation, its names (never FID), and class accuracy against a brute-force count.

Measured with the committed weights (sha256 0effa2dee020, 2026-12-07): held-out accuracy 0.975 (train 0.994); FD of
two random halves of the 5000 reals 2.1, real vs the other half shifted by 2 px 114, by 4 px 621, vs uniform noise
1019 (2500 each; the test uses 1000 each). The bounds below sit well inside those gaps.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.linalg
import torch

from stylegan.data import ImageDataModule
from stylegan.data.demo import load_mnist
from stylegan.data.sources import subset_indices
from stylegan.metrics import MetricRunner, MetricSetupError, Networks
from stylegan.metrics.class_accuracy import check_classifier
from stylegan.metrics.judges import MnistLeNet
from stylegan.metrics.judges.lenet import card
from stylegan.metrics.judges.train import split
from stylegan.metrics.names import higher_is_better


@pytest.fixture(scope="module")
def judge() -> MnistLeNet:
    return MnistLeNet()


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    store = load_mnist(32, 1)
    return torch.as_tensor(np.asarray(store.images)), torch.as_tensor(store.labels)


def _scipy_fd(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance of Gaussian fits in float64 with scipy's sqrtm (the official formula). A few of the 64 ReLU
    features are never active on digits, so the covariances are singular (scipy warns; the root is still right)."""
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        root = scipy.linalg.sqrtm(ca @ cb).real
    return float(np.square(a.mean(0) - b.mean(0)).sum() + np.trace(ca + cb - 2 * root))


@torch.no_grad()
def test_committed_weights_classify_held_out_digits(judge, digits):
    x, y = digits
    train, held_out = split(len(x))
    assert len(np.intersect1d(train, held_out)) == 0 and len(train) + len(held_out) == len(x) == 5000
    accuracy = (judge.classify(x[held_out]).argmax(1) == y[held_out]).double().mean().item()
    assert accuracy >= 0.965, accuracy  # 0.975 measured
    assert accuracy == pytest.approx(card()["held_out_accuracy"], abs=0.0025)  # the card states what the file does
    # what the runner feeds it (gray repeated to RGB) gives the same features; other sizes are resized sensibly
    assert torch.equal(judge(x[held_out[:64]].repeat(1, 3, 1, 1)), judge(x[held_out[:64]]))
    x64 = torch.as_tensor(np.asarray(load_mnist(64, 1).images))[held_out]
    assert (judge.classify(x64).argmax(1) == y[held_out]).double().mean().item() >= 0.95
    assert judge.name == "mnist_lenet" and judge(x[:3]).shape == (3, judge.feature_dim) == (3, 64)


class ReplayG(torch.nn.Module):
    """A 'generator' returning fixed float images in order (one process), so its features are known."""

    def __init__(self, images: torch.Tensor, c_dim: int = 0) -> None:
        super().__init__()
        self.images, self.z_dim, self.c_dim, self.pos = images, 4, c_dim, 0
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, z, c, truncation_psi=1.0, noise_mode="random"):
        out = self.images[self.pos : self.pos + len(z)]
        self.pos += len(z)
        return out


def _float(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 127.5 - 1


@torch.no_grad()
def test_frechet_distance_small_for_real_halves_large_for_shifted_and_noise(judge, digits):
    x, _ = digits
    perm = np.random.RandomState(1).permutation(len(x))
    a, b = x[perm[:1000]], x[perm[1000:2000]]
    fa = judge(a).double().numpy()
    noise = torch.randint(0, 256, b.shape, generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    cases = {"real": b, "shift2": b.roll((2, 2), (2, 3)), "shift4": b.roll((4, 4), (2, 3)), "noise": noise}
    feats = {k: judge(v).double().numpy() for k, v in cases.items()}
    fd = {k: _scipy_fd(fa, f) for k, f in feats.items()}
    assert fd["real"] < 8, fd  # 1000 vs 1000 random reals: sampling noise only
    assert 10 * fd["real"] < fd["shift2"] < fd["shift4"] < fd["noise"], fd
    assert fd["noise"] > 100 * fd["real"], fd
    # the runner, end to end on the built-in data module (1000 reals, data.max_images): the shifted digits as the
    # 'generated' images, reported under the judge's name (never FID), equal to scipy on the same features
    dm = ImageDataModule("mnist", max_images=1000)
    named = MetricRunner(["fid1000_full", "kid1000_full"], Networks(features=judge), progress=False).keys()
    assert named == ["fd1000_full@mnist_lenet", "kd1000_full@mnist_lenet"]
    runner = MetricRunner(["fid1000_full"], Networks(features=judge), batch_size=500, progress=False)
    value = runner.run(ReplayG(_float(cases["shift2"])), dm, "cpu")["fd1000_full@mnist_lenet"]
    reals = judge(x[subset_indices(len(x), 1000, seed=0)]).double().numpy()
    assert value == pytest.approx(_scipy_fd(reals, feats["shift2"]), rel=1e-4)


class LabelledReplay(torch.nn.Module):
    """A conditional 'generator' that draws a real digit of class ``(requested + offset) % 10`` for each sample."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, offset: int = 0) -> None:
        super().__init__()
        self.by_class = [_float(images[labels == k]) for k in range(10)]
        self.z_dim, self.c_dim, self.offset, self.used = 4, 10, offset, [0] * 10
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, z, c, truncation_psi=1.0, noise_mode="random"):
        out = []
        for k in ((c.argmax(1) + self.offset) % 10).tolist():
            out.append(self.by_class[k][self.used[k]])
            self.used[k] += 1
        return torch.stack(out)


@torch.no_grad()
def test_class_accuracy_is_the_fraction_judged_as_the_requested_class(judge, digits):
    x, y = digits
    dm = ImageDataModule("mnist", use_labels=True)
    runner = MetricRunner(["class_acc300"], Networks(features=judge), batch_size=64, progress=False)
    assert runner.keys() == ["class_acc300@mnist_lenet"] and higher_is_better("metrics/class_acc300@mnist_lenet")
    value = runner.run(LabelledReplay(x, y), dm, "cpu")["class_acc300@mnist_lenet"]
    # brute force: sample i asks for class i % 10 and gets the next real digit of that class, 30 per class
    per_class = [(judge.classify(x[y == k][:30]).argmax(1) == k).double().mean().item() for k in range(10)]
    assert value == pytest.approx(float(np.mean(per_class)), abs=1e-12) and value > 0.9
    wrong = runner.run(LabelledReplay(x, y, offset=1), dm, "cpu")["class_acc300@mnist_lenet"]
    assert wrong < 0.05  # a G that draws the next digit is judged wrong (not silently counted as right)
    with pytest.raises(MetricSetupError, match=r"data.use_labels=true.*c_dim=0"):
        check_classifier(ReplayG(x[:1]), judge, "class_acc300")
    with pytest.raises(MetricSetupError, match="classify"):
        check_classifier(LabelledReplay(x, y), torch.nn.Identity(), "class_acc300")
