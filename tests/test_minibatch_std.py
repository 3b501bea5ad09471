"""Minibatch standard deviation (discriminator.MinibatchStdLayer) against an explicit-loop reference."""

from __future__ import annotations

import pytest
import torch

from naive_ops import DT, assert_rel_close, minibatch_std_ref
from stylegan.networks.discriminator import MinibatchStdLayer


@pytest.mark.parametrize(
    ("n", "group_size", "num_channels"),
    [(8, 4, 1), (4, 2, 1), (8, 4, 2), (4, 2, 2), (6, 3, 1), (2, 4, 1), (4, None, 2)],
)
def test_minibatch_std_matches_loop_reference(n, group_size, num_channels):
    g = torch.Generator().manual_seed(n * 10 + num_channels)
    # per-sample offsets and scales make the grouping matter
    x = torch.randn(n, 4, 3, 5, generator=g, dtype=DT) * torch.arange(1, n + 1, dtype=DT)[:, None, None, None]
    y = MinibatchStdLayer(group_size, num_channels)(x)
    assert y.shape == (n, 4 + num_channels, 3, 5)
    assert torch.equal(y[:, :4], x)  # input untouched, statistics appended as the LAST channels
    assert_rel_close(y, minibatch_std_ref(x, group_size, num_channels), rtol=1e-13)
    # every appended map is constant over H, W
    extra = y[:, 4:]
    assert torch.equal(extra, extra[:, :, :1, :1].expand_as(extra))


def test_minibatch_std_groups_are_strided_not_consecutive():
    # N=4, G=2: groups {0, 2} and {1, 3}. Make samples 0 and 2 identical: their group std is sqrt(1e-8).
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 2, 2, 2, generator=g, dtype=DT)
    x[2] = x[0]
    y = MinibatchStdLayer(2, 1)(x)
    assert y[0, 2, 0, 0].item() == pytest.approx(1e-4, rel=1e-12)
    assert y[2, 2, 0, 0].item() == pytest.approx(1e-4, rel=1e-12)
    assert y[1, 2, 0, 0].item() > 0.1 and y[3, 2, 0, 0].item() == y[1, 2, 0, 0].item()


def test_minibatch_std_population_std_with_eps_inside_sqrt():
    # group of 2 samples with values a and b everywhere: population std |a - b| / 2, eps inside the sqrt
    x = torch.stack([torch.full((3, 2, 2), 1.0, dtype=DT), torch.full((3, 2, 2), 4.0, dtype=DT)])
    y = MinibatchStdLayer(2, 1)(x)
    assert y[0, 3, 0, 0].item() == pytest.approx((1.5**2 + 1e-8) ** 0.5, rel=1e-15)


def test_minibatch_std_rejects_indivisible_batch():
    with pytest.raises(ValueError, match="divisible"):
        MinibatchStdLayer(4, 1)(torch.zeros(6, 2, 4, 4))
