"""The preflight: the composed Hydra config checked as a whole before anything is instantiated or written.

``stylegan-train`` and ``stylegan-evaluate`` run :func:`problems` on their config first (``cli.preflight``), so a
mistake that torch, Lightning or the end of a run would otherwise report (a traceback, a wrapped Hydra error, a
sweep that trains its first trial to the end) is one line naming the key, the allowed values and a fix:

* a mandatory value (``???``) still missing (``ckpt=PATH``, ``data.source=~/images.zip``);
* values torch or Lightning refuse later: Adam's learning rates (> 0), betas (in [0, 1)) and eps (> 0), the seed
  (Lightning's [0, 2**32 - 1]), ``trainer.precision`` (Lightning's list), ``trainer.accelerator`` and
  ``trainer.devices`` against the devices this machine has, ``trainer.strategy`` (Lightning's registry) against the
  device count, ``trainer.num_nodes``;
* ``optimized_metric`` (what a sweeper minimises; also returned by a single run) that the configured metrics
  (``callbacks.metrics.metrics``) cannot log.

In a sweep, problems with a value the sweep varies belong to the jobs that have it (each fails alone, the sweep
goes on); every other problem ends the sweep before its first job trains (:func:`swept_keys`). Only the config is
read: no network, data set, checkpoint or extractor is built here. Checks that need the networks (minibatch-std
groups, a resumed checkpoint's architecture) are in :mod:`stylegan.training.preflight`.
"""

from __future__ import annotations

import math
import sys
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

__all__ = ["ConfigError", "Problem", "check", "problems", "swept_keys"]


class ConfigError(ValueError):
    """A configuration that cannot run; reported as one line (``<prog>: error: ...``, exit code 2)."""


@dataclass(frozen=True)
class Problem:
    """``message`` names ``keys[0]``; ``keys``: every config key the verdict depends on (for sweeps)."""

    keys: tuple[str, ...]
    message: str


_ABSENT = object()
EXAMPLES = {  # what to give for a mandatory value, by key
    "ckpt": "ckpt=PATH (a stylegan-train checkpoint, official-format weights or an NVlabs .pkl)",
    "data.source": "data.source=~/images.zip (a folder of images, a zip or a stylegan-prepare output)",
}


def _get(cfg: DictConfig, key: str) -> Any:
    """The value at ``key`` (resolved), or ``_ABSENT`` when it is not there, missing or does not resolve here."""
    try:
        value = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=True)
        return OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value
    except Exception:  # missing (reported by missing_values) or an interpolation that does not resolve here
        return _ABSENT


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# ---------------------------------------------------------------------------------------------- mandatory values
def _missing(node: Any, prefix: str) -> Iterator[str]:
    """Keys whose value is ``???`` (interpolations are not followed: their targets are visited themselves)."""
    if isinstance(node, DictConfig):
        keys: Any = node.keys() if not node._is_missing() else []
    elif isinstance(node, ListConfig):
        keys = range(len(node)) if not node._is_missing() else []
    else:
        return
    for key in keys:
        child = node._get_node(key)
        name = f"{prefix}{key}" if isinstance(key, str) else f"{prefix[:-1]}[{key}]"
        if child is not None and child._is_missing() and not child._is_interpolation():
            yield name
        elif isinstance(child, (DictConfig, ListConfig)):
            yield from _missing(child, name + ".")


def missing_values(cfg: DictConfig) -> list[Problem]:
    keys = [k for k in _missing(cfg, "") if k != "hydra" and not k.startswith("hydra.")]
    return [Problem((key,), f"{key} has no value (??? in the config): give it on the command line, e.g. "
                            f"{EXAMPLES.get(key, key + '=VALUE')}") for key in keys]


