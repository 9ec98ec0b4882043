"""What the driver shows while a study trains: each run in flight, where, how far, how fast.

The runs' own folders are the source, so it is the same for every backend and for runs on
any node that shares the results folder: a run is in flight while it holds a live claim
(``claim.json``, :mod:`ablation.core.locks`, which names its host and device), and its last history
point (``history.jsonl``) gives its iteration and images/s. The time left is

    ETA = (T - t) * B / r

for a run at iteration t of T, batch B, at its last measured r images/s (training only, so
evaluations come on top).
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass

from .cost import total_iterations
from ..core.locks import is_stale, read_claim
from ..core.layout import RunDir


@dataclass
class Flight:
    """One run in flight, as its folder tells it."""

    key: str
    where: str  # host/device
    iteration: int
    total: int
    images_per_s: float | None
    eta_s: float | None

    def line(self) -> str:
        speed = f"{self.images_per_s:.0f} img/s" if self.images_per_s else "starting"
        eta = f"ETA {_duration(self.eta_s)}" if self.eta_s is not None else "ETA ?"
        return f"{self.key}  {self.where}  it {self.iteration}/{self.total}  {speed}  {eta}"


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def flight(task) -> Flight | None:
    """The progress of ``task`` (a :class:`ablation.study.grid.Task`) if a live process trains it, else None."""
    claim = read_claim(task.run_dir)
    if claim is None or is_stale(claim):
        return None
    history = RunDir(task.run_dir).read_history()
    last = history[-1] if history else {}
    total = total_iterations(task.config)
    it = int(last.get("iteration", 0))
    ips = last.get("images_per_s")
    eta = (total - it) * task.config["batch_size"] / ips if ips else None
    return Flight(task.key, f"{claim.get('host', '?')}/{claim.get('device') or '?'}", it, total, ips, eta)


def in_flight(tasks, done: set) -> list[Flight]:
    """Every task not in ``done`` (hashes) that a live process trains now."""
    return [f for t in tasks if t.hash not in done for f in [flight(t)] if f is not None]


class Watcher:
    """Shows the runs in flight under the study's bar, refreshed every ``period_s`` by a thread.

    On a terminal: up to ``max_lines`` status lines below the bar. Elsewhere (a log file): every
    ``period_s`` one written line per run in flight, so that a log keeps a readable record.
    """

    def __init__(self, tasks, done: set, file=None, period_s: float | None = None, max_lines: int = 8):
        self.tasks, self.done = tasks, done
        self.file = file or sys.stderr
        self.tty = bool(getattr(self.file, "isatty", lambda: False)())
        self.period_s = period_s or (2.0 if self.tty else 60.0)
        self.max_lines = max_lines
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="progress", daemon=True)
        self._lines = []

    def _loop(self):
        while not self._stop.wait(self.period_s):
            try:
                self.show(in_flight(self.tasks, self.done))
            except Exception:  # a display must never stop a study
                pass

    def show(self, flights: list[Flight]) -> None:
        from tqdm import tqdm

        text = [f.line() for f in flights[: self.max_lines]]
        if len(flights) > self.max_lines:
            text.append(f"... and {len(flights) - self.max_lines} more in flight")
        if not self.tty:
            for t in text:
                tqdm.write(f"  in flight: {t}", file=self.file)
            return
        while len(self._lines) < len(text):
            self._lines.append(tqdm(total=0, position=len(self._lines) + 1, bar_format="{desc}", file=self.file,
                                    leave=False, dynamic_ncols=True))
        for i, bar in enumerate(self._lines):
            bar.set_description_str(f"  {text[i]}" if i < len(text) else "")

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        for bar in self._lines:
            bar.close()
