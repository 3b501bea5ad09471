"""OmegaConf resolvers used by ``conf/`` (registered by the entry points; call :func:`register` before composing
the configs yourself, e.g. in a notebook).

- ``${sg.channel_base:${data.resolution}}``: the official 'auto' network size (stylegan2-ada ``train.py``):
  ``fmaps = 1 if res >= 512 else 0.5``, ``channel_base = fmaps * 32768``.
- ``${sg.per_device_batch:GLOBAL,${trainer.devices},${trainer.num_nodes}}``: a preset's global minibatch split over
  the devices (``auto``: the visible GPUs), refused if it does not divide.
- ``${sg.cpu_workers:N}``: N data-loader worker processes, at most the CPUs this process may run on (torch's
  DataLoader warns above that; on a 2-core machine 4 workers only compete with training).
"""

from __future__ import annotations

import os

from omegaconf import OmegaConf


def channel_base(resolution: int) -> int:
    return 32768 if int(resolution) >= 512 else 16384


def _device_count(devices) -> int:
    """Lightning's ``devices``: an int (-1: all GPUs), a list of ids, "0,1", or "auto"."""
    if isinstance(devices, list | tuple):
        return len(devices)
    text = str(devices).strip()
    if text in ("auto", "-1"):
        import torch

        return max(torch.cuda.device_count(), 1)
    if text.isdigit():
        return int(text)
    return len([d for d in text.strip("[]").split(",") if d.strip()])


def per_device_batch(global_batch: int, devices=1, num_nodes: int = 1) -> int:
    world = _device_count(devices) * int(num_nodes)
    if int(global_batch) % world:
        raise ValueError(f"the preset's global batch {global_batch} does not split over {world} devices: set "
                         "data.batch_size (per device) yourself")
    return int(global_batch) // world


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cpu_workers(requested: int) -> int:
    return max(0, min(int(requested), usable_cpus()))


def register() -> None:
    for name, fn in (("sg.channel_base", channel_base), ("sg.per_device_batch", per_device_batch),
                     ("sg.cpu_workers", cpu_workers)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)
