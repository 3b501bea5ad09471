"""Evaluate a checkpoint: ``python -m stylegan.evaluate ckpt=PATH metric_names=[fid50k_full]`` (Hydra; or
``stylegan-evaluate``). Writes JSON with the values, the networks that produced them, counts, checkpoint and kimg.

``ckpt`` is our Lightning checkpoint (its ``G_ema`` is evaluated), an official-format weights file (a dict with
``G`` and ``G_kwargs``, see :mod:`stylegan.official`) or an NVlabs network pickle (``.pkl``; its ``G_ema``, read
without running its code, see :mod:`stylegan.official_pickle`).

Data: a checkpoint of ours records the data settings of the run that trained it; with no ``data`` override on the
command line those are used (as the official ``calc_metrics.py`` takes ``training_set_kwargs`` from a snapshot).
``data.key=value`` overrides replace single settings of the stored ones; ``data=<group>`` replaces them all. A
checkpoint without stored settings (official files, older checkpoints) uses the config's ``data`` (default mnist).

Several processes: under ``torchrun --nproc_per_node=N -m stylegan.evaluate ...`` (``WORLD_SIZE`` > 1 in the
environment) each process joins the launch's process group (NCCL on GPUs, one per ``LOCAL_RANK``; gloo on CPUs),
generates and extracts every N-th batch, and rank 0 writes the JSON: the numbers equal a one-process run's.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import hydra
import torch
import torch.distributed as dist
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from .cli import bad_input_line, first_process_on_node, freeze_heap, preflight, refuse
from .metrics.extractors import standard
from .metrics.generate import rank_world
from .metrics.names import parse_metrics
from .metrics.reals import num_real_items
from .metrics.runner import MetricRunner, build_networks
from .model_files import ModelFileError, load_checkpoint, load_generator
from .utils.atomic import atomic_open
from .utils.config_dir import config_dir, refuse_file_output_dir
from .utils.resolvers import register as register_resolvers

log = logging.getLogger(__name__)
__all__ = ["EvaluateError", "evaluate", "load_generator"]  # load_generator: stylegan.model_files's, for scripts


class EvaluateError(ValueError):
    """Bad evaluate input (the data for a checkpoint, output path); reported as one line. A model file that does not
    load is :class:`stylegan.model_files.ModelFileError`."""


# the data modules a checkpoint's stored settings may name: a _target_ read from a file is never called otherwise
DATA_TARGETS = ("stylegan.data.ImageDataModule", "stylegan.data.datamodule.ImageDataModule")
DEMO_SOURCES = ("mnist", "lfw")


def _override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def data_overrides() -> list[str] | None:
    """This Hydra run's command-line overrides of ``data`` (``data=folder``, ``data.source=...``, ``~data.x``); None
    when not run by Hydra (then ``cfg.data`` counts as given)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    return [o for o in HydraConfig.get().overrides.task if _override_key(o).split(".", 1)[0] == "data"]


