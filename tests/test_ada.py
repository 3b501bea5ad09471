"""ADA (training/ada.py): each transform against an independent reference, the general geometric transforms against
the official pipeline's outputs (a fixture), the p controller against its formula, checkpointing of p, and a real
Hydra run with model/augment=ada."""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

import pytest
import torch

from stylegan.train import main
from stylegan.training.ada import SYM6, AdaptiveAugment, filtered_warp, geometric_inverse
from sweeping import QUICK

IDENTITY = {"xflip": 0, "rot90": 0, "scale": 1.0, "prerot": 0.0, "aniso": 1.0, "postrot": 0.0, "fx": 0.0, "fy": 0.0,
            "brightness": 0.0, "contrast": 1.0, "lumaflip": 0.0, "hue": 0.0, "saturation": 1.0}


def _params(n: int, **set_) -> dict[str, torch.Tensor]:
    prm = {k: torch.full([n], float(set_.get(k, v))) for k, v in IDENTITY.items()}
    prm["xint"] = set_.get("xint", torch.zeros(2, n))
    return prm


def test_p0_is_the_identity_bit_exact():
    torch.manual_seed(0)
    for c in (1, 3):
        x = torch.randn(8, c, 16, 16)
        assert torch.equal(AdaptiveAugment(p=0.0)(x), x)


def _within_binomial(hits: int, n: int, q: float, what: str) -> None:
    """``hits`` of ``n`` draws against the exact probability ``q``: at most 6 standard deviations of a
    Binomial(n, q) off (a floor of one draw's variance where q is 0 or 1, for the measure-zero exact identity)."""
    bound = 6 * math.sqrt(max(q * (1 - q), 1 / n) / n)
    assert abs(hits / n - q) <= bound, f"{what}: {hits}/{n} = {hits / n:.5f}, expected {q:.5f} +- {bound:.5f}"


def _events(prm: dict[str, torch.Tensor], p: float) -> dict[str, tuple[torch.Tensor, float]]:
    """Each drawn transform's non-identity event and its exact probability under the official AugmentPipe: one
    coin of probability p per transform (both translation axes share one; the fractional one too), the two
    rotations each 1 - sqrt(1 - p), so that "any rotation" is p; a hit draws x-flip and luma flip from {0, 1} and
    rot90 from {0, 1, 2, 3} uniformly (identity included), every continuous value is almost surely not the
    identity."""
    p_rot = 1 - math.sqrt(1 - p)
    out = {"xflip": (prm["xflip"] == 1, p / 2), "lumaflip": (prm["lumaflip"] == 1, p / 2),
           "xint": (prm["xint"][0] != 0, p), "fx": (prm["fx"] != 0, p),
           "prerot": (prm["prerot"] != 0, p_rot), "postrot": (prm["postrot"] != 0, p_rot)}
    out.update({f"rot90={k}": (prm["rot90"] == k, p / 4) for k in (1, 2, 3)})
    out.update({k: (prm[k] != IDENTITY[k], p) for k in ("scale", "aniso", "brightness", "contrast", "hue",
                                                          "saturation")})
    return out


@pytest.mark.parametrize("p", [1.0, 0.3])
def test_each_transform_fires_with_its_exact_probability(p):
    """n = 100k draws: every transform's frequency, every pair's joint frequency (independent coins: the product),
    "any rotation" = p and the shared translation coins, within 6 binomial standard deviations of the exact value.
    At p = 0.3 a rotation drawn with probability p (instead of p_rot = 0.163) is off by 160 sigma."""
    n = 100_000
    torch.manual_seed(0)
    prm = AdaptiveAugment(p=p).sample(n, "cpu")
    events = _events(prm, p)
    for name, (hit, q) in events.items():
        _within_binomial(int(hit.sum()), n, q, name)
    singles = {k: v for k, v in events.items() if not k.startswith("rot90=")}  # rot90's values exclude each other
    names = sorted(singles)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            (ha, qa), (hb, qb) = singles[a], singles[b]
            _within_binomial(int((ha & hb).sum()), n, qa * qb, f"{a} and {b}")
    _within_binomial(int(((prm["prerot"] != 0) | (prm["postrot"] != 0)).sum()), n, p, "any rotation")
    assert torch.equal(prm["xint"][0] != 0, prm["xint"][1] != 0) and torch.equal(prm["fx"] != 0, prm["fy"] != 0)
    assert prm["xint"].abs().max() <= 0.125 and prm["rot90"].unique().tolist() == [0, 1, 2, 3]
    y = AdaptiveAugment(p=p)(torch.randn(4, 3, 16, 16))
    assert y.shape == (4, 3, 16, 16) and torch.isfinite(y).all()


