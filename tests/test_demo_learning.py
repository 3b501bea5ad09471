"""Learning on real data, proved with a number: the `make train` demo, shortened to 12 kimg, against its untrained G.

What is asserted is first-order learning only: the pixel-intensity distribution of G_ema's samples (dark
background, bright strokes) moves most of the way to the real digits', closer than a generator that always draws the
mean digit. Measured at 12 kimg (2026-11-23, 2 CPU cores): pixel W1 untrained 1.37, trained 0.116, mean digit 0.182.
Digit *diversity* is not asserted: the demo still mode-collapses (issue 3); ``tests/demo_learning_check.py`` holds
that stricter check and is not collected.
"""

from __future__ import annotations

import pytest
import scipy.stats
import torch

from demo_learning_check import measure
from mnist_judge import pixel_w1


def test_pixel_w1_matches_scipy():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(500, generator=g) * 2 - 1, torch.randn(500, generator=g).tanh()
    assert pixel_w1(a, b) == pytest.approx(scipy.stats.wasserstein_distance(a.numpy(), b.numpy()), rel=1e-12)
    assert pixel_w1(a, a.flip(0)) == 0.0


@pytest.mark.slow
def test_demo_learns_the_digits_pixel_statistics(tmp_path):
    r = measure(tmp_path)
    assert r["real"]["pixel_w1"] < 0.02, r  # two halves of the real digits agree
    assert r["trained"]["pixel_w1"] < 0.2 * r["untrained"]["pixel_w1"], r
    # ...and beats the best shape-blind generator, one that always draws the mean real digit (0.18; all black: 0.20)
    assert r["trained"]["pixel_w1"] < 0.8 * r["mean_image"]["pixel_w1"], r