def data_settings(cfg: DictConfig, stored: dict[str, Any] | None, ckpt: str) -> tuple[DictConfig, str]:
    """The data config to evaluate on and where it came from: 'checkpoint' (the stored settings, with any given
    ``data.key`` overrides on top), 'command line' (``data=<group>`` given, or nothing stored) or 'default'."""
    given = data_overrides()
    if given is None:
        return cfg.data, "config"
    if stored is None or any(_override_key(o) == "data" for o in given):
        if stored is None and not given:
            log.warning("%s does not record its training data; evaluating on the default data=%s (give data=...)",
                        ckpt, cfg.data.get("source"))
        return cfg.data, "command line" if given else "default"
    if stored.get("_target_") not in DATA_TARGETS:
        raise EvaluateError(f"ckpt={ckpt} names the data module {stored.get('_target_')!r}, which stylegan-evaluate "
                            "does not build from a file: give the data on the command line (data=... data.source=...)")
    data = OmegaConf.create(stored)
    for o in given:
        key = _override_key(o)[len("data."):]
        if o.startswith("~"):
            data.pop(key, None)
        else:
            OmegaConf.update(data, key, OmegaConf.select(cfg.data, key), merge=False)
    source = str(data.get("source"))
    if not any(_override_key(o) == "data.source" for o in given) and source not in DEMO_SOURCES \
            and not Path(source).expanduser().exists():
        raise EvaluateError(f"data.source={source} (the data {ckpt} was trained on, stored in it) does not exist "
                            "here: give its new place with data.source=PATH, or other data with data=... data.source=")
    return data, "checkpoint"


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomic: a temp file in the same folder, then ``os.replace``."""
    with atomic_open(path, "w") as f:
        f.write(json.dumps(data, indent=2, sort_keys=False) + "\n")


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Run the metrics of ``cfg`` on ``cfg.ckpt``; returns (and writes) the JSON record."""
    names = cfg.metric_names
    metrics = [names] if isinstance(names, str) else list(names)
    specs = parse_metrics(metrics)
    G, kimg, stored_data = load_checkpoint(cfg.ckpt)  # the cheap checks first: names, checkpoint, metric networks
    networks = build_networks(specs, feature_extractor=_maybe_instantiate(cfg.feature_extractor),
                              feature_extractor_weights_path=cfg.feature_extractor_weights_path,
                              pr_extractor=_maybe_instantiate(cfg.pr_extractor),
                              pr_extractor_weights_path=cfg.pr_extractor_weights_path,
                              ppl_distance=_maybe_instantiate(cfg.ppl_distance))
    data_cfg, data_origin = data_settings(cfg, stored_data, str(cfg.ckpt))
    dm = instantiate(data_cfg)
    dm.setup()
    if (dm.resolution, dm.channels, dm.c_dim) != (G.img_resolution, G.img_channels, G.c_dim):
        raise EvaluateError(f"data is {dm.channels}x{dm.resolution}x{dm.resolution} with c_dim={dm.c_dim} but the "
                            f"generator makes {G.img_channels}x{G.img_resolution}x{G.img_resolution} with "
                            f"c_dim={G.c_dim}: fix data.resolution / data.channels / data.use_labels")
    device, joined = join_launch(cfg.device)
    try:
        runner = MetricRunner(metrics, networks, cfg.cache_dir, cfg.batch_size, cfg.seed, cfg.progress,
                              cfg.get("real_subset", "first"))
        values = runner.run(G.to(device), dm, device)
        rank, world = rank_world()
    finally:
        if joined:
            dist.destroy_process_group()
    total = num_real_items(dm)
    nets = {"features": networks.features, "pr": networks.pr, "ppl_distance": networks.distance}
    record = {
        "results": values,
        "metrics": [
            {"name": s.name, "num_gen": s.num_gen,
             "num_real": None if s.kind == "ppl" else min(s.num_real or total, total)}
            for s in specs
        ],
        "networks": {k: {"name": n.name, "standard": standard(n)} for k, n in nets.items() if n is not None},
        "ckpt": str(Path(cfg.ckpt).resolve()),
        "kimg": kimg,
        "data": {"source": str(data_cfg.get("source")), "num_images": dm.num_images, "xflip": bool(dm.xflip),
                 "max_images": dm.max_images, "real_items": total, "real_subset": runner.real_subset,
                 "settings_from": data_origin, "fingerprint": dm.fingerprint()},
        "seed": int(cfg.seed),
        "batch_size": int(cfg.batch_size),
        "processes": world,
    }
    if getattr(G.synthesis, "progressive", False):
        record["lod"] = G.synthesis.lod  # progressive growing: the level of detail the images were made at
    out = Path(cfg.output) if cfg.get("output") else Path(cfg.ckpt).with_name(f"{Path(cfg.ckpt).stem}-metrics.json")
    if rank == 0:
        write_json(out, record)
        log.info("wrote %s: %s", out, values)
    return record


def join_launch(device: str) -> tuple[torch.device, bool]:
    """(device, joined): under a launcher that starts several processes (``WORLD_SIZE`` > 1: torchrun, or Lightning's
    DDP children) join its process group from the environment (``MASTER_ADDR``/``MASTER_PORT``/``RANK``), NCCL with
    one GPU per ``LOCAL_RANK``, gloo on CPUs. ``device``: 'auto' (CUDA when available), 'cpu', 'cuda'."""
    use_cuda = torch.cuda.is_available() if device == "auto" else str(device).startswith("cuda")
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1 or dist.is_initialized():
        return torch.device(("cuda" if use_cuda else "cpu") if device == "auto" else device), False
    local = int(os.environ.get("LOCAL_RANK", "0") or 0)
    if use_cuda:
        torch.cuda.set_device(local)
    dist.init_process_group("nccl" if use_cuda else "gloo")
    return torch.device("cuda", local) if use_cuda else torch.device("cpu"), True


def _maybe_instantiate(value: Any) -> Any:
    return instantiate(value) if isinstance(value, DictConfig) and "_target_" in value else value


register_resolvers()


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="evaluate")
def _hydra_main(cfg: DictConfig) -> None:
    log.debug("config:\n%s", OmegaConf.to_yaml(cfg))
    preflight("stylegan-evaluate", cfg)  # the whole config, before anything is loaded (stylegan/preflight.py)
    try:
        record = evaluate(cfg)
    except Exception as e:
        line = bad_input_line(e, (EvaluateError, ModelFileError))
        if line is None:
            raise
        refuse("stylegan-evaluate", line)
    if first_process_on_node():  # once, not once per process under torchrun
        print(json.dumps(record["results"]))


def main() -> None:
    """The console script: Hydra's entry point, after the checks Hydra would turn into a traceback."""
    refuse_file_output_dir("stylegan-evaluate", sys.argv[1:])
    freeze_heap()
    return _hydra_main()


if __name__ == "__main__":
    main()