# ------------------------------------------------------------------------------------------- optimizer and seed
def optimizer_values(cfg: DictConfig) -> list[Problem]:
    """Adam's arguments (``torch.optim.Adam`` raises on them inside ``trainer.fit``); the paper's in brackets."""
    out = []
    rates = [(f"model.optim.{k}", _get(cfg, f"model.optim.{k}")) for k in ("g_lr", "d_lr")]
    for k in ("g_lr", "d_lr"):  # progressive growing: {resolution: rate}
        schedule = _get(cfg, f"model.progressive.{k}")
        if isinstance(schedule, dict):
            rates += [(f"model.progressive.{k}.{res}", lr) for res, lr in schedule.items()]
    for key, lr in rates:
        if lr is not _ABSENT and not (_number(lr) and lr > 0):
            out.append(Problem((key,), f"{key}={lr} must be a finite number > 0 (Adam's learning rate; the paper: "
                                       "0.002)"))
    betas = _get(cfg, "model.optim.betas")
    if betas is not _ABSENT and not (isinstance(betas, list) and len(betas) == 2
                                     and all(_number(b) and 0 <= b < 1 for b in betas)):
        out.append(Problem(("model.optim.betas",), f"model.optim.betas={betas} must be two numbers in [0, 1) "
                                                   "(Adam's beta1, beta2; the paper: [0,0.99])"))
    eps = _get(cfg, "model.optim.eps")
    if eps is not _ABSENT and not (_number(eps) and eps > 0):
        out.append(Problem(("model.optim.eps",), f"model.optim.eps={eps} must be a finite number > 0 (Adam's "
                                                 "epsilon; the paper: 1e-8)"))
    return out


def training_values(cfg: DictConfig) -> list[Problem]:
    out = []
    kimg = _get(cfg, "total_kimg")
    if kimg is not _ABSENT and not (_number(kimg) and kimg > 0):
        out.append(Problem(("total_kimg",), f"total_kimg={kimg} must be > 0 (thousands of real images to train "
                                            "for)"))
    seed = _get(cfg, "seed")
    if seed not in (_ABSENT, None) and not (isinstance(seed, int) and not isinstance(seed, bool)
                                            and 0 <= seed < 2**32):
        out.append(Problem(("seed",), f"seed={seed} must be an integer in [0, 4294967295] (Lightning's "
                                      "seed_everything) or null"))
    return out


# ------------------------------------------------------------------------------------------ trainer and devices
def _flatten_literal(tp: Any) -> list[Any]:
    args = typing.get_args(tp)
    return [v for a in args for v in _flatten_literal(a)] if args else [tp]


def _precisions() -> list[str]:
    from lightning.fabric.connector import _PRECISION_INPUT

    return list(dict.fromkeys(str(v) for v in _flatten_literal(_PRECISION_INPUT)))


def _strategies() -> list[str]:
    from lightning.pytorch.strategies import StrategyRegistry

    return ["auto", *StrategyRegistry.available_strategies()]


def _device_request(devices: Any) -> int | list[int] | str | None:
    """``trainer.devices`` as Lightning reads it: "auto", a count (-1: all), or a list of indices; None: invalid."""
    if devices == "auto":
        return "auto"
    if isinstance(devices, str):
        parts = [p.strip() for p in devices.split(",") if p.strip()]
        if len(parts) == 1 and parts[0].lstrip("-").isdigit():
            return int(parts[0])
        return [int(p) for p in parts] if parts and all(p.isdigit() for p in parts) else None
    if isinstance(devices, bool):
        return None
    if isinstance(devices, int):
        return devices
    if isinstance(devices, list) and devices and all(isinstance(d, int) and not isinstance(d, bool) for d in devices):
        return devices
    return None


def _cuda_problem(accelerator: str) -> str | None:
    import torch

    mps = getattr(torch.backends, "mps", None)
    has_mps = accelerator == "gpu" and mps is not None and mps.is_available()  # Lightning's "gpu" is MPS on a Mac
    if torch.cuda.is_available() or has_mps:
        return None
    return (f"trainer.accelerator={accelerator} but no CUDA device is available: use trainer=cpu "
            "(trainer=ddp_sim for DDP on CPU processes)")


