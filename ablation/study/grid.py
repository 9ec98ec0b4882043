"""Train a list of runs: skip the finished ones, order the rest longest first, hand them to a backend.

A backend executes :class:`Task` objects and reports each summary as it arrives. Two ship
here: :class:`InProcess` (one run after another) and :class:`LocalPool` (worker processes on
this machine, spread over its GPUs where it has several). A cluster is one more subclass of
:class:`Backend` (:class:`ablation.study.ray_backend.RayBackend`).

A run that raises, or whose worker process dies (a segfault, the OOM killer), is recorded as
``error`` with its reason in its run folder (``error.json``) and the study goes on; a full
disk stops the study (every later run would fail the same way), keeping what is written.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Callable

from .cost import images_seen
from ..core.errors import ConfigError
from ..core.locks import ClaimLost, RunBusy
from ..nets.models import arch_spec
from .progress import Watcher
from ..core.results import DiskFull, ResultsDir

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
    """Train one task and return its summary; any exception becomes an ``error`` summary, not a crash.

    A full disk is reported with ``disk_full`` set, so that the study stops rather than fail every
    run after it the same way.
    """
    from ..training.loop import AlreadyFinished, train

    try:
        if train_fn is None:
            return train(task.config, task.run_dir, finished_ok=False, ticket=task.ticket)
        return train_fn(task.config, task.run_dir)
    except AlreadyFinished:  # another invocation finished it since this one made its list
        return {"status": "done", "reason": None}
    except (RunBusy, ClaimLost) as e:  # another process trains it: not an error of the run
        return {"status": "busy", "reason": str(e)}
    except DiskFull as e:
        return {"status": "error", "reason": str(e), "disk_full": True}
    except ConfigError as e:
        return {"status": "error", "reason": str(e)}
    except Exception as e:  # one broken run must not stop the study; its error goes in the table
        return {"status": "error", "reason": f"{type(e).__name__}: {e}"}


class Backend:
    """Executes tasks. ``execute`` calls ``on_done(task, summary, seconds)`` as each run ends and lets
    KeyboardInterrupt (and any exception of ``on_done``) through once it has stopped its workers
    (each keeps its last checkpoint).

    ``jobs`` is how many runs train at once and ``gpus_per_run`` the share of a GPU each holds
    (0 on CPU): the dry run's wall time and GPU-hours come from them. A backend is a context
    manager; leaving it releases what it started.
    """

    jobs = 1  # runs at once
    requested_jobs = None  # the --jobs asked for, which may be more than the runs left; None: ``jobs``
    gpus_per_run = 0.0

    def execute(self, tasks: list[Task], on_done: Callable) -> None:
        raise NotImplementedError

    def threads(self) -> int | None:
        """Torch threads per run: one per run when several runs were asked to share the cores, else torch's choice.

        It follows the jobs requested, not the runs left: a run's last digits depend on its thread
        count, so a resumed study's last run must train as it would have uninterrupted.
        """
        return PER_JOB_THREADS if (self.requested_jobs or self.jobs) > 1 else None

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

    def __init__(self, train_fn=None, requested_jobs: int | None = None):
        self.train_fn, self.requested_jobs = train_fn, requested_jobs

    def execute(self, tasks, on_done):
        for t in tasks:
            t0 = time.time()
            on_done(t, train_task(t, self.train_fn), time.time() - t0)


def _worker(conn, parent_pid: int, plugins, train_fn, device: str | None) -> None:
    """A worker process: train each task the parent sends, answer with its summary, stop at None."""
    if device is not None:
        # one GPU per worker, before anything initialises CUDA: the trainer's "cuda" is then that GPU
        os.environ["CUDA_VISIBLE_DEVICES"] = device
    from ..core import procs

    # Ctrl-C reaches the whole process group; the parent alone decides, and stops workers itself
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    procs.die_with_parent(parent_pid)  # a SIGKILLed runner must not leave workers training
    failed = None
    try:
        from ..nets import shortcuts

        for spec in plugins:
            shortcuts.load_plugin(spec)
    except Exception as e:
        failed = {"status": "error", "reason": f"the worker could not load its plugins: {e}"}
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        conn.send(failed or train_task(task, train_fn))


def _death(exitcode) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = str(-exitcode)
        return f"its worker process died of signal {name}"
    return f"its worker process exited with code {exitcode} before it reported"


class _Worker:
    """One worker process and the pipe to it; ``slot`` is its index in the pool's GPU slots."""

    def __init__(self, ctx, plugins, train_fn, slot: int = 0, device: str | None = None):
        self.slot = slot
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker, args=(child, os.getpid(), plugins, train_fn, device), daemon=True)
        # started with SIGINT ignored, which a new interpreter keeps: a Ctrl-C while it starts up
        # would otherwise print its traceback
        main = threading.current_thread() is threading.main_thread()
        old = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
        try:
            self.process.start()
        finally:
            if main:
                signal.signal(signal.SIGINT, old)
        child.close()

    def send(self, task) -> bool:
        try:
            self.conn.send(task)
            return True
        except (OSError, ValueError):
            return False

    def receive(self) -> dict | None:
        """The summary it sent, or None where it died first."""
        try:
            if self.conn.poll():
                return self.conn.recv()
        except (EOFError, OSError):
            pass
        return None

    def stop(self, kill: bool) -> None:
        if kill:
            self.process.terminate()
        else:
            self.send(None)
        self.process.join(None if kill else 10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


class LocalPool(Backend):
    """``jobs`` worker processes on this machine (spawned, so each has its own torch state).

    Each worker trains one task at a time. A worker that dies (a signal, a native crash) has its
    run reported as ``error`` with the signal and is replaced, so the other runs go on; workers
    end when this process ends, however it ends (:func:`ablation.core.procs.die_with_parent`).

    With ``devices`` (GPU ids, one per worker: :func:`gpu_slots`) the i-th worker sees only
    ``devices[i]``, so that runs spread over the GPUs; a replacement takes its dead worker's GPU.
    """

    def __init__(self, jobs: int, plugins=(), train_fn=None, devices: list[str] | None = None, per_gpu: int = 1,
                 requested_jobs: int | None = None):
        self.jobs, self.plugins, self.train_fn, self.requested_jobs = jobs, list(plugins), train_fn, requested_jobs
        self.devices = list(devices or [])
        self.gpus_per_run = 1.0 / per_gpu if self.devices else 0.0

    def describe(self) -> str:
        if not self.devices:
            return super().describe()
        n = len(set(self.devices))
        return f"{self.jobs} runs at once on this machine's {n} GPU{'s' if n != 1 else ''}"

    def _new_worker(self, ctx, workers: list) -> _Worker:
        held = {w.slot for w in workers}
        slot = next(i for i in range(len(workers) + 1) if i not in held)
        device = self.devices[slot % len(self.devices)] if self.devices else None
        return _Worker(ctx, self.plugins, self.train_fn, slot, device)

    def execute(self, tasks, on_done):
        import multiprocessing as mp
        from multiprocessing.connection import wait

        # a worker that dies or is stopped leaves its semaphores (tqdm's lock) registered with the
        # tracker process, which then warns about them on exit: noise, not a leak that outlives us
        filters = [f for f in os.environ.get("PYTHONWARNINGS", "").split(",") if f]
        quiet = "ignore::UserWarning:multiprocessing.resource_tracker"
        if quiet not in filters:
            os.environ["PYTHONWARNINGS"] = ",".join([*filters, quiet])
        ctx = mp.get_context("spawn")
        queue, idle, busy = list(tasks), [], {}  # busy: worker -> (task, start time)
        workers = []
        clean = False
        try:
            while queue or busy:
                while queue and len(busy) < self.jobs:
                    w = idle.pop() if idle else self._new_worker(ctx, workers)
                    if w not in workers:
                        workers.append(w)
                    task = queue.pop(0)
                    if w.process.is_alive() and w.send(task):
                        busy[w] = (task, time.time())
                    else:  # it died before it took the task (at start-up, or while it waited)
                        self._dead(w, workers)
                        on_done(task, {"status": "error", "reason": _death(w.process.exitcode)}, 0.0)
                if not busy:
                    continue
                ready = set(wait([x for w in busy for x in (w.conn, w.process.sentinel)]))
                for w in [w for w in busy if w.conn in ready or w.process.sentinel in ready]:
                    task, t0 = busy.pop(w)
                    summary = w.receive()
                    if summary is None:  # it died: its run is an error, a new worker takes its place
                        self._dead(w, workers)
                        summary = {"status": "error", "reason": _death(w.process.exitcode)}
                    else:
                        idle.append(w)
                    on_done(task, summary, time.time() - t0)
            clean = True
        finally:
            # after an interrupt workers are stopped here (they ignore SIGINT); each loses at most the
            # steps since its checkpoint
            for w in workers:
                w.stop(kill=not clean)

    @staticmethod
    def _dead(w: "_Worker", workers: list) -> None:
        w.process.join(5)  # reap it, for its exit code
        w.stop(kill=True)
        workers.remove(w)


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
    """One single-threaded run per core on CPU; one run at a time per GPU.

    On CPU not capped by the runs left: see :meth:`Backend.threads`.
    """
    if _runs_on_gpu(configs):
        return 1
    return max(1, os.cpu_count() or 1)


def local_backend(jobs: int | None, n_todo: int, configs: list[dict], plugins=(), train_fn=None) -> Backend:
    """In-process for one run at a time, else a local pool; ``jobs=None`` picks :func:`auto_jobs`.

    On GPUs ``jobs`` counts runs at once per GPU and the pool spreads over every visible GPU; one
    run left trains in this process. On CPU the pool has no more workers than runs to train, but
    each run's thread count follows the jobs requested (:meth:`Backend.threads`), so only
    ``--jobs 1`` trains in this process.
    """
    per = jobs or auto_jobs(configs)
    if _runs_on_gpu(configs):
        import torch

        devices = gpu_slots(visible_gpus(torch.cuda.device_count(), os.environ.get("CUDA_VISIBLE_DEVICES")), per)
        if devices:
            n = max(1, min(len(devices), n_todo or 1))
            if n == 1:
                backend = InProcess(train_fn, requested_jobs=len(devices))
                backend.gpus_per_run = 1.0 / per
                return backend
            return LocalPool(n, plugins, train_fn, devices[:n], per, requested_jobs=len(devices))
    if per == 1:
        return InProcess(train_fn, requested_jobs=1)
    return LocalPool(max(1, min(per, n_todo)), plugins, train_fn, requested_jobs=per)


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
    ``train_fn(cfg, run_dir) -> summary`` defaults to :func:`ablation.training.loop.train`; ``backend``
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
        summary = summary if isinstance(summary, dict) else {"status": "error", "reason": "no summary returned"}
        status = summary.get("status", "error")
        if summary.get("disk_full"):  # every later run would fail the same way: stop, keep what is written
            raise DiskFull(summary["reason"])
        result["done"] += 1
        if status == "error":
            result["errors"] += 1
            tqdm.write(f"error in {r.key} ({r.hash}): {summary.get('reason')}", file=sys.stderr)
            results.run(r.hash).write_error(str(summary.get("reason")))  # for the tables and the README
        elif status == "done":
            result["skipped"] += 1
        elif status == "busy":
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
