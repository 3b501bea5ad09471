"""Parity with the official StyleGAN2 networks and losses (NVlabs stylegan3 @ c233a91, networks_stylegan2.py).

The fixture holds official weights (G skip, D resnet, 32x32), fixed inputs and the official outputs, losses
and gradients. Gates follow ../shared/reference/README.md: ws/images/logits 2e-5 relative to max|ref|;
penalties, lengths, losses 1e-4; gradients 1e-3 global relative L2 and 1e-2 per tensor.
"""

from __future__ import annotations

import pytest
import torch

from stylegan.losses import (
    discriminator_loss,
    generator_loss,
    path_length_penalty,
    path_lengths,
    path_lengths_of,
    r1_loss,
    r1_penalty,
    r1_penalty_of,
)
from stylegan.official import load_official


@pytest.fixture()
def nets(ref):
    G, D = load_official(ref)
    return G.train(), D.train()


def assert_close(x: torch.Tensor, r: torch.Tensor, rel: float, what: str) -> None:
    assert x.shape == r.shape, f"{what}: shape {tuple(x.shape)} vs {tuple(r.shape)}"
    err = (x.detach() - r).abs().max().item() / max(r.abs().max().item(), 1e-30)
    assert err <= rel, f"{what}: max error {err:.2e} > {rel:.0e} (relative to max |ref|)"


def assert_grads_close(module: torch.nn.Module, ref: dict, prefix: str) -> None:
    ours, theirs = [], []
    scale = max(v.abs().max().item() for k, v in ref.items() if k.startswith(prefix + "/"))
    for name, p in module.named_parameters():
        r = ref[f"{prefix}/{name}"]
        g = torch.zeros_like(p) if p.grad is None else p.grad
        err = (g - r).abs().max().item()
        assert err <= 1e-2 * r.abs().max().item() + 1e-3 * scale, f"{prefix}/{name}: max abs error {err:.2e}"
        ours.append(g.flatten())
        theirs.append(r.flatten())
    ours, theirs = torch.cat(ours), torch.cat(theirs)
    global_rel = ((ours - theirs).norm() / theirs.norm()).item()
    assert global_rel <= 1e-3, f"{prefix}: global relative L2 error {global_rel:.2e}"


@pytest.mark.parametrize("psi", [1, 0.7])
def test_mapping_and_truncation(ref, nets, psi):
    G, _ = nets
    z, c = ref["inputs"]["z"], ref["inputs"]["c"]
    with torch.no_grad():
        assert_close(G.mapping(z, c, truncation_psi=psi), ref["outputs"][f"ws_psi{psi}"], 2e-5, "ws")
        if psi != 1:
            ws = G.mapping(z, c, truncation_psi=psi, truncation_cutoff=2)
            assert_close(ws, ref["outputs"]["ws_psi0.7_cutoff2"], 2e-5, "ws cutoff 2")


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("noise_mode", ["const", "none"])
@pytest.mark.parametrize("psi", [1, 0.7])
def test_images_and_logits(ref, nets, psi, noise_mode, fused):
    G, D = nets
    out = ref["outputs"]
    with torch.no_grad():
        ws = G.mapping(ref["inputs"]["z"], ref["inputs"]["c"], truncation_psi=psi)
        img = G.synthesis(ws, noise_mode=noise_mode, fused_modconv=fused)
        assert_close(img, out[f"img_{noise_mode}_psi{psi}"], 2e-5, "image")
        assert_close(D(img, ref["inputs"]["c"]), out[f"logits_{noise_mode}_psi{psi}"], 2e-5, "logits")


def test_non_fused_reference_and_random_noise(ref, nets):
    G, D = nets
    z, c = ref["inputs"]["z"], ref["inputs"]["c"]
    with torch.no_grad():
        img = G.synthesis(G.mapping(z, c), noise_mode="const", fused_modconv=False)
        assert_close(img, ref["outputs"]["img_const_psi1_nofuse"], 2e-5, "non-fused image")
        torch.manual_seed(ref["seed"] + 1)  # noise drawn per layer, increasing resolution, conv0 then conv1
        assert_close(G(z, c, noise_mode="random"), ref["outputs"]["img_random_psi1"], 2e-5, "random-noise image")
        assert_close(D(ref["inputs"]["real"], c), ref["outputs"]["logits_real"], 2e-5, "real logits")


