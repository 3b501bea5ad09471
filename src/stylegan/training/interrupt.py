"""Stopping without loss: SIGTERM (a scheduler's preemption) and SIGINT (Ctrl-C) stop a run at a step boundary
with ``last.ckpt`` written, and a run whose checkpoint already reached ``total_kimg`` trains nothing.

``stylegan-train`` catches both signals for its whole life and ``train()`` while it runs (also where another
launcher, e.g. submitit, calls it): the handler (:func:`catching`) only records the signal.
After each training step :class:`StopOnSignal` asks every DDP rank whether one of them got a signal (one all-reduce,
so a rank that got none stops at the same step as the one that did, and none waits in a collective for a rank that
left), writes ``last.ckpt`` through :class:`~.callbacks.KimgCheckpoint` (every rank's RNG streams, as the periodic
checkpoints) and raises :class:`RunInterrupted`. The entry point records ``status.json`` as ``interrupted`` with the
signal's name, closes the loggers and exits with ``128 + signal`` (143 for SIGTERM, 130 for SIGINT); in a sweep the
remaining jobs are not started. ``ckpt_path=auto`` then continues exactly where the run stopped. A second Ctrl-C
abandons the current step (the last checkpoint stays).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
import torch.distributed as dist
from lightning.pytorch.utilities import rank_zero_only

from ..utils.atomic import remove_partial_writes
from .callbacks import KimgCheckpoint

log = logging.getLogger(__name__)
SIGNALS = (signal.SIGTERM, signal.SIGINT)


@dataclass
class _State:
    depth: int = 0  # catching() contexts open: this process's handlers are ours
    received: int | None = None  # the first signal received
    stopped: int | None = None  # the signal that stopped a run or a sweep


_state = _State()


class RunInterrupted(Exception):  # noqa: N818 (a stop, not an error)
    """A run stopped by ``signum`` at ``kimg``; ``checkpoint``: the ``last.ckpt`` written at that step (None: none).
    Made only when a run stops: the process then exits with ``128 + signum`` (:func:`stopped`)."""

    def __init__(self, signum: int, kimg: float | None, checkpoint: Path | None) -> None:
        self.signum, self.kimg, self.checkpoint = int(signum), kimg, checkpoint
        _state.stopped = self.signum
        super().__init__(self.line())

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    def line(self) -> str:
        if self.checkpoint is None:
            return f"{self.name}: stopped before a new checkpoint was written; ckpt_path=auto resumes from the last one"
        return f"{self.name}: stopped at kimg {self.kimg:g} with {self.checkpoint} written; ckpt_path=auto resumes"


def _handler(signum: int, frame) -> None:
    if _state.received == signum == signal.SIGINT:  # Ctrl-C twice: abandon the step now
        raise KeyboardInterrupt
    if _state.received is None:
        _state.received = signum
        if rank_zero_only.rank == 0:
            again = " (Ctrl-C again: stop now, without it)" if signum == signal.SIGINT else ""
            os.write(2, f"\n{signal.Signals(signum).name} received: stopping after this step, with a "
                        f"checkpoint{again}\n".encode())


def _install() -> None:
    if threading.current_thread() is threading.main_thread():
        for s in SIGNALS:
            signal.signal(s, _handler)


def reset() -> None:
    """Forget earlier signals (a new command line in this process)."""
    _state.received = _state.stopped = None


@contextlib.contextmanager
def catching() -> Iterator[None]:
    """Within: SIGTERM and SIGINT are recorded, not fatal; the previous handlers are restored after (nestable)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    _state.depth += 1
    _install()
    try:
        yield
    finally:
        for s, handler in previous.items():
            if handler is not None:  # None: set outside Python, cannot be restored from here
                signal.signal(s, handler)
        _state.depth -= 1


def stopped() -> int | None:
    """The signal that stopped a run (or the rest of a sweep), if one did: the process then exits with 128 + it."""
    return _state.stopped


