"""Who may write where: a run's claim (one trainer per run at a time) and the lock of a folder's shared files.

A *claim* is a file ``claim.json`` in the run folder, created with ``O_CREAT | O_EXCL`` (atomic on
local disks and on NFS), naming its owner (host, pid, a random token). While the run trains, a
thread refreshes the claim's modification time every :data:`HEARTBEAT_S` seconds. Another process
that finds the claim takes it over only when it is stale: its owner is a dead process on the
same host, or its heartbeat is older than :data:`STALE_S` seconds (several heartbeats, so a
modest clock skew between machines on shared storage does not count as death). A heartbeat stamped
in the future (another host's clock runs ahead) tells no age by comparing clocks: such a claim is
watched instead, and is stale once it has not changed for STALE_S seconds of the judge's own
monotonic clock, which cannot run backwards (:func:`read_claim`'s ``still_s``).

The owner checks, before each write, that the claim is still its own: a trainer whose claim was
taken over (it was paused for longer than STALE_S) stops without writing, so two processes never
train the same run at the same time.

Taking over is judged and done under a short ``fcntl.lockf`` lock of a sidecar file, so a
contender that judged an old claim never removes a newer one.

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
from .files import write_failed
from .procs import pid_alive
from .layout import CLAIM, FOLDER_LOCK, TAKEOVER_LOCK

HEARTBEAT_S = 10.0
STALE_S = 90.0


class RunBusy(ConfigError):
    """Another live process holds the run's claim."""


class ClaimLost(RuntimeError):
    """This process's claim was taken over (it was presumed dead); it must stop writing."""


# claim file -> (its modification stamp and text when first seen so, time.monotonic() then): how long this
# process has seen each claim unchanged
_WATCHED: dict[str, tuple[tuple, float]] = {}


def read_claim(run_dir) -> dict | None:
    """The claim of ``run_dir`` with its age in seconds (``age_s``, by this host's clock; negative where the
    heartbeat is stamped in the future) and ``still_s``, the seconds of this process's monotonic clock for
    which it has been seen unchanged; None if it has none."""
    path = Path(run_dir) / CLAIM
    text = None
    try:
        text = path.read_text()
        owner = json.loads(text)
        mtime = path.stat().st_mtime_ns
    except FileNotFoundError:
        return None
    except (OSError, ValueError):  # torn or damaged: its mtime still says whether anyone keeps it alive
        try:
            owner, mtime = {}, path.stat().st_mtime_ns
        except OSError:
            return None
    now, stamp = time.monotonic(), (mtime, text)
    seen = _WATCHED.get(str(path))
    if seen is None or seen[0] != stamp:
        _WATCHED[str(path)] = seen = (stamp, now)
    ages = {"age_s": time.time() - mtime / 1e9, "still_s": now - seen[1]}
    return {**owner, **ages} if isinstance(owner, dict) else ages


def is_stale(claim: dict) -> bool:
    if claim.get("host") == socket.gethostname() and isinstance(claim.get("pid"), int):
        if not pid_alive(claim["pid"]):
            return True
    if claim["age_s"] < 0:  # stamped ahead of this host's clock: only watching it says whether it beats
        return claim.get("still_s", 0.0) > STALE_S
    return claim["age_s"] > STALE_S


def in_future(claim: dict) -> bool:
    return claim["age_s"] < 0


def describe(claim: dict) -> str:
    who = f"pid {claim.get('pid', '?')} on {claim.get('host', '?')}"
    if in_future(claim):
        return (f"{who}, heartbeat stamped {-claim['age_s']:.0f}s ahead of this host's clock, unchanged for "
                f"{claim.get('still_s', 0.0):.0f}s")
    return f"{who}, heartbeat {claim['age_s']:.0f}s ago"


