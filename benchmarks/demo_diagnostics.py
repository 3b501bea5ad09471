"""Demo collapse diagnostics (issue 3): per snapshot of a run, how much of D's push on fakes all samples share.

    PYTHONPATH=src python benchmarks/demo_diagnostics.py RUN_DIR

RUN_DIR is a run trained with ``callbacks.checkpoint.keep_snapshots=true`` (as benchmarks/demo_trajectory.py does).
For 64 samples of the raw G (not G_ema) it prints D's mean fake logit, the gradient g_n of the non-saturating G loss
w.r.t. each image, ``|mean_n g_n| / mean_n |g_n|`` (1: every sample is pushed the same way; 0: no shared direction),
the mean pairwise cosine of the g_n, and the per-pixel std of the samples across latents (G's diversity).
Then D's use of its minibatch-std feature (the diversity signal, StyleGAN Sec. 3 of Karras 2018): the feature's
mean on 512 reals and 512 fakes, and how far the fakes' mean logit moves when their feature is replaced by the
reals' (a D that rejects a collapsed G for its lack of variety moves a lot). Reals come from the run's data config.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from stylegan.data import ImageDataModule
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


@torch.no_grad()
def fakes(G: Generator, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n samples of G on seeded latents (noise 'const'), with cycling one-hot labels for a conditional G."""
    z = torch.randn([n, G.z_dim], generator=torch.Generator().manual_seed(seed))
    c = torch.eye(G.c_dim)[torch.arange(n) % G.c_dim] if G.c_dim else torch.zeros(n, 0)
    return G(z, c, noise_mode="const"), c


def shared_push(G: Generator, D: Discriminator, n: int = 64, seed: int = 0) -> dict[str, float]:
    """D's push on n fakes: mean logit, shared fraction and mean pairwise cosine of the image gradients."""
    img, c = fakes(G, n, seed)
    img.requires_grad_(True)
    logits = D(img, c)
    (grad,) = torch.autograd.grad(F.softplus(-logits).sum(), img)
    g = grad.flatten(1).double()
    unit = F.normalize(g, dim=1)
    off_diagonal = ~torch.eye(n, dtype=torch.bool)
    return {"logit": float(logits.detach().mean()), "shared": float(g.mean(0).norm() / g.norm(dim=1).mean()),
            "cosine": float((unit @ unit.T)[off_diagonal].mean()), "z_std": float(img.detach().std(0).mean())}


@torch.no_grad()
def mbstd_use(G: Generator, D: Discriminator, real: torch.Tensor, seed: int = 0) -> dict[str, float]:
    """The minibatch-std feature on reals and fakes, and the fakes' logit shift when given the reals' feature.
    The feature comes before D's label projection; the reals' logit is NaN for a conditional D (labels not read)."""
    n, F_ = real.shape[0], D.b4.mbstd.num_channels
    fake, c = fakes(G, n, seed)
    seen: list[torch.Tensor] = []
    hook = D.b4.mbstd.register_forward_hook(lambda m, i, out: seen.append(out[:, -F_:].clone()))
    fake_logit, real_logit = D(fake, c).mean(), D(real, c).mean()
    if G.c_dim:
        real_logit = torch.tensor(float("nan"))
    hook.remove()
    real_feature = seen[1]

    def swap(m, i, out):
        out = out.clone()
        out[:, -F_:] = real_feature
        return out

    hook = D.b4.mbstd.register_forward_hook(swap)
    swapped = D(fake, c).mean()
    hook.remove()
    return {"real_std": float(real_feature.mean()), "fake_std": float(seen[0].mean()),
            "real_logit": float(real_logit), "fake_logit": float(fake_logit), "shift": float(swapped - fake_logit)}


def run_reals(run: Path, n: int = 512) -> torch.Tensor:
    """n reals of the run's dataset (its saved Hydra config)."""
    data = OmegaConf.load(run / ".hydra" / "config.yaml").data
    dm = ImageDataModule(data.source, resolution=data.resolution, channels=data.channels)
    dm.setup("fit")
    return dm.real_images(n)


if __name__ == "__main__":
    run = Path(sys.argv[1])
    real = run_reals(run)
    for path in sorted((run / "checkpoints").glob("snapshot-*.ckpt")):
        G, D = load_nets(path)
        r = shared_push(G, D)
        m = mbstd_use(G, D, real)
        print(f"{path.name}  fake logit {r['logit']:6.2f}  shared push {r['shared']:.3f}  "
              f"pairwise cosine {r['cosine']:.3f}  std across z {r['z_std']:.3f}  |  mbstd real {m['real_std']:.3f} "
              f"fake {m['fake_std']:.3f}  logit real {m['real_logit']:.2f} fake {m['fake_logit']:.2f}  "
              f"fake logit shift with the reals' mbstd {m['shift']:+.3f}")
