"""Progressive growing's schedule (Karras et al. 2018; NVlabs/stylegan ``TrainingSchedule`` as NVlabs/stylegan2
``run_training.py`` sets it for Table 1's configs A-D): ``model.progressive``.

Training starts at ``start_resolution``; every phase of ``training_kimg + transition_kimg`` thousand images first
stabilizes the current resolution for ``training_kimg``, then fades in the next one over ``transition_kimg``
(alpha 0 -> 1), until the full resolution, which then trains for the rest of the run. The level of detail is a
function of ``cur_nimg`` alone (already in every checkpoint), so a resume continues mid-fade exactly. Before every
minibatch the module sets that lod on G, G_ema and D (networks/progressive.py) and fades the reals the same way.
Optional ``g_lr`` / ``d_lr``: learning rates per resolution (the official ``G_lrate_dict`` / ``D_lrate_dict``;
a resolution not listed keeps ``model.optim``'s). ``reset_optimizer`` (official ``reset_opt_for_new_lod``, on by
default): G's and D's Adam moments restart whenever floor(lod) or ceil(lod) changes, i.e. as a fade starts and as it
ends (decided from ``cur_nimg`` and the previous minibatch's, so a resume does the same). Not implemented: the
per-resolution minibatch size (``minibatch_size_dict``; the batch stays ``data.batch_size``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ..networks.progressive import fade_reals, set_lod
from .lazy import lazy_ratio


@dataclass(frozen=True)
class ProgressiveConfig:
    start_resolution: int = 8
    training_kimg: float = 600.0
    transition_kimg: float = 600.0
    g_lr: dict[int, float] = field(default_factory=dict)
    d_lr: dict[int, float] = field(default_factory=dict)
    reset_optimizer: bool = True

    def __post_init__(self) -> None:
        r = self.start_resolution
        if isinstance(r, bool) or not isinstance(r, int) or r < 4 or r & (r - 1):
            raise ValueError(f"progressive.start_resolution must be a power of two >= 4, got {r!r}")
        if self.training_kimg < 0 or self.transition_kimg < 0:
            raise ValueError("progressive.training_kimg and transition_kimg must be >= 0")
        object.__setattr__(self, "g_lr", {int(k): float(v) for k, v in dict(self.g_lr).items()})
        object.__setattr__(self, "d_lr", {int(k): float(v) for k, v in dict(self.d_lr).items()})


@dataclass(frozen=True)
class Stage:
    lod: float  # 0 = full resolution
    resolution: int  # the highest resolution in use: R >> floor(lod)
    alpha: float  # weight of that resolution's block: 1 - (lod - floor(lod)); 1 when stable


def stage_at(cur_nimg: int, img_resolution: int, cfg: ProgressiveConfig) -> Stage:
    """The level of detail after ``cur_nimg`` images (float64 arithmetic, as the official numpy schedule)."""
    if cfg.start_resolution > img_resolution:
        raise ValueError(f"progressive.start_resolution {cfg.start_resolution} is above the data's {img_resolution}")
    kimg = cur_nimg / 1000.0
    period = cfg.training_kimg + cfg.transition_kimg
    phase = math.floor(kimg / period) if period > 0 else 0
    into_phase = kimg - phase * period
    lod = math.log2(img_resolution) - math.log2(cfg.start_resolution) - phase
    if cfg.transition_kimg > 0:
        lod -= max(into_phase - cfg.training_kimg, 0.0) / cfg.transition_kimg
    lod = max(lod, 0.0)
    level = math.floor(lod)
    return Stage(lod=lod, resolution=img_resolution >> level, alpha=1.0 - (lod - level))


def new_level(prev_lod: float, lod: float) -> bool:
    """Layers came in or a fade ended between two minibatches: floor or ceil of the lod changed."""
    return math.floor(prev_lod) != math.floor(lod) or math.ceil(prev_lod) != math.ceil(lod)


def apply_stage(module, real: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Before a minibatch of ``module`` (StyleGAN2Module): set the lod of its G, G_ema and D from ``cur_nimg`` and
    the per-resolution learning rates (with the lazy-regularization ratio); return the faded reals and the
    ``progress/*`` logs."""
    cfg: ProgressiveConfig = module.progressive
    stage = stage_at(module.cur_nimg, real.shape[-1], cfg)
    set_lod(stage.lod, module.G, module.G_ema, module.D)
    prev = module.cur_nimg - real.shape[0] * getattr(getattr(module, "trainer", None), "world_size", 1)
    reset = cfg.reset_optimizer and prev >= 0 and new_level(stage_at(prev, real.shape[-1], cfg).lod, stage.lod)
    o, loss = module.optim_cfg, module.loss_cfg
    for opt, table, base, interval in ((module.optimizers()[0], cfg.g_lr, o.g_lr, loss.path_length.adam_interval),
                                       (module.optimizers()[1], cfg.d_lr, o.d_lr, loss.r1.adam_interval)):
        if reset:
            getattr(opt, "optimizer", opt).state.clear()
        if table:
            for group in getattr(opt, "optimizer", opt).param_groups:
                group["lr"] = table.get(stage.resolution, base) * lazy_ratio(interval)
    logs = {"progress/lod": torch.tensor(stage.lod), "progress/resolution": torch.tensor(float(stage.resolution)),
            "progress/alpha": torch.tensor(stage.alpha)}
    return fade_reals(real, stage.lod), logs


def progressive_config(progressive: ProgressiveConfig | dict | None, G: torch.nn.Module,
                       D: torch.nn.Module) -> ProgressiveConfig | None:
    """``model.progressive`` as a config (None: off), checked against networks built for it."""
    if progressive is None:
        return None
    cfg = progressive if isinstance(progressive, ProgressiveConfig) else ProgressiveConfig(**dict(progressive))
    if not (getattr(G.synthesis, "progressive", False) and getattr(D, "progressive", False)):
        raise ValueError("model.progressive needs networks built for it: set model.generator.progressive=true and "
                         "model.discriminator.progressive=true (both with architecture orig)")
    if cfg.start_resolution > G.img_resolution:
        raise ValueError(f"progressive.start_resolution {cfg.start_resolution} is above the networks' "
                         f"{G.img_resolution}")
    return cfg
