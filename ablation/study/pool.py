"""A pool of worker processes on this machine, spread over its GPUs where it has several, and its sizing.

:class:`LocalPool` trains each task in a worker process of its own (spawned, so each has its own
torch state); a worker that dies (a signal, a native crash) has its run reported as ``error`` with
the signal and is replaced. :func:`local_backend` picks in-process or a pool for ``--jobs``.
"""

from __future__ import annotations

import os
import signal
import threading
import time

from ..core.errors import ConfigError
from .backends import Backend, InProcess, Status, train_task


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
        from ..nets import registry

        for spec in plugins:
            registry.load_plugin(spec)
    except Exception as e:
        failed = {"status": Status.ERROR.value, "reason": f"the worker could not load its plugins: {e}"}
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
                        on_done(task, {"status": Status.ERROR.value, "reason": _death(w.process.exitcode)}, 0.0)
                if not busy:
                    continue
                ready = set(wait([x for w in busy for x in (w.conn, w.process.sentinel)]))
                for w in [w for w in busy if w.conn in ready or w.process.sentinel in ready]:
                    task, t0 = busy.pop(w)
                    summary = w.receive()
                    if summary is None:  # it died: its run is an error, a new worker takes its place
                        self._dead(w, workers)
                        summary = {"status": Status.ERROR.value, "reason": _death(w.process.exitcode)}
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
    ids = [d.strip() for d in env.split(",") if d.strip()][:count]
    # each worker is handed one of these as its whole CUDA_VISIBLE_DEVICES: an entry CUDA would not read, or one
    # GPU twice, would leave a worker without its GPU or two workers sharing one
    bad = [d for d in ids if not (d.isdigit() or d.startswith(("GPU-", "MIG-")))]
    if bad or len(set(ids)) < len(ids):
        why = f"{bad[0]!r} is neither a GPU's index nor its UUID" if bad else "it names one GPU twice"
        raise ConfigError(f"CUDA_VISIBLE_DEVICES={env!r}: {why}; set it to GPU indices such as 0,1")
    return ids


def gpu_slots(devices: list[str], per_gpu: int) -> list[str]:
    """The GPU of each of ``per_gpu * len(devices)`` workers, round robin: the first workers spread."""
    return [devices[i % len(devices)] for i in range(per_gpu * len(devices))]


def _runs_on_gpu(configs: list[dict]) -> bool:
    import torch

    devices = {c.get("device", "auto") for c in configs}
    return "cuda" in devices or ("auto" in devices and torch.cuda.is_available())


def cores() -> int:
    """The CPU cores this process may run on (its affinity, which a container or ``taskset`` may narrow)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def auto_jobs(configs: list[dict]) -> int:
    """One single-threaded run per core on CPU; one run at a time per GPU.

    On CPU not capped by the runs left: see :meth:`Backend.threads`.
    """
    if _runs_on_gpu(configs):
        return 1
    return cores()


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
    if jobs is not None and jobs > cores():
        # more single-threaded runs than cores would not run at once, only take turns, and the dry run's wall time
        # would count them as running at once
        raise ConfigError(f"--jobs {jobs} is more than the {cores()} runs this machine trains at once on CPU (one "
                          f"per core, one thread each); use --jobs {cores()} or fewer, or --jobs auto")
    if per == 1:
        return InProcess(train_fn, requested_jobs=1)
    return LocalPool(max(1, min(per, n_todo)), plugins, train_fn, requested_jobs=per)
