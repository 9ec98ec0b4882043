"""Whether a folder given for results may be used: a name the file system takes, no dangling link, no link out.

A folder named by ``--out`` (or a run's ``out=``) holds results of this package or nothing else
(:func:`check_folder`); its components are names the file system takes (:func:`check_names`); and
nothing is written through a symbolic link out of it (:func:`check_links`). The names it checks against
are :mod:`ablation.core.layout`'s.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from .errors import ConfigError
from .layout import (FOLDER_LOCK, INVOCATIONS, PLOTS, RESULTS_FILES, RUN_FILES, RUNS, STORAGE_CHECK, TABLES,
                     TAKEOVER_LOCK)


def check_links(out, option: str) -> None:
    """ConfigError where a folder of the results folder ``out`` (``runs/``, a run's folder, ``tables/``, ``plots/``)
    is a symbolic link out of it: every write stays inside ``--out``. Files are safe without this check: they are
    replaced, not followed (:func:`ablation.core.files.write_atomic`), or opened without following a link."""
    out = Path(out)
    if not out.is_dir():
        return
    root = os.path.realpath(out)
    # the folders written into, and the two files opened in place (the invocation log and the lock)
    folders = [out / RUNS, out / TABLES, out / PLOTS, out / INVOCATIONS, out / FOLDER_LOCK]
    if (out / RUNS).is_dir() and not (out / RUNS).is_symlink():
        with os.scandir(out / RUNS) as entries:
            folders += [Path(e.path) for e in entries if e.is_symlink()]
    for folder in folders:
        if not folder.is_symlink():
            continue
        target = os.path.realpath(folder)
        if os.path.commonpath([root, target]) != root:
            raise ConfigError(f"{option}: {folder} is a symbolic link to {target}, outside the results folder; its "
                              f"files are written inside it only: remove the link, or name another folder")


def _ours_to_ignore(name: str) -> bool:
    # the lock, a cluster's storage check (another driver may be starting on the folder) and temporaries
    return name in (FOLDER_LOCK, TAKEOVER_LOCK) or name.startswith(STORAGE_CHECK + ".") or \
        (name.startswith(".") and ".tmp" in name)


def check_names(path, option: str) -> None:
    """ConfigError where a component of ``path`` is longer than the file system allows (NAME_MAX bytes)."""
    path = Path(path)
    try:
        limit = os.pathconf(next((p for p in [path, *path.parents] if p.is_dir()), Path(".")), "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    for part in path.parts:
        size = len(os.fsencode(part))
        if size > limit:
            raise ConfigError(f"{option} {part[:20]}...: a name of {size} bytes, more than the {limit} the file "
                              f"system allows; choose a shorter name")


def check_not_dangling(path: Path, option: str) -> None:
    """ConfigError where ``path`` is a symbolic link to nothing, or one of a loop of links."""
    if not path.is_symlink():
        return
    try:
        os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ConfigError(f"{option} {path} is a loop of symbolic links; remove it or name another folder") \
                from None
        raise ConfigError(f"{option} {path} is a symbolic link to {os.readlink(path)}, which does not exist; "
                          f"create that folder or name another") from None


def check_folder(path, kind: str, option: str) -> Path:
    """``path`` as a folder for ``kind`` ("results" or "run"), or ConfigError in one line; creates nothing.

    Refused: an empty name; a file; a folder that cannot be created or written; and a folder that
    holds other files and none of ours (``--out docs`` must not replace docs/README.md).
    """
    if path is None or not str(path).strip():
        raise ConfigError(f"{option} is empty; name a folder")
    path = Path(path)
    check_names(path, option)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option} {path} is a file, not a folder")
    ancestor = path
    while not ancestor.exists():
        check_not_dangling(ancestor, option)
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ConfigError(f"{option} {path} cannot be created: {ancestor} is a file")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        why = "read-only" if ancestor == path else f"{ancestor} is read-only"
        raise ConfigError(f"{option} {path} cannot be written: {why}")
    if path.is_dir():
        try:
            entries = [e for e in os.listdir(path) if not _ours_to_ignore(e)]
        except OSError as e:
            raise ConfigError(f"{option} {path} cannot be read: {e.strerror}") from None
        ours = RESULTS_FILES if kind == "results" else RUN_FILES
        if entries and not any(name in ours for name in entries):
            what = "results folder (no manifest.json, no runs/)" if kind == "results" else "run folder (no config.json)"
            raise ConfigError(f"{option} {path} holds other files and is not a {what}; choose a new or empty folder")
    return path
