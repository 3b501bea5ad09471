"""The StyleGAN2 training procedure as a LightningModule (manual optimization).

Per minibatch, in the official order: G main (non-saturating logistic), G reg (path length, every
``g_reg_interval``), D main (logistic on fakes and reals), D reg (R1, every ``d_reg_interval``); then the G EMA
update. With an interval of 1 the main and regularization losses share one optimizer step (the official
"Gboth"/"Dboth", needed by the paper's configs A-B). Each phase runs in rounds of ``batch_gpu`` images whose
gradients add up before its one step (the official ``--batch-gpu``; ``training/rounds.py``). Only the network
being trained has ``requires_grad`` in each phase. Progress is counted in images shown (``cur_nimg``), as in the
paper.
"""

from __future__ import annotations

import copy
import time
import warnings
from collections import Counter
from dataclasses import asdict

import lightning as L
import torch

from ..losses import (
    at_least_float32,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    interpolates,
    path_length_noise,
    path_length_penalty,
    path_lengths,
    r1_loss,
    r1_penalty,
    wgan_discriminator_loss,
    wgan_generator_loss,
)
from ..networks import Discriminator, Generator
from .compile import PhaseCompiler, compile_options, path_length_pass, r1_pass
from .config import ConfigError, LossConfig, OptimConfig
from .draws import Draws
from .ema import ema_beta, update_ema
from .guard import guarded_step, nonfinite_flag
from .lazy import lazy_adam
from .mixing import mix_styles
from .progressive import ProgressiveConfig, apply_stage, progressive_config, schedule_minibatch
from .ranks import gather_objects, global_mean
from .ranks import world_size as _world_size
from .rounds import RoundLosses, check_batch_gpu, check_setup, count_rounds, gradient_sync, split
from .state import capture_rng, reseed_for_rank, restore_rng
from .transfer import frozen_parameters, trainable

NAN_POLICIES = ("skip", "stop")
# G_ema is an eval-mode submodule on purpose (it is never trained by backprop).
warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode at the start of training")


