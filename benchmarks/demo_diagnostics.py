"""Demo collapse diagnostics (issue 3): per snapshot of a run, how much of D's push on fakes all samples share.

    PYTHONPATH=src python benchmarks/demo_diagnostics.py RUN_DIR

RUN_DIR is a run trained with ``callbacks.checkpoint.keep_snapshots=true`` (as benchmarks/demo_trajectory.py does).
For 64 samples of the raw G (not G_ema) it prints D's mean fake logit, the gradient g_n of the non-saturating G loss
w.r.t. each image, ``|mean_n g_n| / mean_n |g_n|`` (1: every sample is pushed the same way; 0: no shared direction),
the mean pairwise cosine of the g_n, and the per-pixel std of the samples across latents (G's diversity).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from stylegan.evaluate import submodule_state
from stylegan.networks import Discriminator, Generator


def load_nets(path: Path) -> tuple[Generator, Discriminator]:
    """The raw G and D of one of our Lightning checkpoints."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    state, kwargs = blob["state_dict"], blob["stylegan"]
    G, D = Generator(**kwargs["G_kwargs"]), Discriminator(**kwargs["D_kwargs"])
    G.load_state_dict(submodule_state(state, "G"))
    D.load_state_dict(submodule_state(state, "D"))
    return G.eval(), D.eval()


def shared_push(G: Generator, D: Discriminator, n: int = 64, seed: int = 0) -> dict[str, float]:
    """D's push on n fakes: mean logit, shared fraction and mean pairwise cosine of the image gradients."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn([n, G.z_dim], generator=gen)
    c = torch.eye(G.c_dim)[torch.arange(n) % G.c_dim] if G.c_dim else torch.zeros(n, 0)
    with torch.no_grad():
        img = G(z, c, noise_mode="const")
    img.requires_grad_(True)
    logits = D(img, c)
    (grad,) = torch.autograd.grad(F.softplus(-logits).sum(), img)
    g = grad.flatten(1).double()
    unit = F.normalize(g, dim=1)
    off_diagonal = ~torch.eye(n, dtype=torch.bool)
    return {"logit": float(logits.detach().mean()), "shared": float(g.mean(0).norm() / g.norm(dim=1).mean()),
            "cosine": float((unit @ unit.T)[off_diagonal].mean()), "z_std": float(img.detach().std(0).mean())}


if __name__ == "__main__":
    for path in sorted((Path(sys.argv[1]) / "checkpoints").glob("snapshot-*.ckpt")):
        r = shared_push(*load_nets(path))
        print(f"{path.name}  fake logit {r['logit']:6.2f}  shared push {r['shared']:.3f}  "
              f"pairwise cosine {r['cosine']:.3f}  std across z {r['z_std']:.3f}")
