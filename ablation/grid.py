"""Train a list of runs: skip the finished ones, order the rest longest first, hand them to a backend.

A backend executes :class:`Task` objects and reports each summary as it arrives. Two ship
here: :class:`InProcess` (one run after another) and :class:`LocalPool` (a pool of worker
processes on this machine, spread over its GPUs where it has several). A cluster is one more
subclass of :class:`Backend` (:class:`ablation.ray_backend.RayBackend`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Callable

from .cost import images_seen
from .errors import ConfigError
from .locks import ClaimLost, RunBusy
from .models import arch_spec
from .progress import Watcher
from .results import ResultsDir

# Measured with `--variants all --preset quick` on a 2-core CPU: two single-threaded runs at once
# beat one run on two threads (see results/quick/README.md), as small convolutions scale poorly
# across threads; on a GPU one run at a time keeps the device busy.
PER_JOB_THREADS = 1


@dataclass
class Task:
    """One run to train: where it goes and with which config (the runner's threads and quiet set)."""

    key: str  # experiment:variant:seed, for messages
    hash: str
    config: dict
    run_dir: str
    ticket: str | None = None  # this study's name for the task, kept by a cluster's retries (locks.Claim)


def train_task(task: Task, train_fn=None) -> dict:
    """Train one task and return its summary; any exception becomes an ``error`` summary, not a crash."""
    from .train import AlreadyFinished, train

    try:
        if train_fn is None:
            return train(task.config, task.run_dir, finished_ok=False, ticket=task.ticket)
        return train_fn(task.config, task.run_dir)
    except AlreadyFinished:  # another invocation finished it since this one made its list
        return {"status": "done", "reason": None}
    except (RunBusy, ClaimLost) as e:  # another process trains it: not an error of the run
        return {"status": "busy", "reason": str(e)}
    except ConfigError as e:
        return {"status": "error", "reason": str(e)}
    except Exception as e:  # one broken run must not stop the study; its error goes in the table
        return {"status": "error", "reason": f"{type(e).__name__}: {e}"}


class Backend:
    """Executes tasks. ``execute`` calls ``on_done(task, summary, seconds)`` as each run ends and lets
    KeyboardInterrupt through once it has stopped its workers (each keeps its last checkpoint).

    ``jobs`` is how many runs train at once and ``gpus_per_run`` the share of a GPU each holds
    (0 on CPU): the dry run's wall time and GPU-hours come from them. A backend is a context
    manager; leaving it releases what it started.
    """

    jobs = 1
    gpus_per_run = 0.0

    def execute(self, tasks: list[Task], on_done: Callable) -> None:
        raise NotImplementedError

    def threads(self) -> int | None:
        """Torch threads per run: one per run when several share the cores, else torch's choice."""
        return PER_JOB_THREADS if self.jobs > 1 else None

    def describe(self) -> str:
        return f"{self.jobs} run{'s' if self.jobs != 1 else ''} at once on this machine"

    def call(self, fn: Callable, *args):
        """``fn(*args)`` where a run would train (here, in this process), e.g. to time a few steps."""
        return fn(*args)

    def check_storage(self, out) -> None:
        """ConfigError unless every worker sees ``out`` as this process does (always so on one machine)."""

    def close(self) -> None:
        """Release what the backend started."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class InProcess(Backend):
    """One run after another in this process."""

    def __init__(self, train_fn=None):
        self.train_fn = train_fn

    def execute(self, tasks, on_done):
        for t in tasks:
            t0 = time.time()
            on_done(t, train_task(t, self.train_fn), time.time() - t0)


def _init_worker(plugins, devices, counter) -> None:
    # Ctrl-C reaches the whole process group; the parent alone decides, and stops workers itself
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if devices:
        # one GPU per worker, before anything initialises CUDA: the trainer's "cuda" is then that GPU
        with counter.get_lock():
            slot = counter.value
            counter.value += 1
        os.environ["CUDA_VISIBLE_DEVICES"] = devices[slot % len(devices)]
    from . import shortcuts

    for spec in plugins:
        shortcuts.load_plugin(spec)


class LocalPool(Backend):
    """``jobs`` worker processes on this machine (spawned, so each has its own torch state).

    With ``devices`` (GPU ids, one per worker: :func:`gpu_slots`) the i-th worker started sees
    only ``devices[i]``, so that runs spread over the GPUs.
    """

    def __init__(self, jobs: int, plugins=(), train_fn=None, devices: list[str] | None = None, per_gpu: int = 1):
        self.jobs, self.plugins, self.train_fn = jobs, list(plugins), train_fn
        self.devices = list(devices or [])
        self.gpus_per_run = 1.0 / per_gpu if self.devices else 0.0

    def describe(self) -> str:
        if not self.devices:
            return super().describe()
        n = len(set(self.devices))
        return f"{self.jobs} runs at once on this machine's {n} GPU{'s' if n != 1 else ''}"

    def execute(self, tasks, on_done):
        import multiprocessing as mp
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        # after Ctrl-C the workers are terminated with the pool's queue semaphores still registered; the
        # tracker process then warns about them on exit, which is noise, not a leak that outlives us
        filters = [f for f in os.environ.get("PYTHONWARNINGS", "").split(",") if f]
        os.environ["PYTHONWARNINGS"] = ",".join([*filters, "ignore::UserWarning:multiprocessing.resource_tracker"])
        ctx = mp.get_context("spawn")
        pool = ProcessPoolExecutor(self.jobs, mp_context=ctx, initializer=_init_worker,
                                   initargs=(self.plugins, self.devices, ctx.Value("i", 0)))
        started, pending = {}, {}
        try:
            for t in tasks:
                f = pool.submit(train_task, t, self.train_fn)
                pending[f] = t
                started[f] = time.time()
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    t = pending.pop(f)
                    on_done(t, f.result(), time.time() - started[f])
        except BaseException:
            # workers ignore SIGINT: stop them here; each loses at most the steps since its checkpoint
            procs = list(getattr(pool, "_processes", {}).values())
            for p in procs:
                p.terminate()
            for p in procs:
                p.join()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown()


def visible_gpus(count: int, env: str | None) -> list[str]:
    """The ids of this process's ``count`` GPUs as a child process names them in CUDA_VISIBLE_DEVICES.

    ``env`` is this process's own CUDA_VISIBLE_DEVICES (None where unset): its entries, in order,
    are what torch counts; unset, the GPUs are 0..count-1.
    """
    if env is None:
        return [str(i) for i in range(count)]
    return [d.strip() for d in env.split(",") if d.strip()][:count]


def gpu_slots(devices: list[str], per_gpu: int) -> list[str]:
    """The GPU of each of ``per_gpu * len(devices)`` workers, round robin: the first workers spread."""
    return [devices[i % len(devices)] for i in range(per_gpu * len(devices))]


def _runs_on_gpu(configs: list[dict]) -> bool:
    import torch

    devices = {c.get("device", "auto") for c in configs}
    return "cuda" in devices or ("auto" in devices and torch.cuda.is_available())


def auto_jobs(configs: list[dict]) -> int:
    """One single-threaded run per core on CPU; one run at a time per GPU."""
    if _runs_on_gpu(configs):
        return 1
    return max(1, min(os.cpu_count() or 1, len(configs)))


def local_backend(jobs: int | None, n_todo: int, configs: list[dict], plugins=(), train_fn=None) -> Backend:
    """In-process for one run at a time, else a local pool; ``jobs=None`` picks :func:`auto_jobs`.

    On GPUs ``jobs`` counts runs at once per GPU and the pool spreads over every visible GPU.
    """
    per = jobs or auto_jobs(configs)
    devices = []
    if _runs_on_gpu(configs):
        import torch

        devices = gpu_slots(visible_gpus(torch.cuda.device_count(), os.environ.get("CUDA_VISIBLE_DEVICES")), per)
    jobs = max(1, min(len(devices) or per, n_todo or 1))
    if jobs == 1:
        backend = InProcess(train_fn)
        backend.gpus_per_run = 1.0 / per if devices else 0.0
        return backend
    return LocalPool(jobs, plugins, train_fn, devices[:jobs], per)


def to_train(runs, results: ResultsDir) -> list[dict]:
    """The configs of the distinct runs of ``runs`` not finished in ``results``."""
    todo = {}
    for r in runs:
        if r.hash not in todo and not results.run(r.hash).is_finished():
            todo[r.hash] = r.config
    return list(todo.values())


def _length(cfg: dict) -> float:
    """Images times depth: how long a run takes, for ordering only."""
    try:
        depth = arch_spec(cfg["arch"]).depth
    except ConfigError:
        depth = 1
    return images_seen(cfg) * depth


def run_grid(runs, out, train_fn=None, jobs: int | None = 1, force: bool = False, quiet: bool = False,
             plugins=(), backend: Backend | None = None) -> dict:
    """Train every distinct run of ``runs`` not finished in ``out/runs``; returns counts.

    Runs sharing a hash (the same config reached from two experiments) train once.
    ``train_fn(cfg, run_dir) -> summary`` defaults to :func:`ablation.train.train`; ``backend``
    defaults to :func:`local_backend` with ``jobs``.
    """
    from tqdm import tqdm

    results = ResultsDir(out)
    distinct = {}
    for r in runs:
        distinct.setdefault(r.hash, r)
    todo, skipped = [], 0
    for h, r in distinct.items():
        run = results.run(h)
        if force and run.is_finished():
            shutil.rmtree(run.path)
        if run.is_finished():
            skipped += 1
        else:
            todo.append(r)
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
        result["done"] += 1
        status = (summary or {}).get("status", "error")
        if status == "error":
            result["errors"] += 1
            tqdm.write(f"error in {r.key} ({r.hash}): {(summary or {}).get('reason')}", file=sys.stderr)
        elif status == "done":
            result["skipped"] += 1
        elif status == "busy":
            result["busy"] += 1
            tqdm.write(f"skipped {r.key} ({r.hash}): {summary.get('reason')}", file=sys.stderr)
        else:
            result["trained"] += 1
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
