"""Progressive growing's schedule (Karras et al. 2018; NVlabs/stylegan ``TrainingSchedule`` as NVlabs/stylegan2
``run_training.py`` sets it for Table 1's configs A-D): ``model.progressive``.

Training starts at ``start_resolution``; every phase of ``training_kimg + transition_kimg`` thousand images first
stabilizes the current resolution for ``training_kimg``, then fades in the next one over ``transition_kimg``
(alpha 0 -> 1), until the full resolution, which then trains for the rest of the run. The level of detail is a
function of ``cur_nimg`` alone (already in every checkpoint), so a resume continues mid-fade exactly. Before every
minibatch the module sets that lod on G, G_ema and D (networks/progressive.py) and fades the reals the same way.
Optional ``g_lr`` / ``d_lr``: learning rates per resolution (the official ``G_lrate_dict`` / ``D_lrate_dict``;
a resolution not listed keeps ``model.optim``'s). Optional ``minibatch``: the global minibatch per resolution (the
official ``minibatch_size_dict``, all devices together; a resolution not listed keeps ``data.batch_size`` per
device): the data stream sizes each batch from the images consumed before it (:class:`MinibatchSchedule`), so a
resume continues with the same batches. Optional ``batch_gpu``: images per accumulation round per resolution (the
official ``minibatch_gpu_dict``; a resolution not listed keeps ``model.batch_gpu``; ignored when ``model.batch_gpu``
is null, i.e. no accumulation: training/rounds.py). ``reset_optimizer`` (official ``reset_opt_for_new_lod``, on by
default): G's and D's Adam moments restart whenever floor(lod) or ceil(lod) changes, i.e. as a fade starts and as it
ends (decided from ``cur_nimg`` and the previous minibatch's, so a resume does the same). The official loop
recomputes the schedule every 4 minibatches (``minibatch_repeats``); here every minibatch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ..networks.progressive import fade_reals, set_lod
from .config import ConfigError
from .lazy import lazy_ratio


@dataclass(frozen=True)
class ProgressiveConfig:
    start_resolution: int = 8
    training_kimg: float = 600.0
    transition_kimg: float = 600.0
    g_lr: dict[int, float] = field(default_factory=dict)
    d_lr: dict[int, float] = field(default_factory=dict)
    reset_optimizer: bool = True
    minibatch: dict[int, int] = field(default_factory=dict)
    batch_gpu: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        r = self.start_resolution
        if isinstance(r, bool) or not isinstance(r, int) or r < 4 or r & (r - 1):
            raise ValueError(f"progressive.start_resolution must be a power of two >= 4, got {r!r}")
        if self.training_kimg < 0 or self.transition_kimg < 0:
            raise ValueError("progressive.training_kimg and transition_kimg must be >= 0")
        # a dict per resolution, or null (from the command line: `model.progressive.minibatch=null`): none listed
        object.__setattr__(self, "g_lr", {int(k): float(v) for k, v in dict(self.g_lr or {}).items()})
        object.__setattr__(self, "d_lr", {int(k): float(v) for k, v in dict(self.d_lr or {}).items()})
        for key in ("minibatch", "batch_gpu"):
            sizes = {int(k): v for k, v in dict(getattr(self, key) or {}).items()}
            bad = [f"{k}: {v!r}" for k, v in sizes.items()
                   if k < 4 or k & (k - 1) or isinstance(v, bool) or not isinstance(v, int) or v < 1]
            if bad:
                raise ValueError(f"progressive.{key} must map resolutions (powers of two >= 4) to positive integers, "
                                 f"got {', '.join(bad)}")
            object.__setattr__(self, key, sizes)


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


@dataclass(frozen=True)
class MinibatchSchedule:
    """The global minibatch after ``nimg`` images: ``minibatch`` at the stage's resolution, None where not listed
    (``data.batch_size`` per device then). Picklable, for the data loader's workers."""

    img_resolution: int
    cfg: ProgressiveConfig

    def __call__(self, nimg: int) -> int | None:
        return self.cfg.minibatch.get(stage_at(nimg, self.img_resolution, self.cfg).resolution)


