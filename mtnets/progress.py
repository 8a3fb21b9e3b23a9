"""Progress of long loops as plain log lines with a rate and an ETA.

`Progress` works like clu's `ReportProgress` of the train loop, for loops that are not
training steps: call it with the number of units done so far and it logs, at most every
`every_secs` seconds and always at the end, a line such as

    Evaluation: 12/40 batches (30%), 48.0 images/s, ETA 0m35s

One absl INFO line per report and no carriage returns, so a log file stays readable. In a
multi-process run only process 0 logs (each process runs the same loop). `logged` wraps an
iterable (the examples a TFDS builder generates) in the same reports. It uses absl only, not
clu's periodic actions, whose import pulls in TensorFlow through clu's metric writers: the
evaluation loop runs where only JAX is installed.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from absl import logging

T = TypeVar("T")


def format_seconds(seconds: float) -> str:
    """`95.2` -> `"1m35s"`, `4000` -> `"1h06m40s"`."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def _is_main_process() -> bool:
    # A program that never imported JAX (a download, a dataset build) is a single process; one
    # that did asks JAX, so that in a multi-process run only process 0 prints.
    jax = sys.modules.get("jax")
    return jax is None or jax.process_index() == 0


class Progress:
    """Logs `what: done/total unit (pct), rate, ETA` as `self(done)` is called.

    Args:
      what: what the loop does, the start of every line ("Evaluation", "Building train").
      total: the number of units the loop will do; None if unknown (no percentage, no ETA).
      unit: the name of what `done` counts ("batches", "examples").
      items_per_unit: with `item`, reports the rate in items (e.g. images per batch).
      item: what the rate counts; default `unit`.
      every_secs: the least time between two lines (the last unit is always reported).
    """

    def __init__(
        self,
        what: str,
        total: int | None,
        *,
        unit: str = "batches",
        items_per_unit: float = 1.0,
        item: str | None = None,
        every_secs: float = 30.0,
    ):
        self.what, self.total, self.unit = what, total, unit
        self.items_per_unit, self.item = items_per_unit, item or unit
        self.every_secs = every_secs
        self._start: float | None = None
        self._last_line = 0.0
        self._reported = -1

    def start(self) -> Progress:
        """Starts the clock and logs the first line (`0/total`)."""
        self._start = time.monotonic()
        self._log(0, self._start)
        return self

    def due(self, done: int, t: float | None = None) -> bool:
        """Whether `self(done, t)` would log a line: a caller can make `done` exact (e.g. wait
        for the device) only then, instead of at every unit."""
        t = time.monotonic() if t is None else t
        finished = self.total is not None and done >= self.total
        return finished or t - self._last_line >= self.every_secs

    def __call__(self, done: int, t: float | None = None) -> None:
        if self._start is None:
            self.start()
        t = time.monotonic() if t is None else t
        if self.due(done, t):
            self._log(done, t)

    def _log(self, done: int, t: float) -> None:
        self._last_line = t
        if done == self._reported or not _is_main_process():
            return
        self._reported = done
        logging.info("%s", self.message(done, t - self._start))

    def message(self, done: int, elapsed: float) -> str:
        """The line for `done` units after `elapsed` seconds (the rate is the average so far)."""
        parts = [f"{self.what}: {done}/{self.total if self.total else '?'} {self.unit}"]
        if self.total:
            parts[0] += f" ({100.0 * done / self.total:.0f}%)"
        if done and elapsed > 0:
            rate = done * self.items_per_unit / elapsed
            parts.append(f"{rate:.3g} {self.item}/s")
            if self.total:
                if done >= self.total:
                    parts.append(f"took {format_seconds(elapsed)}")
                else:
                    parts.append(f"ETA {format_seconds((self.total - done) * elapsed / done)}")
        return ", ".join(parts)


def logged(
    items: Iterable[T], what: str, total: int | None, *, unit: str = "examples", every_secs=30.0
) -> Iterator[T]:
    """`items`, logging a `Progress` line every `every_secs` seconds as they are consumed."""
    progress = Progress(what, total, unit=unit, every_secs=every_secs).start()
    for done, item in enumerate(items, start=1):
        yield item
        progress(done)


def quiet_progress_bars_unless_terminal() -> None:
    """Turns TFDS's tqdm bars off when stderr is not a terminal: redrawn with carriage returns,
    they fill a log file with thousands of partial lines (`logged` reports instead)."""
    if not sys.stderr.isatty():
        import tensorflow_datasets as tfds

        tfds.display_progress_bar(False)