@pytest.mark.parametrize("fused", [True, False])
def test_generator_vjp(ref, nets, fused):
    G, _ = nets
    img = G(ref["inputs"]["z"], ref["inputs"]["c"], noise_mode="const", fused_modconv=fused)
    (img * ref["inputs"]["gimg_cot"]).sum().backward()
    assert_grads_close(G, ref["outputs"], "gimg_vjp")


@pytest.mark.parametrize("fused", [True, False])
def test_gmain(ref, nets, fused):
    G, D = nets
    D.requires_grad_(False)
    img = G(ref["inputs"]["z"], ref["inputs"]["c"], noise_mode="const", fused_modconv=fused)
    img.retain_grad()
    loss = generator_loss(D(img, ref["inputs"]["c"]))
    loss.backward()
    assert_close(loss, ref["outputs"]["gmain_loss"], 1e-4, "Gmain loss")
    assert_close(img.grad, ref["outputs"]["gmain_dimg"], 1e-4, "dGmain/dimg")
    assert_grads_close(G, ref["outputs"], "gmain")


def test_dmain(ref, nets):
    G, D = nets
    inp = ref["inputs"]
    with torch.no_grad():
        fake = G(inp["z"], inp["c"], noise_mode="const")
    loss = discriminator_loss(D(inp["real"], inp["c"]), D(fake, inp["c"]))
    loss.backward()
    assert_close(loss, ref["outputs"]["dmain_loss"], 1e-4, "Dmain loss")
    assert_grads_close(D, ref["outputs"], "dmain")


@pytest.mark.parametrize("form", ["autograd", "func"])
def test_dreg_r1(ref, nets, form):
    """``form`` func: the torch.func.vjp formulation that model.compile captures whole (r1_penalty_of)."""
    _, D = nets
    out = ref["outputs"]
    real = ref["inputs"]["real"].detach().requires_grad_(form == "autograd")
    if form == "func":
        logits, penalty = r1_penalty_of(lambda x: D(x, ref["inputs"]["c"]), real)
    else:
        logits = D(real, ref["inputs"]["c"])
        (grads,) = torch.autograd.grad(logits.sum(), real, retain_graph=True)
        assert_close(grads, out["r1_grads"], 1e-4, "R1 gradient")
        penalty = r1_penalty(real, logits)
    assert_close(penalty, out["r1_penalty"], 1e-4, "R1 penalty")
    loss = r1_loss(penalty, gamma=10)
    assert_close(loss, out["dreg_loss"], 1e-4, "Dreg loss")
    loss.backward()
    assert_grads_close(D, out, "dreg")


@pytest.mark.parametrize("fused,form", [(True, "autograd"), (False, "autograd"), (False, "func")])
def test_greg_path_length(ref, nets, fused, form):
    """``form`` func: the torch.func.vjp formulation that model.compile captures whole (path_lengths_of)."""
    G, _ = nets
    out, inp = ref["outputs"], ref["inputs"]
    ws = G.mapping(inp["z"][:4], inp["c"][:4])
    if form == "func":
        lengths = path_lengths_of(lambda w: G.synthesis(w, noise_mode="const", fused_modconv=fused), ws,
                                  inp["pl_noise"])
    else:
        img = G.synthesis(ws, noise_mode="const", fused_modconv=fused)
        lengths = path_lengths(img, ws, inp["pl_noise"])
    assert_close(lengths, out["pl_lengths"], 1e-4, "path lengths")
    penalty, pl_mean = path_length_penalty(lengths, torch.zeros([]), decay=0.01)
    assert_close(pl_mean, out["pl_mean"], 1e-4, "pl_mean")
    assert_close(penalty, out["pl_penalty"], 1e-4, "path-length penalty")
    loss = (penalty * 2).mean()
    assert_close(loss, out["greg_loss"], 1e-4, "Greg loss")
    loss.backward()
    assert_grads_close(G, out, "greg")