class RunClaim:
    """This process's claim on one run folder; a context manager that heartbeats and releases."""

    def __init__(self, run_dir, ticket: str | None = None, device: str | None = None):
        self.path = Path(run_dir) / CLAIM
        self.token = uuid.uuid4().hex
        # ticket: the driver's name for this task, the same on every retry (see wait_for_earlier_attempt);
        # device: where it trains, for the driver's progress display
        self.owner = {"host": socket.gethostname(), "pid": os.getpid(), "token": self.token,
                      "since": time.strftime("%Y-%m-%dT%H:%M:%S"), "ticket": ticket, "device": device}
        self._stop = threading.Event()
        self._thread = None
        self.lost = False

    def acquire(self) -> "RunClaim":
        """Take the claim, taking over a stale one; RunBusy if a live process holds it.

        A claim stamped in the future is watched, up to STALE_S: if it changes, its owner is alive
        (RunBusy); if not, it is stale and taken over.
        """
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise write_failed(self.path.parent, e) from None
        tries = 0
        while tries < 3:
            tries += 1
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                # judging a claim stale and removing it is one step under the takeover lock: else a
                # contender that judged the *old* claim could remove the fresh one of a faster contender
                watching = False
                with _file_lock(self.path.with_name(TAKEOVER_LOCK)):
                    held = read_claim(self.path.parent)
                    if held is None:
                        continue  # released between our two looks
                    if is_stale(held):
                        self.path.unlink(missing_ok=True)
                    elif in_future(held):
                        watching = True
                    else:
                        raise RunBusy(f"{self.path.parent} is being trained by another process ({describe(held)})")
                if watching:  # outside the lock: look again in a while, without counting a try
                    tries -= 1
                    if not self._watch(held):
                        raise RunBusy(f"{self.path.parent} is being trained by another process ({describe(held)})")
                continue
            except OSError as e:
                raise write_failed(self.path, e) from None
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(self.owner))
            self._thread = threading.Thread(target=self._beat, name="claim-heartbeat", daemon=True)
            self._thread.start()
            return self
        raise RunBusy(f"{self.path.parent}: could not take its claim (contended)")

    def _watch(self, held: dict) -> bool:
        """Wait while a future-stamped claim stays as it is; False as soon as it changes (its owner beats)."""
        before = held["still_s"]
        time.sleep(min(HEARTBEAT_S / 2, max(STALE_S - before, 0.0) + 0.05))
        now = read_claim(self.path.parent)
        return now is None or now["still_s"] > before

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


def wait_for_earlier_attempt(run_dir, ticket: str, poll_s: float | None = None) -> None:
    """Wait while ``run_dir`` is claimed by an earlier attempt of the same task (the same ``ticket``).

    A cluster retries a task whose worker or node died; the dead attempt's claim stays behind. On
    the same host a dead pid frees it at once; from another host only its heartbeat's age can,
    after :data:`STALE_S`. An attempt that is not dead but slow (a partitioned node) keeps its
    heartbeat fresh and so holds the run until it ends: the retry waits for it rather than train
    the run a second time. A claim of another task (another driver) is not waited for: the
    trainer reports it as busy.
    """
    poll_s = poll_s or HEARTBEAT_S / 2
    while True:
        held = read_claim(run_dir)
        if held is None or held.get("ticket") != ticket or is_stale(held):
            return
        time.sleep(poll_s)


def folder_lock(folder, timeout_s: float = 600.0):
    """Hold the exclusive lock of ``folder``'s shared files (manifest, invocation log, report)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a folder that os.access called writable (NFS squashing root, a read-only mount)
        raise write_failed(folder, e) from None
    return _file_lock(folder / FOLDER_LOCK, timeout_s, f"{folder} stayed locked by another invocation")


@contextlib.contextmanager
def _file_lock(path: Path, timeout_s: float = 600.0, what: str | None = None):
    """An exclusive ``fcntl.lockf`` lock of ``path`` (created if absent, never removed; never through a link)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as e:
        raise write_failed(path, e) from None
    with os.fdopen(fd, "r+") as f:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EACCES, errno.EAGAIN):
                    raise
                if time.monotonic() > deadline:
                    raise ConfigError(f"{what or path} for {timeout_s:.0f}s") from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.lockf(f, fcntl.LOCK_UN)
