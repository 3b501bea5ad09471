"""``torch.compile`` of the phases that need first-order gradients only (``model.compile``).

G main (synthesis, then D on the fakes) and D main (synthesis without gradients, D on fakes and reals) call
compiled graphs of ``G.synthesis`` and ``D``. The regularizers differentiate through their own gradients
(``create_graph``: path length, Eq. 4; R1, Appendix B; WGAN-GP), which AOTAutograd's compiled
backward does not support, so they call the same modules eagerly; with an interval of 1 ("Gboth"/"Dboth") the main
loss still runs compiled and shares the one backward. The compiled callables wrap the modules and share their
parameters: optimizers, EMA, checkpoints and DDP's gradient hooks see the same tensors. Not compiled: the mapping
network and style mixing (small, with host-side draws), augmentation, and progressive growing (its level of detail
changes every step and would recompile each time).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

from .config import ConfigError

MODES = ("default", "max-autotune-no-cudagraphs")
# CUDA graphs replay into the same output buffers, but D runs twice in a D step (reals, then fakes) and both
# outputs stay alive until the loss: the second replay would overwrite the first (cudagraph trees' documented limit)
CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")
KEYS = ("backend", "mode", "fullgraph", "dynamic", "options")
log = logging.getLogger(__name__)


def _backends() -> list[str]:
    import torch._dynamo

    return sorted(set(torch._dynamo.list_backends(exclude_tags=())) | {"inductor"})


def compile_options(value) -> dict | None:
    """``model.compile`` as ``torch.compile`` keyword arguments: null / false: off (None); true: ``{}`` (inductor,
    default mode); a string: that mode; a mapping with keys among ``KEYS``. Bad values raise ConfigError naming the
    key and the choices."""
    if value is None or value is False:
        return None
    if value is True:
        return {}
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
    backend = options.get("backend", "inductor")
    if not callable(backend) and backend not in _backends():
        raise ConfigError(f"model.compile.backend={backend!r} is not a torch.compile backend here: {_backends()}")
    return options


class PhaseCompiler:
    """Hands out the compiled callable of a module (built at its first use, on the module's device) or the module
    itself. Held as a plain attribute: the compiled wrappers are not submodules, so state_dict keys, checkpoints and
    ``parameters()`` are those of the eager run."""

    def __init__(self, options: dict | None) -> None:
        self.options = options
        self._compiled: dict[str, Callable] = {}

    def __call__(self, name: str, module: torch.nn.Module, compiled: bool = True) -> Callable:
        if self.options is None or not compiled:
            return module
        fn = self._compiled.get(name)
        if fn is None:
            if not self._compiled:
                log.info("model.compile %s: G's synthesis and D compile at their first calls (once per graph: "
                         "grad on/off, precision; minutes on a CPU)", self.options or "(inductor, default mode)")
            fn = self._compiled[name] = torch.compile(module, **self.options)
        return fn

    def __getstate__(self) -> dict:  # pickled or deep-copied modules compile afresh
        return {"options": self.options, "_compiled": {}}
