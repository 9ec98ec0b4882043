"""What executes runs: a :class:`Task` per run, the :class:`Backend` interface, and :class:`InProcess`.

A backend executes tasks and reports each summary as it arrives. :class:`InProcess` trains one
run after another in this process; :class:`ablation.study.pool.LocalPool` spreads runs over worker
processes and GPUs of this machine, :class:`ablation.study.ray_backend.RayBackend` over a Ray cluster.
A run that raises is an ``error`` summary with its reason, not a crash of the study.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import Enum
from typing import Callable

from ..core.errors import OneLineError
from ..core.files import DiskFull
from ..core.locks import ClaimLost, RunBusy


class Status(str, Enum):
    """What became of a task, as its summary's ``status`` says (the trainer's own ``ok`` and ``fail`` included)."""

    OK = "ok"  # trained to the end
    FAIL = "fail"  # trained, and stopped by the fail verdict (ablation.training.verdict)
    ERROR = "error"  # raised, or its worker died: the reason is in the run's error.json
    DONE = "done"  # finished by another invocation since this one made its list
    BUSY = "busy"  # another process trains it now


# Measured with `--variants all --preset quick` on a 2-core CPU: two single-threaded runs at once
# beat one run on two threads (see results/reference/quick-amd-epyc/README.md), as small convolutions scale poorly
# across threads; on a GPU one run at a time keeps the device busy.
PER_JOB_THREADS = 1


@dataclass
class Task:
    """One run to train: where it goes and with which config (the runner's threads and quiet set)."""

    key: str  # experiment:variant:seed, for messages
    hash: str
    config: dict
    run_dir: str
    ticket: str | None = None  # this study's name for the task, kept by a cluster's retries (locks.RunClaim)


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
        return {"status": Status.DONE.value, "reason": None}
    except (RunBusy, ClaimLost) as e:  # another process trains it: not an error of the run
        return {"status": Status.BUSY.value, "reason": str(e)}
    except DiskFull as e:
        return {"status": Status.ERROR.value, "reason": str(e), "disk_full": True}
    except OneLineError as e:  # bad input, a file that does not read or write: its one line says it all
        return {"status": Status.ERROR.value, "reason": str(e)}
    except Exception as e:  # one broken run must not stop the study; its error goes in the table
        return {"status": Status.ERROR.value, "reason": f"{type(e).__name__}: {e}"}


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
