"""Files written atomically and read defensively: the only code that writes a file of results or cache.

Every file that holds results is written through a temporary beside it and a rename, so a kill at any
moment leaves the old file or the new one, never half of one. A write that fails (a full disk, a
read-only folder) removes its temporary and raises :class:`WriteFailed` (:class:`DiskFull` for a full
disk), one line naming the file; temporaries left by a kill are swept by the next writer of their
folder. A file that exists but does not read is a :class:`CorruptFile` naming it.
"""

from __future__ import annotations

import errno
import io
import json
import os
import time
from pathlib import Path

from .errors import OneLineError
from .procs import pid_alive


class WriteFailed(OneLineError):
    """A file could not be written (a read-only folder, a full disk): one line naming it.

    Not a :class:`~ablation.core.errors.ConfigError`: the input was fine, the machine refused; the
    command line still shows it as one line and exit 2, and the same command resumes once it is fixed.
    """


class DiskFull(WriteFailed):
    """No space left on the device while writing a file; what was written before stays valid."""


class CorruptFile(OneLineError):
    """A file the results depend on exists but does not read; one line naming it, with what to do."""


def write_failed(path, exc: BaseException) -> WriteFailed:
    """The one-line error for an OSError met writing ``path``: DiskFull for a full disk."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFull(f"no space left writing {path}; free some space and run the same command again")
    why = exc.strerror if isinstance(exc, OSError) and exc.strerror else f"{type(exc).__name__}: {exc}"
    return WriteFailed(f"cannot write {path}: {why}")


def temporary_for(path) -> Path:
    """The hidden temporary ``.<name>.tmp<pid>`` beside ``path``: per process, and swept after a kill."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def write_atomic(path, data) -> None:
    """Write text (str, as UTF-8 whatever the locale) or bytes (any bytes-like object) to ``path`` through a
    temporary and a rename. A path that came from the file system undecoded (Python's surrogate escapes,
    e.g. a folder named in another encoding) is written back as the bytes it was."""
    if isinstance(data, str):
        data = data.encode("utf-8", errors="surrogateescape")
    write_atomic_with(path, lambda tmp: tmp.write_bytes(data))


def read_text(path) -> str:
    """The UTF-8 text of ``path``; CorruptFile naming it and the first bad byte where it is not UTF-8."""
    path = Path(path)
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CorruptFile(f"{path} is not UTF-8 text (byte {e.start}: {raw[e.start:e.start + 1]!r}); save it as "
                          f"UTF-8") from None


def write_atomic_with(path, write) -> None:
    """``write(tmp_path)`` fills a temporary (``savefig``), then it replaces ``path``.

    Any failure removes the temporary; an OSError becomes :class:`WriteFailed` (:class:`DiskFull`).
    """
    path = Path(path)
    tmp = temporary_for(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        os.replace(tmp, path)
    except OSError as e:
        raise write_failed(path, e) from None
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass


def save_torch(path, obj) -> None:
    """``torch.save`` of ``obj`` to ``path``, atomically.

    torch.save reports a full disk as ``[enforce fail at inline_container.cc] unexpected pos``, a
    RuntimeError that does not say why; serialising into memory first and writing the bytes here
    turns it into the OSError (ENOSPC) that it is.
    """
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    write_atomic(path, buf.getbuffer())


def _pid_of_temporary(name: str) -> int | None:
    tail = name.rpartition(".tmp")[2]
    return int(tail) if tail.isdigit() else None


def sweep_temporaries(folder, only_dead: bool = False, max_age_s: float = 3600.0) -> None:
    """Remove temporaries that a kill or a failed write left behind.

    With ``only_dead`` (a folder that other processes may be writing into without a lock, such
    as the dataset cache), a temporary goes only when its writer is no longer alive on this
    host, or when it is older than ``max_age_s`` (a writer on another host of shared storage).
    """
    for stale in Path(folder).glob(".*.tmp*"):
        if only_dead:
            pid = _pid_of_temporary(stale.name)
            try:
                age = time.time() - stale.stat().st_mtime
            except OSError:
                continue
            if pid == os.getpid() or (pid is not None and pid_alive(pid) and age < max_age_s):
                continue
        try:
            stale.unlink(missing_ok=True)
        except OSError:
            pass


def read_json(path):
    """The JSON in ``path``, or None where it is absent or unreadable (a file half-written by another tool)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def read_json_strict(path, what: str = "") -> dict | None:
    """The JSON object in ``path``; None where the file is absent; CorruptFile naming it where it does not read."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise CorruptFile(f"cannot read {path}: {e.strerror or e}") from None
    try:
        value = json.loads(raw)
    except ValueError:  # not UTF-8, or not JSON
        value = None
    if not isinstance(value, dict):
        raise CorruptFile(f"{path} is unreadable (not a JSON object){what}")
    return value


def read_jsonl(path) -> list[dict]:
    """Every complete JSON object line of ``path`` (none if absent); torn or foreign lines are skipped."""
    try:
        text = Path(path).read_bytes().decode("utf-8", errors="replace")
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            out.append(record)
    return out


def append_jsonl(path, record: dict) -> None:
    """Append one line; a torn last line (a kill in mid-write) is first closed, so this one stays whole."""
    path = Path(path)
    line = json.dumps(record) + "\n"
    try:
        # not through a symbolic link: a log of the results folder is written inside it only
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "ab+") as f:
            if f.tell() > 0:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    line = "\n" + line
            f.write(line.encode())
    except OSError as e:
        raise write_failed(path, e) from None