@pytest.mark.parametrize("p", [1.0, 0.3])
def test_drawn_values_follow_the_official_distributions(p):
    """Where a transform fires, its value as the official draws it: exp2(N(0, std)) scalings (std 0.2, 0.2, 0.5,
    1), N(0, 0.2) brightness, N(0, 0.125) fractional translation, uniform rotations and hue in (-pi, pi), uniform
    integer translation in (-0.125, 0.125): the mean within 6 standard errors of 0 and the variance within 6
    standard errors of the exact one (normal: 2 sigma^4 / n for the variance's variance; uniform on (-a, a):
    4 a^4 / 45 / n)."""
    torch.manual_seed(1)
    prm = AdaptiveAugment(p=p).sample(50_000, "cpu")
    normal = {"scale": 0.2, "aniso": 0.2, "contrast": 0.5, "saturation": 1.0}
    draws = {k: (prm[k][prm[k] != 1].double().log2(), s, "normal") for k, s in normal.items()}
    draws["brightness"] = (prm["brightness"][prm["brightness"] != 0].double(), 0.2, "normal")
    draws["fx"] = (torch.cat([prm["fx"], prm["fy"]])[torch.cat([prm["fx"], prm["fy"]]) != 0].double(), 0.125,
                   "normal")
    for k in ("prerot", "postrot", "hue"):
        draws[k] = (prm[k][prm[k] != 0].double(), math.pi, "uniform")
    draws["xint"] = (prm["xint"][prm["xint"] != 0].double(), 0.125, "uniform")
    for k, (v, s, kind) in draws.items():
        m = v.numel()
        var = s * s if kind == "normal" else s * s / 3
        var_sd = math.sqrt(2 * s**4 / m) if kind == "normal" else math.sqrt(4 * s**4 / 45 / m)
        assert abs(v.mean().item()) <= 6 * math.sqrt(var / m), (k, v.mean().item())
        assert abs(v.var().item() - var) <= 6 * var_sd, (k, v.var().item(), var)
        if kind == "uniform":
            assert v.abs().max() < s, k


def test_xflip_and_rot90_are_exact():
    x = torch.randn(4, 3, 8, 8)
    torch.testing.assert_close(AdaptiveAugment.apply(x, _params(4, xflip=1)), torch.flip(x, [3]), rtol=0, atol=0)
    for k in range(4):
        torch.testing.assert_close(AdaptiveAugment.apply(x, _params(4, rot90=k)), torch.rot90(x, k, (2, 3)),
                                   rtol=0, atol=0)
    # x-flip first, then the rotation
    torch.testing.assert_close(AdaptiveAugment.apply(x, _params(4, xflip=1, rot90=1)),
                               torch.rot90(torch.flip(x, [3]), 1, (2, 3)), rtol=0, atol=0)


def test_integer_translation_equals_a_roll_in_the_interior():
    x = torch.randn(2, 1, 16, 16)
    xint = torch.tensor([[2 / 16, -1 / 16], [-2 / 16, 2 / 16]])  # [axis (x, y), image]
    y = AdaptiveAugment.apply(x, _params(2, xint=xint))
    for i, (tx, ty) in enumerate([(2, -2), (-1, 2)]):
        rolled = torch.roll(x[i], (ty, tx), (1, 2))
        torch.testing.assert_close(y[i, :, 2:-2, 2:-2], rolled[:, 2:-2, 2:-2], rtol=0, atol=0)
    # reflect padding at the border: column 0 shifted right by 2 is the mirrored column 2
    torch.testing.assert_close(y[0, :, 2:-2, 0], x[0, :, 4:, 2], rtol=0, atol=0)


def test_color_on_a_constant_image():
    x = torch.full([2, 3, 4, 4], 0.25)
    y = AdaptiveAugment.apply(x, _params(2, brightness=0.1, contrast=2.0))
    torch.testing.assert_close(y, torch.full_like(x, 2.0 * (0.25 + 0.1)))
    # luma flip negates gray; hue and saturation leave gray alone; gray 1-channel images get the same
    y = AdaptiveAugment.apply(x, _params(2, lumaflip=1.0, hue=1.3, saturation=3.0))
    torch.testing.assert_close(y, -x)
    y = AdaptiveAugment.apply(x[:, :1], _params(2, lumaflip=1.0, hue=1.3, saturation=3.0, brightness=0.1))
    torch.testing.assert_close(y, -(x[:, :1] + 0.1))


