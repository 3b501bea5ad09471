"""Parity with the official StyleGAN2 networks (NVlabs stylegan3 @ c233a91, networks_stylegan2.py) in the
architectures the first fixture does not cover: orig G + orig D, resnet G + skip D, a conditional skip/resnet pair
(4 classes) and a 64 px pair. ``tests/fixtures/official_archs.pt`` was written by the official code
(``tests/fixtures/make_official_archs.py``): weights with perturbed biases and noise strengths, fixed inputs, ws,
images, logits, and first-order gradients. Gates as test_official_parity: values 2e-5 relative to max |ref|;
gradients 1e-3 global relative L2 and 1e-2 per tensor (+ 1e-3 of the largest)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stylegan.official import load_official

FIXTURE = Path(__file__).parent / "fixtures" / "official_archs.pt"
CASES = torch.load(FIXTURE, map_location="cpu", weights_only=True)["cases"]


def _close(x: torch.Tensor, ref: torch.Tensor, rel: float, what: str) -> None:
    assert x.shape == ref.shape, f"{what}: shape {tuple(x.shape)} vs {tuple(ref.shape)}"
    err = (x.detach() - ref).abs().max().item() / max(ref.abs().max().item(), 1e-30)
    assert err <= rel, f"{what}: max error {err:.2e} > {rel:.0e} (relative to max |ref|)"


def _grads_close(module: torch.nn.Module, ref: dict, prefix: str) -> None:
    theirs = {k.split("/", 1)[1]: v for k, v in ref.items() if k.startswith(prefix + "/")}
    scale = max(v.abs().max().item() for v in theirs.values())
    ours_all, theirs_all = [], []
    for name, p in module.named_parameters():
        r = theirs.get(name, torch.zeros_like(p))  # the official stores no gradient where autograd gave None
        g = torch.zeros_like(p) if p.grad is None else p.grad
        err = (g - r).abs().max().item()
        assert err <= 1e-2 * r.abs().max().item() + 1e-3 * scale, f"{prefix}/{name}: max abs error {err:.2e}"
        ours_all.append(g.flatten())
        theirs_all.append(r.flatten())
    assert set(theirs) <= {n for n, _ in module.named_parameters()}, set(theirs)
    ours_all, theirs_all = torch.cat(ours_all), torch.cat(theirs_all)
    assert ((ours_all - theirs_all).norm() / theirs_all.norm()).item() <= 1e-3, prefix


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_official_outputs_and_gradients(case, one_thread):
    G, D = load_official({k: case[k] for k in ("G", "G_kwargs", "D", "D_kwargs")})
    G, D = G.train(), D.train()
    g_kw, d_kw = case["G_kwargs"], case["D_kwargs"]
    assert (G.synthesis.architecture, D.architecture, G.img_resolution, G.c_dim, D.c_dim) == (
        g_kw["architecture"], d_kw["architecture"], g_kw["img_resolution"], g_kw["c_dim"], d_kw["c_dim"])
    inp, out = case["inputs"], case["outputs"]
    z, c, real, cot = inp["z"], inp["c"], inp["real"], inp["cot"]
    with torch.no_grad():
        _close(G.mapping(z, c), out["ws"], 2e-5, "ws")
    img = G(z, c, noise_mode="const")
    _close(img, out["img_const"], 2e-5, "image")
    (img * cot).sum().backward()
    _grads_close(G, case["grads"], "G")
    real = real.clone().requires_grad_(True)
    logits = D(real, c)
    _close(logits, out["logits_real"], 2e-5, "logits of the reals")
    logits.sum().backward()
    _grads_close(D, case["grads"], "D")
    _close(real.grad, out["real_grad"], 1e-4, "gradient w.r.t. the reals")
    with torch.no_grad():
        _close(D(img.detach(), c), out["logits_fake"], 2e-5, "logits of the images")
