"""Every ``every_kimg`` thousand images: the schedule the periodic callbacks share (metrics, analyses, sample grids,
checkpoints)."""

from __future__ import annotations

import lightning as L


def tick_index(cur_nimg: int, every_kimg: float) -> int:
    """How many multiples of ``every_kimg`` thousand images ``cur_nimg`` has passed."""
    return int(cur_nimg // max(every_kimg * 1000, 1))


class KimgTicks(L.Callback):
    """:meth:`work` at the first step past each multiple of ``every_kimg``, before the first step when ``at_start``
    (unless :meth:`done_at` says a resumed run already did it at this image count), and at the end unless the last
    work was at the final count. Subclasses set ``every_kimg`` and ``at_start``, and record ``_last_nimg`` in
    :meth:`work`."""

    every_kimg: float
    at_start: bool = False
    _last_tick: int = -1
    _last_nimg: int | None = None

    def work(self, trainer, pl_module) -> object:
        raise NotImplementedError

    def done_at(self, pl_module) -> bool:
        return False

    def on_train_start(self, trainer, pl_module) -> None:
        self._last_tick = tick_index(pl_module.cur_nimg, self.every_kimg)
        if self.at_start and not self.done_at(pl_module):
            self.work(trainer, pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        tick = tick_index(pl_module.cur_nimg, self.every_kimg)
        if tick > self._last_tick:
            self._last_tick = tick
            self.work(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        if self._last_nimg != pl_module.cur_nimg:
            self.work(trainer, pl_module)