def test_saturation_and_hue_on_a_colored_pixel():
    x = torch.tensor([0.5, -0.2, 0.1]).view(1, 3, 1, 1).expand(1, 3, 2, 2).contiguous()
    mean = x.mean(1, keepdim=True)
    torch.testing.assert_close(AdaptiveAugment.apply(x, _params(1, saturation=0.0)), mean.expand_as(x))
    torch.testing.assert_close(AdaptiveAugment.apply(x, _params(1, saturation=2.0)), mean + 2 * (x - mean))
    # a 120-degree hue rotation about the gray axis permutes R, G, B cyclically
    y = AdaptiveAugment.apply(x, _params(1, hue=2 * math.pi / 3))
    assert torch.allclose(y, x.roll(1, 1), atol=1e-6) or torch.allclose(y, x.roll(-1, 1), atol=1e-6)


def test_general_geometric_against_a_float64_reference():
    """A smooth image resampled with the same parameters: each output pixel equals the image function at the
    source point computed by hand (inverse transforms in reverse order), up to the resampling error (bilinear on the
    sym6-upsampled 2x grid, then the lowpass: 0.014 here; a wrong order or sign of a transform is off by ~1)."""
    S = 32
    prm = _params(1, scale=1.15, prerot=0.4, aniso=0.9, postrot=-0.7, fx=0.05, fy=-0.03)
    c = torch.arange(S, dtype=torch.float64) + 0.5 - S / 2  # centered pixel coordinates

    def f(x, y):
        return torch.sin(0.15 * x + 0.3) * torch.cos(0.1 * y) + 0.01 * x

    img = f(c[None, :], c[:, None]).float()[None, None]
    out = AdaptiveAugment.apply(img, prm)[0, 0].double()

    def rot(x, y, a):
        return x * math.cos(a) - y * math.sin(a), x * math.sin(a) + y * math.cos(a)

    x, y = c[None, :].expand(S, S), c[:, None].expand(S, S)
    x, y = x - 0.05 * S, y + 0.03 * S  # undo fractional translation (applied last)
    x, y = rot(x, y, 0.7)  # undo post-rotation
    x, y = x / 0.9, y * 0.9  # undo anisotropic scaling
    x, y = rot(x, y, -0.4)  # undo pre-rotation
    x, y = x / 1.15, y / 1.15  # undo isotropic scaling
    inside = (x.abs() < S / 2 - 1) & (y.abs() < S / 2 - 1)
    assert inside.float().mean() > 0.5
    err = (out - f(x, y))[inside].abs().max()
    assert err < 0.02, err


OFFICIAL_GEOMETRIC = Path(__file__).parent / "fixtures" / "ada_geometric_official.pt"


def test_general_geometric_equals_the_official_filtered_resampling():
    """The official AugmentPipe (scale, rotate, aniso, xfrac at strength 1; ``debug_percentile`` q fixes every
    drawn value: exp2(erfinv(2q - 1) * std) for the scalings, (2q - 1) * pi for the pre-rotation, none after,
    erfinv(2q - 1) * 0.125 for the translation) on RGB and gray images (tests/fixtures/make_ada_geometric.py).
    A plain bilinear warp of the same transforms is 0.14-0.21 off on average here."""
    ref = torch.load(OFFICIAL_GEOMETRIC, map_location="cpu", weights_only=True)
    assert len(ref["cases"]) == 8
    for case in ref["cases"]:
        x, q = case["images"], torch.tensor(case["q"], dtype=torch.float32)
        e = torch.erfinv(q * 2 - 1)
        prm = _params(x.shape[0], scale=torch.exp2(e * 0.2), prerot=-(q * 2 - 1) * math.pi,
                      aniso=torch.exp2(e * 0.2), fx=e * 0.125, fy=e * 0.125)
        torch.testing.assert_close(AdaptiveAugment.apply(x, prm), case["out"], rtol=0, atol=2e-5)