def skip_job(job_num: int | None) -> bool:
    """In a sweep after a signal: the next jobs do not start (they show as unfinished; a re-run starts them)."""
    if _state.received is None:
        return False
    _state.stopped = _state.received
    log.warning("job %s not started: the sweep was stopped by %s", job_num, signal.Signals(_state.received).name)
    return True


def as_interruption(e: BaseException) -> RunInterrupted | None:
    """``e`` if the run was stopped by a signal: a :class:`RunInterrupted`, or what a signal raised before the
    training loop took the handlers over (Lightning's SIGTERMException) or a second Ctrl-C (KeyboardInterrupt, which
    Lightning turns into ``SystemExit``)."""
    if isinstance(e, RunInterrupted):
        return e
    if _state.received is not None and isinstance(e, (KeyboardInterrupt, SystemExit)):
        return RunInterrupted(_state.received, None, None)
    return None


def stop_watching_children() -> int:
    """Lightning's launcher (rank 0 of a one-machine DDP run) watches the ranks it started and SIGKILLs itself when
    one exits with a non-zero code: after a signal every rank exits with 128 + it, and a rank that exits before rank
    0 finished its checkpoint, status.json and loggers would kill it. Called by rank 0 at the stop, before a barrier
    (so no rank has left yet): the watchers then end at their next look. Returns how many."""
    from lightning.fabric.strategies.launchers.subprocess_script import _ChildProcessObserver

    watchers = [t for t in threading.enumerate() if isinstance(t, _ChildProcessObserver)]
    for t in watchers:
        t._run = lambda: True  # its loop ends without looking at the ranks' exit codes
    return len(watchers)


def _agreed(trainer: L.Trainer, pl_module: L.LightningModule) -> int:
    """The largest signal number any rank received (0: none); every rank calls this after every step. Under DDP one
    4-byte all-reduce; Lightning's own loop already waits on a broadcast each step, so it drains no extra queue."""
    local = _state.received or 0
    if trainer.world_size > 1 and dist.is_available() and dist.is_initialized():
        flag = torch.tensor([local], dtype=torch.int32, device=pl_module.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return int(flag.item())
    return local


class StopOnSignal(L.Callback):
    """After each step: if any rank got SIGTERM or SIGINT, write ``last.ckpt`` (all ranks) and raise
    :class:`RunInterrupted` on every rank at this same step. The run's last step is left to finish normally."""

    def on_train_start(self, trainer, pl_module) -> None:
        if _state.depth:  # Lightning's fit installed its own SIGTERM handler (restored at its teardown)
            _install()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        signum = _agreed(trainer, pl_module)
        if not signum or pl_module.cur_nimg >= pl_module.total_kimg * 1000:
            return
        if trainer.is_global_zero:
            stop_watching_children()
        trainer.strategy.barrier("stop-on-signal")  # no rank leaves before rank 0 stopped watching them
        saver = next((cb for cb in trainer.callbacks if isinstance(cb, KimgCheckpoint)), None)
        if saver is None and trainer.is_global_zero:
            log.warning("no checkpoint callback (callbacks.checkpoint): nothing written at the stop")
        ckpt = saver.save_last(trainer, pl_module) if saver is not None else None
        stop = RunInterrupted(signum, pl_module.cur_nimg / 1000, ckpt)
        if trainer.is_global_zero:
            log.warning("%s", stop)
        raise stop


def finished_kimg(ckpt: dict | None, total_kimg) -> float | None:
    """The kimg of a loaded checkpoint (``stylegan.train.read_checkpoint``) if it already reached ``total_kimg``
    (the run is complete), else None (also for none, or not a stylegan-train one: the resume checks report that)."""
    try:
        nimg = int(ckpt["stylegan"]["cur_nimg"])
    except (TypeError, KeyError, ValueError):
        return None
    return nimg / 1000 if nimg >= float(total_kimg) * 1000 else None  # images: exact


@rank_zero_only
def clear_partial_writes(folder: str | Path) -> None:
    """Remove the temp checkpoint files a killed write left in ``folder`` (rank 0, before training)."""
    for p in remove_partial_writes(folder):
        log.info("removed %s, left by an interrupted checkpoint write", p)