def stage_batch_gpu(cfg: ProgressiveConfig, batch_gpu: int | None, resolution: int) -> int | None:
    """The accumulation round size at a stage's ``resolution``: ``cfg.batch_gpu``'s entry, else ``batch_gpu``
    (``model.batch_gpu``); None (no accumulation) when ``batch_gpu`` is None."""
    return None if batch_gpu is None else cfg.batch_gpu.get(resolution, batch_gpu)


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
    world = getattr(getattr(module, "trainer", None), "world_size", 1)
    expected = cfg.minibatch.get(stage.resolution)
    if expected is not None and real.shape[0] * world != expected:
        raise RuntimeError(f"the minibatch at kimg {module.cur_nimg / 1000:g} has {real.shape[0]} x {world} images, "
                           f"model.progressive.minibatch says {expected} at {stage.resolution}x{stage.resolution}: "
                           "the data stream and the model disagree on the images shown (resume both from one "
                           "checkpoint)")
    # the previous minibatch's start; a checkpoint from before prev_nimg was saved: this minibatch's size back
    prev = getattr(module, "prev_nimg", None)
    prev = prev if prev is not None else module.cur_nimg - real.shape[0] * world
    reset = cfg.reset_optimizer and prev >= 0 and new_level(stage_at(prev, real.shape[-1], cfg).lod, stage.lod)
    o, loss = module.optim_cfg, module.loss_cfg
    for opt, table, base, interval in ((module.optimizers()[0], cfg.g_lr, o.g_lr, loss.path_length.adam_interval),
                                       (module.optimizers()[1], cfg.d_lr, o.d_lr, loss.r1.adam_interval)):
        if reset:
            getattr(opt, "optimizer", opt).state.clear()
        if table:
            for group in getattr(opt, "optimizer", opt).param_groups:
                group["lr"] = table.get(stage.resolution, base) * lazy_ratio(interval)
    logs = {"progress/lod": stage.lod, "progress/resolution": stage.resolution, "progress/alpha": stage.alpha,
            "progress/minibatch": real.shape[0] * world}
    logs = {k: torch.tensor(float(v)) for k, v in logs.items()}
    return fade_reals(real, stage.lod), logs


def schedule_minibatch(cfg: ProgressiveConfig, G: torch.nn.Module, D: torch.nn.Module, datamodule,
                       world_size: int) -> None:
    """Hand ``cfg.minibatch`` to the data module's stream (its ``batch_schedule``), after checking that every size
    splits over the ranks and fills D's minibatch-std groups. Resolutions the growth does not pass (above the data's,
    below ``start_resolution``) are unused, as in the official dict that serves every dataset."""
    if not cfg.minibatch:
        return
    if not hasattr(datamodule, "batch_schedule"):
        raise ConfigError("model.progressive.minibatch needs a data module with a batch_schedule (stylegan's "
                          "ImageDataModule, data=...): remove the key to train with data.batch_size throughout")
    group = D.init_kwargs.get("mbstd_group_size") if D.init_kwargs.get("mbstd_num_channels") else None
    for res, size in sorted(cfg.minibatch.items()):
        where = f"model.progressive.minibatch {res}: {size}"
        if not cfg.start_resolution <= res <= G.img_resolution:
            continue
        if size % world_size:
            raise ConfigError(f"{where} does not split over {world_size} devices: use multiples of {world_size}")
        per = size // world_size
        if group and per % min(group, per):
            raise ConfigError(f"{where} gives {per} images per device, not a multiple of "
                              f"model.discriminator.mbstd_group_size={group}")
    datamodule.batch_schedule = MinibatchSchedule(G.img_resolution, cfg)


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