def test_filtered_resampling_is_exact_for_integer_shifts():
    """sym6 is orthonormal (sum_k h[k] h[k + 2n] = [n == 0] for taps summing to sqrt 2), so the 2x up- and
    down-sampling around the warp is the identity: an integer shift through the filtered path equals the reflect-
    padded image shifted, at every pixel (float64)."""
    h = torch.tensor(SYM6, dtype=torch.float64)
    assert math.isclose(h.sum().item(), math.sqrt(2), rel_tol=1e-12)
    for n in range(-5, 6):
        lagged = sum(h[k] * h[k + 2 * n] for k in range(12) if 0 <= k + 2 * n < 12)
        assert abs(lagged - float(n == 0)) < 1e-12, n
    torch.manual_seed(0)
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    g = geometric_inverse({k: torch.full([2], float(v), dtype=torch.float64) for k, v in
                           dict(scale=1, prerot=0, aniso=1, postrot=0, fx=2, fy=-3).items()})
    padded = torch.nn.functional.pad(x, [2, 0, 0, 3], mode="reflect")  # out[y, x] = in[y + 3, x - 2]
    torch.testing.assert_close(filtered_warp(x, g), padded[:, :, 3:, :16], rtol=0, atol=1e-10)


def test_filtered_resampling_gradients_are_exact_to_second_order():
    """The hand-written strided FIR and its adjoint: first and second derivatives against finite differences
    (float64; R1 differentiates D's gradient through the augmentation)."""
    torch.manual_seed(1)
    x = torch.randn(1, 2, 6, 6, dtype=torch.float64, requires_grad=True)
    g = geometric_inverse({k: torch.full([1], float(v), dtype=torch.float64) for k, v in
                           dict(scale=1.1, prerot=0.3, aniso=0.9, postrot=-0.2, fx=0.4, fy=-0.7).items()})
    assert torch.autograd.gradcheck(lambda t: filtered_warp(t, g), (x,))
    assert torch.autograd.gradgradcheck(lambda t: filtered_warp(t, g).square(), (x,))


def test_gradients_reach_the_images_and_r1_double_backward():
    torch.manual_seed(0)
    aug = AdaptiveAugment(p=1.0)
    w = torch.randn(2, 3, 3, 3, requires_grad=True)
    x = torch.randn(4, 3, 16, 16, requires_grad=True)
    logits = torch.nn.functional.conv2d(aug(x), w).square().sum()
    (g,) = torch.autograd.grad(logits, x, create_graph=True)
    assert g.abs().sum() > 0
    g.square().sum().backward()
    assert w.grad is not None and w.grad.abs().sum() > 0


def _official_next(p: float, signs: list[float], target: float, batch: int, interval: int, ada_kimg: float) -> float:
    """stylegan2-ada-pytorch training_loop.py (l.314-318): after every ``interval``-th minibatch,
    adjust = sign(E[sign D(real)] - target) * batch * interval / (ada_kimg * 1000); p = max(p + adjust, 0)."""
    rt = sum(signs) / len(signs)
    adjust = (rt > target) - (rt < target)
    return max(p + adjust * batch * interval / (ada_kimg * 1000), 0.0)


def test_controller_takes_the_official_next_value_after_every_interval():
    """Batches of 8 logits, interval 4, ada_kimg 0.1 (a step of 0.32): p stays put for 3 minibatches and moves
    on the 4th (the official counts batch_idx after the increment) by exactly the official step from the mean
    sign of the interval's 32 logits, down to 0 and no lower, and up past 1 (the official clamps at 0 only;
    drawing clamps p to [0, 1]). Zeros count in the mean: 2 zeros, 5 positive, 1 negative is r_t = 0.5, below
    the target (0.67 above it without the zeros)."""
    batch, interval, ada_kimg, target = 8, 4, 0.1, 0.6
    aug = AdaptiveAugment(p=0.05, target=target, interval=interval, speed_kimg=ada_kimg)
    up, down, zeros_count = (1, 7, 0), (1, 0, 7), (2, 5, 1)  # per minibatch: zeros, positive, negative logits
    plan = [up, down, down, up, up, up, up, up, down, zeros_count]  # p: 0.37 0.05 0 0.32 ... 1.60 1.28 0.96
    expected, window, it = 0.05, [], 0
    for zeros, pos, neg in plan:
        for _ in range(interval):
            logits = torch.tensor([0.0] * zeros + [2.5] * pos + [-0.5] * neg).view(batch, 1)
            logs = aug.observe(logits, it)
            window += [0.0] * zeros + [1.0] * pos + [-1.0] * neg
            if len(window) == batch * interval:
                rt = sum(window) / len(window)
                expected, window = _official_next(expected, window, target, batch, interval, ada_kimg), []
                assert float(aug.rt) == pytest.approx(rt, abs=1e-7), it
            assert float(logs["augment/p"]) == pytest.approx(expected, abs=1e-6), it
            it += 1
    assert expected == pytest.approx(0.96) and float(aug.p) == pytest.approx(0.96, abs=1e-6)