def trainer_values(cfg: DictConfig) -> list[Problem]:
    """What ``lightning.Trainer(...)`` (or its first ``fit`` step) refuses, and devices this machine lacks."""
    import torch

    out = []
    precision = _get(cfg, "trainer.precision")
    if precision is not _ABSENT and str(precision) not in _precisions():
        out.append(Problem(("trainer.precision",), f"trainer.precision={precision} is not a Lightning precision: "
                                                   f"one of {', '.join(_precisions())}"))
    nodes = _get(cfg, "trainer.num_nodes")
    if nodes is not _ABSENT and not (isinstance(nodes, int) and not isinstance(nodes, bool) and nodes >= 1):
        out.append(Problem(("trainer.num_nodes",), f"trainer.num_nodes={nodes} must be an integer >= 1"))
    accelerator = _get(cfg, "trainer.accelerator")
    devices = _get(cfg, "trainer.devices")
    request = _device_request(devices) if devices is not _ABSENT else "auto"
    count: int | None = None  # devices this run would use
    if accelerator in ("gpu", "cuda"):
        line = _cuda_problem(accelerator)
        if line:
            return [*out, Problem(("trainer.accelerator", "trainer.devices"), line)]
        have = torch.cuda.device_count() if torch.cuda.is_available() else 1
        if request == "auto" or request == -1:
            count = have
        elif isinstance(request, int) and 1 <= request <= have:
            count = request
        elif isinstance(request, list) and len(set(request)) == len(request) and all(0 <= d < have for d in request):
            count = len(request)
        else:
            out.append(Problem(("trainer.devices", "trainer.accelerator"),
                               f"trainer.devices={devices} but this machine has {have} CUDA device(s): use a count "
                               f"in 1..{have}, a list of distinct indices in [0, {have - 1}], -1 (all) or auto"))
    elif accelerator == "cpu":
        if request == "auto":
            count = 1
        elif isinstance(request, int) and request >= 1:
            count = request
        else:
            out.append(Problem(("trainer.devices", "trainer.accelerator"),
                               f"trainer.devices={devices} with trainer.accelerator=cpu must be a number of "
                               "processes >= 1 (or auto)"))
    strategy = _get(cfg, "trainer.strategy")
    if isinstance(strategy, str):
        if strategy not in _strategies():
            out.append(Problem(("trainer.strategy",), f"trainer.strategy={strategy} is not a Lightning strategy: "
                                                      f"one of {', '.join(_strategies())}"))
        elif strategy.startswith("single_") and count is not None and count > 1:
            out.append(Problem(("trainer.strategy", "trainer.devices", "trainer.accelerator"),
                               f"trainer.strategy={strategy} runs on one device but trainer.devices={devices} "
                               f"gives {count}: use trainer.devices=1, or a DDP strategy (trainer=ddp / ddp_sim)"))
    return out


def device_value(cfg: DictConfig) -> list[Problem]:
    """``stylegan-evaluate device=...``."""
    device = _get(cfg, "device")
    import torch

    if isinstance(device, str) and device.startswith("cuda") and not torch.cuda.is_available():
        return [Problem(("device",), f"device={device} but no CUDA device is available: use device=cpu (or auto)")]
    return []


# ---------------------------------------------------------------------------------------------------- objective
def _module_name(extractor: Any) -> str | None:
    """The ``name`` class attribute of an injected module's ``_target_`` (imported, not built); None: unknown."""
    from hydra.utils import get_class

    try:
        name = getattr(get_class(extractor["_target_"]), "name", None)
    except Exception:  # not importable here: instantiate reports it later, as one line
        return None
    return name if isinstance(name, str) else None


def _loggable(spec: Any, extractor: Any, objective: str) -> bool:
    """Whether metric ``spec`` logs ``metrics/<objective>``: under its official name when the extractor is a built-in
    (a name such as 'inception'), else as fd/kd... ``@<the module's name>`` (:meth:`MetricSpec.keys`; a name only
    an instance knows: any)."""
    if isinstance(extractor, str):
        return objective in spec.keys(extractor, True)
    network = (isinstance(extractor, dict) and _module_name(extractor)) or objective.partition("@")[2]
    return bool(network) and objective in spec.keys(network, False)