class StyleGAN2Module(L.LightningModule):
    def __init__(
        self,
        generator: Generator,
        discriminator: Discriminator,
        loss: LossConfig | dict | None = None,
        optim: OptimConfig | dict | None = None,
        ema_kimg: float | None = None,
        ema_rampup: float | None = 0.05,
        total_kimg: float = 25.0,
        nan_policy: str = "skip",
        augment: torch.nn.Module | None = None,
        draws: str = "per_rank",
        init_from: str | None = None,
        freeze_d: int = 0,
        freeze_g_mapping: bool = False,
        progressive: ProgressiveConfig | dict | None = None,
        compile: bool | str | dict | None = None,
        batch_gpu: int | None = None,
    ) -> None:
        """``ema_kimg`` None: ``global_batch * 10 / 32`` (the official default). ``nan_policy``: 'skip' drops a
        step whose loss or gradient is not finite, on the device (counted, logged; guard.py); 'stop' raises.
        ``augment``: a differentiable augmentation applied to every image D sees (e.g. ``DiffAugment``), or None.
        ``draws``: 'per_rank' (official: each DDP rank its own latents) or 'global' (latents, mixing and path-length
        directions drawn for the global batch and sliced per rank: the run does not depend on the device count; see
        ``training/draws.py``). ``init_from`` (weights to start a fresh run from; ``stylegan.train`` applies it),
        ``freeze_d`` (Freeze-D: D's K highest-resolution blocks), ``freeze_g_mapping``: see ``training/transfer.py``.
        ``progressive``: progressive growing (``training/progressive.py``; None: off). ``compile``: torch.compile of
        the training phases (``training/compile.py``: main passes and regularizers; None: off). ``batch_gpu``: images
        per round of gradient accumulation on one device (``training/rounds.py``; None: the whole batch at once)."""
        super().__init__()
        if nan_policy not in NAN_POLICIES:
            raise ValueError(f"nan_policy must be one of {NAN_POLICIES}, got {nan_policy!r}")
        if generator.img_resolution != discriminator.img_resolution or generator.c_dim != discriminator.c_dim:
            raise ValueError("generator and discriminator disagree on img_resolution or c_dim")
        self.automatic_optimization = False
        self.G, self.D = generator, discriminator
        self.G_ema = copy.deepcopy(generator).eval().requires_grad_(False)
        self.init_from, self.freeze_g_mapping = init_from, freeze_g_mapping
        self.frozen_params = frozen_parameters(self.G, self.D, freeze_d, freeze_g_mapping)
        self.augment = augment
        self.progressive = progressive_config(progressive, generator, discriminator)
        self.compiler = PhaseCompiler(compile_options(compile))
        if self.compiler.options is not None and self.progressive is not None:
            raise ConfigError("model.compile with model.progressive: the level of detail changes every step and "
                              "would recompile G and D each time; set model.compile=null for progressive growing")
        self.draws = Draws(draws)
        self.batch_gpu = check_batch_gpu(batch_gpu)
        self.loss_cfg = loss if isinstance(loss, LossConfig) else LossConfig(**dict(loss or {}))
        self.optim_cfg = optim if isinstance(optim, OptimConfig) else OptimConfig(**dict(optim or {}))
        self.ema_kimg, self.ema_rampup = ema_kimg, ema_rampup
        self.total_kimg, self.nan_policy = total_kimg, nan_policy
        self.register_buffer("pl_mean", torch.zeros([]))
        self.cur_nimg = 0
        self.prev_nimg: int | None = None  # cur_nimg before the last minibatch (progressive growing's Adam resets)
        self.iteration = 0
        self.nan_skips: Counter[str] = Counter()  # host-side counts; the device-side ones in _skips_on_device
        self._skips_on_device: dict[str, torch.Tensor] = {}
        self._rng_to_restore = None
        self._draws_to_restore = None
        self._tick = None

    # ----------------------------------------------------------------- setup
    def configure_optimizers(self):
        o, cfg = self.optim_cfg, self.loss_cfg
        opt_g = lazy_adam(trainable(self.G, self.frozen_params), o.g_lr, o.betas, o.eps, cfg.path_length.adam_interval)
        opt_d = lazy_adam(trainable(self.D, self.frozen_params), o.d_lr, o.betas, o.eps, cfg.r1.adam_interval)
        return [opt_g, opt_d]

    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if dm is None or not hasattr(dm, "c_dim"):
            return
        G = self.G
        if dm.c_dim != G.c_dim:
            raise ConfigError(f"data has c_dim={dm.c_dim} labels but the generator has c_dim={G.c_dim}: set "
                              f"model.generator.c_dim={dm.c_dim} (and discriminator), or data.use_labels=false")
        if (dm.resolution, dm.channels) != (G.img_resolution, G.img_channels):
            raise ConfigError(f"data is {dm.channels}x{dm.resolution}x{dm.resolution} but the generator makes "
                              f"{G.img_channels}x{G.img_resolution}x{G.img_resolution}: fix data.resolution/channels")
        if self.progressive is not None:
            schedule_minibatch(self.progressive, G, self.D, dm, self.trainer.world_size)
        check_setup(self.batch_gpu, G, self.D, dm, self.progressive, self.trainer.world_size)

    # ----------------------------------------------------------------- phases
    def _latents(self, n: int, real_c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.draws.normal([n, self.G.z_dim])
        c = real_c[torch.randperm(real_c.shape[0], device=real_c.device)[:n]] if self.G.c_dim else real_c[:n]
        return z, c

    def _styles(self, z: torch.Tensor, c: torch.Tensor, update_emas: bool = False) -> torch.Tensor:
        ws = self.G.mapping(z, c, update_emas=update_emas)
        ws = mix_styles(self.G, ws, z, c, self.loss_cfg.style_mixing_prob, self.draws)
        if torch.is_grad_enabled() and not ws.requires_grad:  # frozen mapping: path length still needs d img / d ws
            ws.requires_grad_(True)
        return ws

    def _run_G(self, z: torch.Tensor, c: torch.Tensor, update_emas: bool = False, main: bool = False):
        """``main``: a main phase (first-order gradients only), whose synthesis model.compile may compile."""
        ws = self._styles(z, c, update_emas)
        return self.compiler("synthesis", self.G.synthesis, "main" if main else None)(ws), ws

    def _run_D(self, img: torch.Tensor, c: torch.Tensor, main: bool = False) -> torch.Tensor:
        D = self.compiler("D", self.D, "main" if main else None)
        return D(img if self.augment is None else self.augment(img), c)

    def _r1_pass(self, real: torch.Tensor, real_c: torch.Tensor, with_logits: bool):
        """D's logits on the reals (``with_logits``: R1 shares the main pass) and their R1 penalty per sample, from
        one pass; under model.compile's ``reg`` phase one compiled function (no augmentation)."""
        if self.compiler.compiles("reg") and self.augment is None:
            return self.compiler("R1", r1_pass, "reg")(self.D, real.detach(), real_c, with_logits)
        real_in = real.detach().requires_grad_(True)
        logits = self._run_D(real_in, real_c)
        return logits, r1_penalty(real_in, logits)

    def _path_lengths(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Eq. 4's per-sample ``||J_w^T y||`` of fresh fakes; under model.compile's ``reg`` phase synthesis and the
        double backward run as one compiled function (y is then drawn before the synthesis noise)."""
        if self.compiler.compiles("reg"):
            ws, G = self._styles(z, c), self.G
            normal = self.draws.normal([ws.shape[0], G.img_channels, G.img_resolution, G.img_resolution], ws.dtype)
            return self.compiler("path_length", path_length_pass, "reg")(G.synthesis, ws, normal)
        img, ws = self._run_G(z, c)
        img = at_least_float32(img)
        return path_lengths(img, ws, path_length_noise(img, self.draws.normal(img.shape, img.dtype)))

    def _fp32(self):
        return torch.autocast(device_type=self.device.type, enabled=False)

    def _rounds(self, n: int) -> int:
        return count_rounds(n, self.batch_gpu, self.D, self.progressive, self.cur_nimg)

    def _backward(self, done: RoundLosses, losses: dict[str, torch.Tensor], sync: bool = True) -> None:
        """One round's losses in one backward (main and reg may share a forward graph); gradients add up. ``sync``:
        the last backward before a ``_step``; the others keep their gradients local under DDP (rounds.py)."""
        with gradient_sync(self._trainer, sync):
            self.manual_backward(sum(losses.values()))
        done.add(losses)

    def _step(self, opt, net: torch.nn.Module, done: RoundLosses, phase: str) -> torch.Tensor:
        """Step on the rounds' summed gradients unless a loss or gradient is non-finite (all ranks agree): ``skip``
        drops the step on the device without a host sync (guard.py), ``stop`` raises. Returns the flag (1: skipped)."""
        found = nonfinite_flag(done.flat(), [p.grad for p in net.parameters() if p.grad is not None], _world_size())
        scaler = getattr(self.trainer.precision_plugin, "scaler", None) if self._trainer is not None else None
        if self.nan_policy == "stop" and found.item():
            raise FloatingPointError(f"non-finite loss or gradient in phase {phase} at iteration {self.iteration} "
                                     f"(kimg {self.cur_nimg / 1000:.1f}, losses {done.summary()}); set "
                                     "model.nan_policy=skip to skip such steps")
        stepped = guarded_step(opt, found, on_device=scaler is None)
        if stepped is None:
            self._skips_on_device[phase] = self._skips_on_device.get(phase, 0) + found
        elif not stepped:
            self.nan_skips[phase] += 1
        opt.zero_grad(set_to_none=True)
        done.values.clear()
        return found

    def skip_counts(self) -> Counter[str]:
        """Steps skipped per phase (reads the device counters: call at logging or checkpoint time only)."""
        counts = Counter(self.nan_skips)
        for phase, n in self._skips_on_device.items():
            counts[phase] += int(n.item()) if isinstance(n, torch.Tensor) else int(n)
        return +counts

    def _train_only(self, net: torch.nn.Module | None) -> None:
        """Only the network being trained has ``requires_grad`` (None: neither); frozen parameters never."""
        self.G.requires_grad_(net is self.G)
        self.D.requires_grad_(net is self.D)
        for p in self.frozen_params:
            p.requires_grad_(False)

    def generator_phase(self, opt, real_c: torch.Tensor, N: int, logs: dict[str, torch.Tensor]) -> None:
        """G (Appendix B): the non-saturating logistic (or WGAN) loss on N fresh fakes ("Gmain"); when path length
        is due, its penalty (Eq. 4) on N / pl_batch_shrink fakes in float32, weighted pl_weight x interval ("Greg"),
        which also updates the running mean a (after every round). Not lazy: both in one step."""
        reg, cfg = self.loss_cfg.path_length, self.loss_cfg
        self._train_only(self.G)
        k, done, seen = self._rounds(N), RoundLosses(), RoundLosses()
        g_loss = wgan_generator_loss if cfg.gan == "wgan_gp" else generator_loss
        due = reg.due(self.iteration)
        for i, (z, c) in enumerate(split(k, *self._latents(N, real_c))):
            img, _ = self._run_G(z, c, main=True)
            sync = i == k - 1 and not (due and reg.with_main)  # with_main: Greg's last round syncs both
            self._backward(done, {"Gmain": g_loss(self._run_D(img, c, main=True))}, sync)
        logs["loss/G"] = done.mean("Gmain")
        if not (due and reg.with_main):
            self._step(opt, self.G, done, "Gmain")
        if not due:
            return
        mean_before, n = self.pl_mean.clone(), max(N // k // cfg.pl_batch_shrink, 1)
        for i, (z, c) in enumerate(split(k, *self._latents(n * k, real_c))):
            with self._fp32():
                lengths = self._path_lengths(z, c)
                penalty, new_mean = path_length_penalty(lengths, self.pl_mean, cfg.pl_decay, global_mean(lengths))
                loss = penalty.mean() * (reg.weight * reg.interval)
            self._backward(done, {"Greg": loss}, sync=i == k - 1)
            self.pl_mean.copy_(new_mean)
            seen.add({"pl_penalty": penalty.mean()})
        skipped = self._step(opt, self.G, done, "Greg")
        self.pl_mean.copy_(torch.where(skipped > 0, mean_before, self.pl_mean))  # kept when the step was skipped
        logs["loss/pl_penalty"] = seen.mean("pl_penalty")
        logs["pl_mean"] = self.pl_mean.clone()

    def discriminator_phase(self, opt, real: torch.Tensor, real_c: torch.Tensor,
                            logs: dict[str, torch.Tensor]) -> None:
        """D (Appendix B): the logistic (or WGAN-GP) loss on N fakes (no gradient into G; G's mapping updates w_avg
        here, as the official Dmain) and the reals ("Dmain"); when R1 is due, gamma / 2 * |grad D(x)|^2 on the reals
        in float32, weighted x interval ("Dreg"). Not lazy: one real pass with input gradients serves both, one
        step."""
        reg = self.loss_cfg.r1
        self._train_only(self.D)
        k, done, seen = self._rounds(real.shape[0]), RoundLosses(), RoundLosses()
        due = reg.due(self.iteration)
        with_main = due and reg.with_main  # R1 on the main real pass
        real_logits = []
        for i, (x, x_c, z, c) in enumerate(split(k, real, real_c, *self._latents(real.shape[0], real_c))):
            with torch.no_grad():
                fake, _ = self._run_G(z, c, update_emas=True, main=True)
            losses, logits = self._discriminator_round(x, x_c, fake, c, with_main, seen)
            self._backward(done, losses, sync=i == k - 1)  # a step follows: Dmain's, or with_main Dreg's
            real_logits.append(logits.detach())
        logs["loss/D"] = done.mean("Dmain")
        logs["scores/real"], logs["scores/fake"] = torch.cat(real_logits).mean(), seen.mean("scores/fake")
        if hasattr(self.augment, "observe"):  # ADA's p controller (training/ada.py) reads sign(D(real))
            logs.update(self.augment.observe(torch.cat(real_logits), self.iteration))
        if not with_main:
            self._step(opt, self.D, done, "Dmain")
        if due and not with_main:
            for i, (x, x_c) in enumerate(split(k, real, real_c)):
                with self._fp32():
                    _, penalty = self._r1_pass(x, x_c, with_logits=False)
                    loss = r1_loss(penalty, reg.weight) * reg.interval
                self._backward(done, {"Dreg": loss}, sync=i == k - 1)
                seen.add({"r1_penalty": penalty.mean()})
        logs.update({f"loss/{k}": seen.mean(k) for k in ("r1_penalty", "gp") if k in seen.values})
        if due:
            self._step(opt, self.D, done, "Dreg")

    def _discriminator_round(self, real: torch.Tensor, real_c: torch.Tensor, fake: torch.Tensor, c: torch.Tensor,
                             with_main: bool, seen: RoundLosses) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """D main's losses on one round (with R1 when ``with_main``) and D's logits on its reals."""
        cfg = self.loss_cfg
        if with_main:
            with self._fp32():
                real_logits, penalty = self._r1_pass(real, real_c, with_logits=True)
        else:
            real_logits = self._run_D(real.detach(), real_c, main=True)
        fake_logits = self._run_D(fake, c, main=True)
        if cfg.gan == "wgan_gp":  # WGAN-GP's penalty at real/fake interpolates, with the reals' labels (D_wgan_gp)
            with self._fp32():
                mixed = interpolates(real, fake, self.draws.uniform([real.shape[0], 1, 1, 1]))
                gp = gradient_penalty(mixed, self._run_D(mixed, real_c), cfg.wgan_target).mean()
            seen.add({"gp": gp})
            main = wgan_discriminator_loss(real_logits, fake_logits, cfg.wgan_epsilon)
            losses = {"Dmain": main + gp * cfg.wgan_lambda}
        else:
            losses = {"Dmain": discriminator_loss(real_logits, fake_logits)}
        if with_main:
            with self._fp32():
                losses["Dreg"] = r1_loss(penalty, cfg.r1.weight) * cfg.r1.interval
            seen.add({"r1_penalty": penalty.mean()})
        seen.add({"scores/fake": fake_logits.mean()})
        return losses, real_logits

    def training_step(self, batch, batch_idx: int) -> None:
        """One minibatch in the official order: G phase, D phase, G EMA; progress counted in images shown."""
        real, real_c = batch
        opt_g, opt_d = self.optimizers()
        real, logs = apply_stage(self, real) if self.progressive is not None else (real, {})
        if self._tick is None:
            self._tick = (time.perf_counter(), self.cur_nimg)
        self.generator_phase(opt_g, real_c, real.shape[0], logs)
        self.discriminator_phase(opt_d, real, real_c, logs)
        self._train_only(None)
        batch_total = real.shape[0] * _world_size()  # the global minibatch (all devices, all rounds)
        logs["progress/minibatch"], logs["progress/rounds"] = torch.tensor([batch_total, self._rounds(len(real))])
        ema_kimg = self.ema_kimg if self.ema_kimg is not None else batch_total * 10 / 32
        update_ema(self.G_ema, self.G, ema_beta(batch_total, self.cur_nimg, ema_kimg, self.ema_rampup))
        self.prev_nimg, self.cur_nimg = self.cur_nimg, self.cur_nimg + batch_total
        self.iteration += 1
        self._log_progress(logs)
        if self.cur_nimg >= self.total_kimg * 1000:
            self.trainer.should_stop = True

    def _log_progress(self, logs: dict[str, torch.Tensor]) -> None:
        t0, n0 = self._tick
        dt, dn = time.perf_counter() - t0, self.cur_nimg - n0
        logs["kimg"] = torch.tensor(self.cur_nimg / 1000)
        if dn > 0:
            logs["timing/sec_per_kimg"] = torch.tensor(dt / dn * 1000)
            logs["timing/img_per_sec"] = torch.tensor(dn / max(dt, 1e-9))
        for phase in set(self.nan_skips) | set(self._skips_on_device):  # device tensors: no sync here
            logs[f"nan_skips/{phase}"] = self._skips_on_device.get(phase, 0) + self.nan_skips[phase]
        prog = {"kimg", "loss/G", "loss/D"}
        for k, v in logs.items():
            self.log(k, v.float(), prog_bar=k in prog, on_step=True, on_epoch=False, batch_size=1)
        if dt > 30:
            self._tick = (time.perf_counter(), self.cur_nimg)

    # ----------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        for name in ("G", "D", "G_ema"):
            bad = [k for k, v in getattr(self, name).state_dict().items() if not torch.isfinite(v).all()]
            if bad:
                raise FloatingPointError(f"refusing to write a checkpoint: non-finite {name} weights {bad[:5]}")
        checkpoint["stylegan"] = {
            "G_kwargs": self.G.init_kwargs,
            "D_kwargs": self.D.init_kwargs,
            "loss": asdict(self.loss_cfg),
            "cur_nimg": self.cur_nimg,
            "prev_nimg": self.prev_nimg,
            "iteration": self.iteration,
            "nan_skips": dict(self.skip_counts()),
            "rng": capture_rng(),  # this rank's (rank 0's in the file); every rank's below
            "rng_per_rank": gather_objects(capture_rng()),
            "draws": self.draws.state(),
        }
        if self.progressive is not None:  # the level of detail G_ema last ran at: evaluate and the tools use it
            checkpoint["stylegan"]["lod"] = self.G_ema.synthesis.lod
        if getattr(self, "data_config", None) is not None:  # the run's data settings (train.py): evaluate's default
            checkpoint["stylegan"]["data"] = self.data_config

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint["stylegan"]
        self.cur_nimg, self.iteration = int(state["cur_nimg"]), int(state["iteration"])
        self.prev_nimg = None if state.get("prev_nimg") is None else int(state["prev_nimg"])
        self.nan_skips, self._skips_on_device = Counter(state.get("nan_skips", {})), {}
        self._rng_to_restore = state.get("rng_per_rank") or ([state["rng"]] if state.get("rng") else None)
        self._draws_to_restore = state.get("draws")

    def on_train_start(self) -> None:
        """Fresh: split the seeded RNG stream per rank. Resumed: each rank restores its own RNG states (synthesis
        noise, minibatch draws), so N processes continue exactly; on another process count the streams are re-split
        from rank 0's state (the run continues, not bit-exactly)."""
        world, states = _world_size(), self._rng_to_restore
        own = states is not None and len(states) == world
        if states is not None:
            restore_rng(states[self.global_rank] if own else states[0])
            if not own:
                warnings.warn(f"checkpoint written by {len(states)} process(es), resumed on {world}: random streams "
                              "are re-split from rank 0's, so the run does not continue bit-exactly", stacklevel=1)
            self._rng_to_restore = None
        self.draws.start(self.device, self.global_rank, world, self._draws_to_restore)
        self._draws_to_restore = None
        if not own:
            reseed_for_rank(self.global_rank, world)
