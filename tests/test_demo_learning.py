"""Learning on real data, proved with numbers: the `make train` demo judged by an MNIST classifier.

The demo must learn the digits' pixel statistics (dark background, bright strokes) and *diverse* digits: its
samples cover the classes and lie far closer to held-out real digits, in the judge's feature space, than the
untrained G's. The test trains the demo's settings for 20 of its 25 kimg (to keep the suite short). Measured
(2026-12-01, 2 CPU cores, DEMO_TUNING.md session 8): at 20 kimg FD 119 against 577 untrained (real digits 8.8),
9 classes, 8.8 effective classes (untrained 6.9: that bound only catches a collapse); at 25 kimg FD 92, 10 classes.
Three other runs (seeds 0-2 at 1 thread) gave FD 101-217 at 19.2 kimg, 8-10 classes, 6.4-8.4 effective classes.
Collapsed demos (the paper's linear output) gave FD 750-1100, 1-3 classes, 1.1-4.3 effective classes.
Bounds sit in the gap between the two, with a margin from the healthy runs' spread (another CPU's float kernels
follow another trajectory, like another seed): FD < 0.5x untrained (~290; healthy <= 217), >= 6 classes (healthy
8-10, collapsed <= 3), >= 5 effective classes (healthy >= 6.4, collapsed <= 4.3).
`make test` trains it on one torch thread (tests/conftest.py), as the 1-thread runs above; it starts first and
takes ~6.5 minutes there, beside the rest of the suite on the other core.
"""

from __future__ import annotations

import pytest
import scipy.stats
import torch

from demo_learning_check import measure
from mnist_judge import pixel_w1

TEST_KIMG = 20  # of the demo's 25: every measured run has recovered from its early collapse by 17 kimg


def test_pixel_w1_matches_scipy():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(500, generator=g) * 2 - 1, torch.randn(500, generator=g).tanh()
    assert pixel_w1(a, b) == pytest.approx(scipy.stats.wasserstein_distance(a.numpy(), b.numpy()), rel=1e-12)
    assert pixel_w1(a, a.flip(0)) == 0.0


@pytest.mark.slow
def test_demo_learns_diverse_digits(tmp_path):
    r = measure(tmp_path, kimg=TEST_KIMG)
    trained, untrained = r["trained"], r["untrained"]
    assert r["real"]["pixel_w1"] < 0.02 and r["real"]["classes"] == 10, r  # the judge agrees with itself on reals
    # first order: the pixel-intensity distribution, closer than a G that always draws the mean real digit (0.18)
    assert trained["pixel_w1"] < 0.2 * untrained["pixel_w1"], r
    assert trained["pixel_w1"] < 0.8 * r["mean_image"]["pixel_w1"], r
    # diversity: no mode collapse
    assert trained["fd"] < 0.5 * untrained["fd"], r
    assert trained["classes"] >= 6 and trained["effective_classes"] >= 5, r
