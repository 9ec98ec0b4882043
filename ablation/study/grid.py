"""Train a list of runs: skip the finished ones, order the rest longest first, hand them to a backend.

The backends are :mod:`ablation.study.backends` (in process), :mod:`ablation.study.pool` (worker
processes on this machine) and :mod:`ablation.study.ray_backend` (a Ray cluster).

A run that raises, or whose worker process dies (a segfault, the OOM killer), is recorded as
``error`` with its reason in its run folder (``error.json``) and the study goes on; a full
disk stops the study (every later run would fail the same way), keeping what is written.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import time
import uuid

from ..core.errors import ConfigError
from ..core.files import DiskFull
from ..core.layout import ResultsDir
from ..nets.archs import arch_spec
from .backends import Backend, Status, Task
from .cost import images_seen
from .pool import local_backend
from .progress import Watcher


def distinct_unfinished(runs, results: ResultsDir) -> tuple[list, int]:
    """The distinct runs of ``runs`` (by hash) that are not finished in ``results``, and how many are."""
    distinct = {}
    for r in runs:
        distinct.setdefault(r.hash, r)
    todo = [r for r in distinct.values() if not results.run(r.hash).is_finished()]
    return todo, len(distinct) - len(todo)


def to_train(runs, results: ResultsDir, force: bool = False) -> list[dict]:
    """The configs of the distinct runs of ``runs`` that will train: not finished in ``results``, or all with ``force``."""
    if force:
        return list({r.hash: r.config for r in runs}.values())
    return [r.config for r in distinct_unfinished(runs, results)[0]]


def prepare_data(runs, quiet: bool = False) -> None:
    """Load every dataset the runs need once, before training.

    A missing dataset is then one line and exit 2 before anything trains, and parallel runs
    find the decoded, resized cache ready instead of each building it.
    """
    from ..training import data as datasets

    todo = {datasets.load_key(r.config): r.config for r in runs}
    for key in sorted(todo, key=str):
        t0 = time.time()
        datasets.load_for(todo[key])
        if not quiet and time.time() - t0 > 2:
            print(f"prepared {key[0]} ({time.time() - t0:.0f}s)")


def _length(cfg: dict) -> float:
    """Images times depth: how long a run takes, for ordering only."""
    try:
        depth = arch_spec(cfg["arch"]).depth
    except ConfigError:
        depth = 1
    return images_seen(cfg) * depth


def run_grid(runs, out, train_fn=None, jobs: int | None = 1, force: bool = False, quiet: bool = False,
             plugins=(), backend: Backend | None = None, bar=None) -> dict:
    """Train every distinct run of ``runs`` not finished in ``out/runs``; returns counts.

    Runs sharing a hash (the same config reached from two experiments) train once.
    ``train_fn(cfg, run_dir) -> summary`` defaults to :func:`ablation.training.loop.train`; ``backend``
    defaults to :func:`local_backend` with ``jobs``. ``bar``: the tqdm class of the progress bar and its
    messages (default ``tqdm.tqdm``; ``tqdm.auto.tqdm`` in a notebook).
    """
    if bar is None:
        from tqdm import tqdm as bar
    tqdm = bar

    results = ResultsDir(out)
    if force:
        for h in {r.hash for r in runs}:
            if results.run(h).is_finished():
                shutil.rmtree(results.run(h).path)
    todo, skipped = distinct_unfinished(runs, results)
    # longest first, so parallel jobs do not end waiting on one long run
    todo.sort(key=lambda r: -_length(r.config))
    if backend is None:
        backend = local_backend(jobs, len(todo), [r.config for r in todo], plugins, train_fn)
    result = {"trained": 0, "skipped": skipped, "errors": 0, "busy": 0, "interrupted": False, "done": 0,
              "todo": len(todo), "jobs": backend.jobs, "backend": backend.describe()}
    if not todo:
        return result
    bar = tqdm(total=len(todo), unit="run", desc="study", disable=quiet, dynamic_ncols=True)
    by_hash = {r.hash: r for r in todo}
    ended = set()  # hashes of the runs that came back, for the in-flight display

    def finished(task: Task, summary: dict | None, seconds: float):
        r = by_hash[task.hash]
        ended.add(task.hash)
        summary = summary if isinstance(summary, dict) else {"status": Status.ERROR.value, "reason": "no summary returned"}
        status = summary.get("status", Status.ERROR.value)
        if summary.get("disk_full"):  # every later run would fail the same way: stop, keep what is written
            raise DiskFull(summary["reason"])
        result["done"] += 1
        if status == Status.ERROR:
            result["errors"] += 1
            tqdm.write(f"error in {r.key} ({r.hash}): {summary.get('reason')}", file=sys.stderr)
            results.run(r.hash).write_error(str(summary.get("reason")))  # for the tables and the README
        elif status == Status.DONE:
            result["skipped"] += 1
        elif status == Status.BUSY:
            result["busy"] += 1
            tqdm.write(f"skipped {r.key} ({r.hash}): {summary.get('reason')}", file=sys.stderr)
        else:
            result["trained"] += 1
            results.run(r.hash).clear_error()  # an earlier attempt's error no longer holds
            if not quiet:
                err = summary.get("final_test_error")
                err = f"{err:.2f}%" if isinstance(err, (int, float)) else "n/a"
                took = summary.get("time_s") or seconds  # the trainer's own clock excludes time queued
                tqdm.write(f"{r.experiment}:{r.variant} seed {r.seed} [{r.hash}]: {status}, final test error "
                           f"{err} ({took:.0f}s)")
        bar.update()

    threads = backend.threads()
    tasks = [Task(r.key, r.hash, {**r.config, "quiet": True, "threads": threads or r.config.get("threads")},
                  str(results.run(r.hash).path), uuid.uuid4().hex[:16]) for r in todo]
    watch = contextlib.nullcontext() if quiet else Watcher(tasks, ended)
    try:
        with watch:
            backend.execute(tasks, finished)
    except KeyboardInterrupt:
        result["interrupted"] = True
    finally:
        bar.close()
    return result