def objective(cfg: DictConfig) -> list[Problem]:
    """``optimized_metric=metrics/<name>`` must be a value the metrics callback logs (``stylegan.metrics``)."""
    name = _get(cfg, "optimized_metric")
    if not isinstance(name, str) or not name.startswith("metrics/"):
        return []  # unset, or a value the LightningModule logs (loss/G, timing/...): known only once it runs
    from .metrics.extractors import MetricSetupError
    from .metrics.names import parse_metrics
    from .metrics.runner import FIELD_OF_KIND

    keys = ("optimized_metric", "callbacks.metrics")
    names = _get(cfg, "callbacks.metrics.metrics")
    if names in (_ABSENT, None, []):
        return [Problem(keys, f"optimized_metric={name} but no metric is computed during training "
                              "(callbacks.metrics is null: metrics=none); add e.g. metrics=fid "
                              f"callbacks.metrics.metrics=[{name.removeprefix('metrics/').split('@')[0]}]")]
    try:
        specs = parse_metrics(names)
    except MetricSetupError as e:
        return [Problem(("callbacks.metrics.metrics",), f"callbacks.metrics.metrics: {e}")]
    fields = {"features": "feature_extractor", "pr": "pr_extractor", "distance": "ppl_distance"}
    defaults = {"feature_extractor": "inception", "pr_extractor": "vgg16", "ppl_distance": "lpips"}
    target = name.removeprefix("metrics/")
    for spec in specs:
        field = fields[FIELD_OF_KIND[spec.kind]]
        extractor = _get(cfg, f"callbacks.metrics.{field}")
        if _loggable(spec, defaults[field] if extractor is _ABSENT else extractor, target):
            return []
    return [Problem(keys, f"optimized_metric={name} is not logged by the configured metrics "
                          f"(callbacks.metrics.metrics={[s.name for s in specs]}; a non-standard extractor logs "
                          "fd/kd<N>...@<its name>): set optimized_metric to one of those as metrics/<name>, or add "
                          "the metric to callbacks.metrics.metrics")]


# ------------------------------------------------------------------------------------------------------ running
def problems(cfg: DictConfig) -> list[Problem]:
    """Every problem of ``cfg`` (a ``train`` or ``evaluate`` config; each check runs where its keys exist)."""
    found = missing_values(cfg)
    if "trainer" in cfg:
        found += training_values(cfg) + optimizer_values(cfg) + trainer_values(cfg) + objective(cfg)
    if "device" in cfg:
        found += device_value(cfg)
    return found


def _varies(problem: Problem, swept: frozenset[str]) -> bool:
    return any(k == s or k.startswith(s + ".") or s.startswith(k + ".") for k in problem.keys for s in swept)


def check(cfg: DictConfig, swept: frozenset[str] = frozenset()) -> None:
    """Raise :class:`ConfigError` with the first problem of ``cfg`` that is not about a key in ``swept``."""
    for problem in problems(cfg):
        if not _varies(problem, swept):
            raise ConfigError(problem.message)


def _package(key: str, conf: Path) -> str | None:
    """The config key a swept ``key`` changes: itself, or for a config group (``model/generator``, ``metrics``)
    its package (the ``# @package`` of its options, else the group path); None: the whole config (``_global_``)."""
    folder = conf / key
    if not folder.is_dir():
        return key
    packages = set()
    for option in folder.glob("*.yaml"):
        header = [line for line in option.read_text().splitlines()[:3] if line.startswith("# @package")]
        packages.add(header[0].split()[-1] if header else "_group_")
    packages = {key.replace("/", ".") if p == "_group_" else p for p in packages}
    return None if "_global_" in packages or len(packages) != 1 else packages.pop()


def swept_overrides(hc, argv: list[str] | None = None) -> tuple[set[str], bool]:
    """(keys or groups the sweep varies as the user wrote them: ``a=1,2``, ``range(..)``, ``choice(..)`` on the command
    line and ``hydra.sweeper.params``; whether the command line parsed). Also names W&B runs (training/tracking.py)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    keys = set((hc.sweeper.get("params") or {}).keys()) if "sweeper" in hc else set()
    args = [a for a in (sys.argv[1:] if argv is None else argv) if "=" in a and not a.startswith("-")]
    try:
        keys |= {o.key_or_group for o in OverridesParser.create().parse_overrides(args) if o.is_sweep_override()}
    except Exception:  # an argv Hydra itself did not take
        return keys, False
    return keys, True


def swept_keys(argv: list[str] | None = None) -> frozenset[str] | None:
    """In a Hydra multirun job: the config keys its sweep varies (sweep overrides on the command line,
    ``hydra.sweeper.params``); empty outside a multirun; None when a swept config group may change any key."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from .utils.config_dir import config_dir

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return frozenset()
    keys, parsed = swept_overrides(HydraConfig.get(), argv)
    if not parsed:
        return None
    packages = {_package(k, Path(config_dir())) for k in keys}
    return None if None in packages else frozenset(p for p in packages if p is not None)
