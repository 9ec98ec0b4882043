"""Who may write where: a run's claim (one trainer per run at a time) and the lock of a folder's shared files.

A *claim* is a file ``claim.json`` in the run folder, created with ``O_CREAT | O_EXCL`` (atomic on
local disks and on NFS), naming its owner (host, pid, a random token). While the run trains, a
thread refreshes the claim's modification time every :data:`HEARTBEAT_S` seconds. Another process
that finds the claim takes it over only when it is stale: its owner is a dead process on the
same host, or its heartbeat is older than :data:`STALE_S` seconds (several heartbeats, so a
modest clock skew between machines on shared storage does not count as death). Taking over is a
rename of the stale file to a unique name, which only one of several contenders can win.

The owner checks, before each write, that the claim is still its own: a trainer whose claim was
taken over (it was paused for longer than STALE_S) stops without writing, so two processes never
train the same run at the same time.

The *folder lock* serialises the read-modify-write of a results folder's shared files (the
manifest, the invocation log, the report) with ``fcntl.lockf``, which NFS supports through its
lock manager.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path

from .errors import ConfigError
from .procs import pid_alive
from .results import CLAIM, FOLDER_LOCK

HEARTBEAT_S = 10.0
STALE_S = 90.0


class RunBusy(ConfigError):
    """Another live process holds the run's claim."""


class ClaimLost(RuntimeError):
    """This process's claim was taken over (it was presumed dead); it must stop writing."""


def read_claim(run_dir) -> dict | None:
    """The claim of ``run_dir`` with its age in seconds (``age_s``), or None if it has none."""
    path = Path(run_dir) / CLAIM
    try:
        owner = json.loads(path.read_text())
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return None
    except (OSError, ValueError):  # torn or damaged: its mtime still says whether anyone keeps it alive
        try:
            owner, age = {}, time.time() - path.stat().st_mtime
        except OSError:
            return None
    return {**owner, "age_s": age} if isinstance(owner, dict) else {"age_s": age}


def is_stale(claim: dict) -> bool:
    if claim.get("host") == socket.gethostname() and isinstance(claim.get("pid"), int):
        if not pid_alive(claim["pid"]):
            return True
    return claim["age_s"] > STALE_S


def describe(claim: dict) -> str:
    return f"pid {claim.get('pid', '?')} on {claim.get('host', '?')}, heartbeat {claim['age_s']:.0f}s ago"


class Claim:
    """This process's claim on one run folder; a context manager that heartbeats and releases."""

    def __init__(self, run_dir):
        self.path = Path(run_dir) / CLAIM
        self.token = uuid.uuid4().hex
        self.owner = {"host": socket.gethostname(), "pid": os.getpid(), "token": self.token,
                      "since": time.strftime("%Y-%m-%dT%H:%M:%S")}
        self._stop = threading.Event()
        self._thread = None
        self.lost = False

    def acquire(self) -> "Claim":
        """Take the claim, taking over a stale one; RunBusy if a live process holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                held = read_claim(self.path.parent)
                if held is None:
                    continue  # released between our two looks
                if not is_stale(held):
                    raise RunBusy(f"{self.path.parent} is being trained by another process ({describe(held)})")
                tomb = self.path.with_name(f".{CLAIM}.stale{uuid.uuid4().hex[:8]}")
                try:
                    os.rename(self.path, tomb)  # only one contender's rename finds the file
                except FileNotFoundError:
                    continue
                tomb.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(self.owner))
            self._thread = threading.Thread(target=self._beat, name="claim-heartbeat", daemon=True)
            self._thread.start()
            return self
        raise RunBusy(f"{self.path.parent}: could not take its claim (contended)")

    def _beat(self):
        while not self._stop.wait(HEARTBEAT_S):
            if not self.check():
                return
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def check(self) -> bool:
        """Whether the claim is still this process's; sets :attr:`lost` when it is not."""
        if not self.lost:
            try:
                self.lost = json.loads(self.path.read_text()).get("token") != self.token
            except FileNotFoundError:
                self.lost = True
            except (OSError, ValueError):
                pass  # a read racing a takeover's write: the next check decides
        return not self.lost

    def ensure(self) -> None:
        """Raise ClaimLost unless the claim is still this process's: call before each write."""
        if not self.check():
            raise ClaimLost(f"{self.path.parent} was taken over by another process; this one stops")

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.check():
            self.path.unlink(missing_ok=True)

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


@contextlib.contextmanager
def folder_lock(folder, timeout_s: float = 600.0):
    """Hold the exclusive lock of ``folder``'s shared files (manifest, invocation log, report)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / FOLDER_LOCK, "a+") as f:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EACCES, errno.EAGAIN):
                    raise
                if time.monotonic() > deadline:
                    raise ConfigError(f"{folder} stayed locked by another invocation for {timeout_s:.0f}s") from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.lockf(f, fcntl.LOCK_UN)