def test_fixed_p_and_state_round_trip():
    fixed = AdaptiveAugment(p=0.2, target=None)
    logs = fixed.observe(torch.ones(4, 1), 0)
    assert list(logs) == ["augment/p"] and float(logs["augment/p"]) == float(fixed.p) == pytest.approx(0.2)
    a = AdaptiveAugment(target=0.6, interval=4, speed_kimg=0.1)
    for it in range(6):
        a.observe(torch.ones(8, 1), it)
    b = AdaptiveAugment(target=0.6, interval=4, speed_kimg=0.1)
    b.load_state_dict(a.state_dict())
    assert set(a.state_dict()) == {"p", "rt", "stats"}
    for it in range(6, 9):
        assert torch.equal(a.observe(torch.ones(8, 1), it)["augment/p"], b.observe(torch.ones(8, 1), it)["augment/p"])


def _train(run_dir: Path, *overrides: str) -> dict:
    argv, sys.argv = sys.argv, ["stylegan-train", *QUICK, "logger=csv", f"hydra.run.dir={run_dir}", *overrides]
    try:
        main()
    finally:
        sys.argv = argv
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


def test_hydra_run_with_ada_logs_p_and_resumes_exactly(tmp_path):
    """2 iterations, p updated after each (interval 1) by the official step 8 / 100 from the logged r_t; then
    4 iterations straight == the 2 resumed from that checkpoint under another seed (a run that ignored the
    checkpoint would start from other weights): every weight and buffer (p, r_t, the sign statistics) identical,
    and the resumed run's first logged row is past the checkpoint's kimg."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ada = ["model/augment=ada", "model.augment.p=0.5", "model.augment.interval=1", "model.augment.speed_kimg=0.1",
               "trainer.log_every_n_steps=1"]
        half = _train(tmp_path / "half", *ada)
        assert half["stylegan"]["iteration"] == 2
        rows = [r for r in csv.DictReader((tmp_path / "half" / "csv" / "metrics.csv").open()) if r.get("augment/p")]
        assert [int(r["step"]) for r in rows] == [0, 1]
        p = 0.5
        for r in rows:
            rt = float(r["augment/rt"])
            p = max(p + math.copysign(0.08, rt - 0.6) * (rt != 0.6), 0.0)
            assert float(r["augment/p"]) == pytest.approx(p, abs=1e-6)
        assert float(half["state_dict"]["augment.p"]) == pytest.approx(p, abs=1e-6)
        full = _train(tmp_path / "full", *ada, "total_kimg=0.032")
        resumed = _train(tmp_path / "resumed", *ada, "total_kimg=0.032", "seed=1",
                         f"ckpt_path={tmp_path / 'half' / 'checkpoints' / 'last.ckpt'}")
        first = next(csv.DictReader((tmp_path / "resumed" / "csv" / "metrics.csv").open()))
        assert int(first["step"]) == 2 and float(first["kimg"]) == pytest.approx(0.024)
        assert full["stylegan"]["cur_nimg"] == resumed["stylegan"]["cur_nimg"] == 32
        a, b = full["state_dict"], resumed["state_dict"]
        assert a.keys() == b.keys() and {"augment.p", "augment.rt", "augment.stats"} <= a.keys()
        assert [k for k in a if not torch.equal(a[k], b[k])] == []
    finally:
        torch.set_num_threads(before)


def _rank_observes(rank: int, port: int, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    aug = AdaptiveAugment(p=0.5, target=0.6, interval=1, speed_kimg=0.1)
    aug.observe(torch.full([8, 1], 1.0 if rank == 0 else -1.0)[: 8 - 4 * rank], 0)  # 8 positive, 4 negative
    torch.save({"p": aug.p, "rt": aug.rt}, f"{out}/{rank}.pt")
    dist.destroy_process_group()


def test_ddp_ranks_sum_the_statistics_and_agree_on_p(tmp_path):
    """Two gloo processes with different logits: r_t is the global mean sign (8 - 4) / 12 and p moves by the
    global batch (12 images, at speed 0.1 kimg: -0.12) on both ranks."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(_rank_observes, args=(port, str(tmp_path)), nprocs=2, start_method="fork")  # no re-imports
    r0, r1 = (torch.load(tmp_path / f"{r}.pt") for r in (0, 1))
    assert torch.equal(r0["p"], r1["p"]) and torch.equal(r0["rt"], r1["rt"])
    assert float(r0["rt"]) == pytest.approx(4 / 12) and float(r0["p"]) == pytest.approx(0.5 - 12 / 100)
