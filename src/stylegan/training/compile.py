"""``torch.compile`` of the training phases (``model.compile``).

``phases: [main, reg]`` (the default: both). ``main``: G main (synthesis, then D on the fakes) and D main (synthesis
without gradients, D on fakes and reals) call compiled graphs of ``G.synthesis`` and ``D``. ``reg``: the
regularizers differentiate through their own gradients (path length, Eq. 4; R1, Appendix B), which AOTAutograd
refuses through a compiled graph, so they run as one function each with the inner gradient taken by
``torch.func.vjp`` (``losses.r1_penalty_of``, ``losses.path_lengths_of``): dynamo captures the pass and the double
backward whole. With ``reg`` off they run eagerly, as without ``model.compile``. The compiled callables share the
modules' parameters: optimizers, EMA, checkpoints and DDP's gradient hooks see the same tensors. Not compiled: the
mapping network and style mixing (small, with host-side draws), augmentation (R1 then stays eager too), WGAN-GP's
penalty, and progressive growing (its level of detail changes every step and would recompile each time).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

from ..losses import path_length_noise, path_lengths_of, r1_penalty_of
from .config import ConfigError

MODES = ("default", "max-autotune-no-cudagraphs")
# CUDA graphs replay into the same output buffers, but D runs twice in a D step (reals, then fakes) and both
# outputs stay alive until the loss: the second replay would overwrite the first (cudagraph trees' documented limit)
CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")
KEYS = ("backend", "mode", "fullgraph", "dynamic", "options", "phases")
PHASES = ("main", "reg")
log = logging.getLogger(__name__)


def _backends() -> list[str]:
    import torch._dynamo

    return sorted(set(torch._dynamo.list_backends(exclude_tags=())) | {"inductor"})


def compile_options(value) -> dict | None:
    """``model.compile`` as ``torch.compile`` keyword arguments plus ``phases``: null / false: off (None); true:
    inductor's default mode, both phases; a string: that mode; a mapping with keys among ``KEYS``. Bad values raise
    ConfigError naming the key and the choices."""
    if value is None or value is False:
        return None
    if value is True:
        return {"phases": PHASES}
    if isinstance(value, str):
        value = {"mode": value}
    if not hasattr(value, "items"):
        raise ConfigError(f"model.compile={value!r} must be null, true, a mode {MODES} or a mapping with keys {KEYS}")
    options = dict(value.items())
    unknown = sorted(set(options) - set(KEYS))
    if unknown:
        raise ConfigError(f"model.compile.{unknown[0]} is not a torch.compile option here; use {KEYS}")
    if options.get("mode") in CUDA_GRAPH_MODES:
        raise ConfigError(f"model.compile.mode={options['mode']!r} uses CUDA graphs, whose replays overwrite the "
                          f"outputs of D's first call in a D step (reals, then fakes): use one of {MODES}")
    if options.get("mode") is not None and options["mode"] not in MODES:
        raise ConfigError(f"model.compile.mode={options['mode']!r} is not one of {MODES}")
    if options.get("mode") is not None and options.get("options") is not None:
        raise ConfigError("model.compile: give mode or options, not both (torch.compile accepts one)")
    phases = options.get("phases", PHASES)
    phases = (phases,) if isinstance(phases, str) else tuple(phases or ())
    if not phases or set(phases) - set(PHASES):
        raise ConfigError(f"model.compile.phases={list(phases)} must be a non-empty list of {list(PHASES)}")
    options["phases"] = phases
    backend = options.get("backend", "inductor")
    if not callable(backend) and backend not in _backends():
        raise ConfigError(f"model.compile.backend={backend!r} is not a torch.compile backend here: {_backends()}")
    return options


def r1_pass(D: torch.nn.Module, real: torch.Tensor, real_c: torch.Tensor, with_logits: bool):
    """``(D(real) if with_logits else None, R1 penalty per sample)`` as one function for ``torch.compile``. Unused
    logits are not returned: as a graph output they would give D's output bias a zero gradient (Adam then counts a
    step for it) where the eager penalty leaves it None, as the official loop does."""
    logits, penalty = r1_penalty_of(lambda x: D(x, real_c), real)
    return (logits if with_logits else None), penalty


def path_length_pass(synthesis: torch.nn.Module, ws: torch.Tensor, normal: torch.Tensor) -> torch.Tensor:
    """Eq. 4's lengths ``||J_w^T y||`` of ``synthesis(ws)`` as one function for ``torch.compile`` (``normal``: the
    N(0, I) draw that y scales)."""
    return path_lengths_of(synthesis, ws, path_length_noise(normal, normal))


class PhaseCompiler:
    """Hands out the compiled callable of a module or function (built at its first use, on the module's device)
    when its phase is compiled, else the callable itself. Held as a plain attribute: the compiled wrappers are not
    submodules, so state_dict keys, checkpoints and ``parameters()`` are those of the eager run."""

    def __init__(self, options: dict | None) -> None:
        self.options = options
        self.phases: tuple[str, ...] = () if options is None else options["phases"]
        self._kwargs = {k: v for k, v in (options or {}).items() if k != "phases"}
        self._compiled: dict[str, Callable] = {}

    def compiles(self, phase: str) -> bool:
        return phase in self.phases

    def __call__(self, name: str, fn: Callable, phase: str | None) -> Callable:
        """``fn`` compiled (once, kept under ``name``) when ``phase`` is compiled, else ``fn``."""
        if phase not in self.phases:
            return fn
        compiled = self._compiled.get(name)
        if compiled is None:
            if not self._compiled:
                log.info("model.compile %s: the compiled phases build their graphs at their first calls (once per "
                         "graph: grad on/off, precision; minutes on a CPU)", self.options)
            compiled = self._compiled[name] = torch.compile(fn, **self._kwargs)
        return compiled

    def __getstate__(self) -> dict:  # pickled or deep-copied modules compile afresh
        return {**self.__dict__, "_compiled": {}}
