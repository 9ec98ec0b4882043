"""The layout of a results folder and the only code that reads or writes its files.

    <out>/manifest.json          which run (hash) holds which experiment row and seed
    <out>/invocations.jsonl      one line per invocation of the runner: command, wall time, machine
    <out>/runs/<hash>/           one run: config.json, history.jsonl, checkpoint.pt, summary.json,
                                 claim.json while a process trains it and .claim.lock (ablation.core.locks),
                                 error.json when its last attempt raised or its worker died,
                                 TensorBoard's events.out.tfevents.* with tensorboard=true
    <out>/.lock                  the lock of the shared files above and below (ablation.core.locks)
    <out>/.storage-check.<token>[.<node>]   while a cluster study runs: the driver's token, and each
                                 node's reply, which show that every node sees this folder
    <out>/runs.csv, rows.csv, history.csv, tables/, plots/, README.md   built by the report
    <out>/lesion.csv             the lesion study of the trained weights (ablation.reporting.analysis), kept
                                 so that results without their run folders still show it
    <out>/notes.md               the user's own notes, kept in the README across rebuilds

Every file that holds results is written atomically (a temporary beside it, then a rename),
so a kill at any moment leaves the old file or the new one, never half of one. A write that
fails (a full disk, a read-only folder) removes its temporary and raises :class:`WriteFailed`
(:class:`DiskFull` for a full disk), one line naming the file; temporaries left by a kill are
swept by the next writer of their folder. The report reads the whole folder as pandas tables
through :func:`load_tables`.

An unreadable ``summary.json`` means the run has not finished (it is trained again, from its
checkpoint); any other unreadable file the results depend on is a :class:`CorruptFile` error
naming it.
"""

from __future__ import annotations

import errno
import io
import json
import math
import os
import time
from pathlib import Path

from .errors import ConfigError
from .procs import pid_alive

RUNS = "runs"
MANIFEST = "manifest.json"
INVOCATIONS = "invocations.jsonl"
RUNS_CSV, ROWS_CSV, HISTORY_CSV, LESION_CSV = "runs.csv", "rows.csv", "history.csv", "lesion.csv"
TABLES, PLOTS = "tables", "plots"
README, NOTES = "README.md", "notes.md"

CONFIG, HISTORY, CHECKPOINT, SUMMARY = "config.json", "history.jsonl", "checkpoint.pt", "summary.json"
CLAIM, FOLDER_LOCK, TAKEOVER_LOCK = "claim.json", ".lock", ".claim.lock"
STORAGE_CHECK = ".storage-check"
ERROR = "error.json"
RUN_FILES = (CONFIG, HISTORY, CHECKPOINT, SUMMARY, CLAIM, ERROR)  # what makes a folder a run folder
RESULTS_FILES = (MANIFEST, INVOCATIONS, RUNS)  # what makes a folder a results folder


class WriteFailed(ConfigError):
    """A results file could not be written (a read-only folder, a full disk): one line naming it."""


class DiskFull(WriteFailed):
    """No space left on the device while writing a file; what was written before stays valid."""


class CorruptFile(ConfigError):
    """A file the results depend on exists but does not read; one line naming it."""


def _write_failed(path, exc: BaseException) -> WriteFailed:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFull(f"no space left writing {path}; free some space and run the same command again")
    why = exc.strerror if isinstance(exc, OSError) and exc.strerror else f"{type(exc).__name__}: {exc}"
    return WriteFailed(f"cannot write {path}: {why}")


# --- atomic writes ---------------------------------------------------------------------------


def temporary_for(path) -> Path:
    """The hidden temporary ``.<name>.tmp<pid>`` beside ``path``: per process, and swept after a kill."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def write_atomic(path, data) -> None:
    """Write text (str) or bytes (any bytes-like object) to ``path`` through a temporary and a rename."""
    write_atomic_with(path, lambda tmp: tmp.write_text(data) if isinstance(data, str) else tmp.write_bytes(data))


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
        raise _write_failed(path, e) from None
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
        text = Path(path).read_text(errors="replace")
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
        with open(path, "ab+") as f:
            if f.tell() > 0:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    line = "\n" + line
            f.write(line.encode())
    except OSError as e:
        raise _write_failed(path, e) from None


# --- one run ---------------------------------------------------------------------------------


class RunDir:
    """One run's folder: its config, its history (one line per evaluation point), checkpoint and summary."""

    def __init__(self, path):
        self.path = Path(path)
        self.config = self.path / CONFIG
        self.history = self.path / HISTORY
        self.checkpoint = self.path / CHECKPOINT
        self.summary = self.path / SUMMARY

    @property
    def name(self) -> str:
        return self.path.name

    def is_finished(self) -> bool:
        """A readable summary: an unreadable one means the run has not finished (it trains again)."""
        return self.read_summary() is not None

    def is_started(self) -> bool:
        """Something was trained: a checkpoint, a history point or a summary exists."""
        return any(p.exists() for p in (self.checkpoint, self.history, self.summary))

    def read_config(self) -> dict | None:
        """The run's config; None where there is none; CorruptFile naming the file where it does not read."""
        return read_json_strict(self.config, "; delete the run folder to train that run again")

    def read_summary(self) -> dict | None:
        """The summary, or None where it is absent or unreadable (the run is then not finished)."""
        summary = read_json(self.summary)
        return summary if isinstance(summary, dict) else None

    def read_history(self) -> list[dict]:
        return read_jsonl(self.history)

    def read_error(self) -> dict | None:
        """Why the run's last attempt failed (``reason``, ``when``), or None."""
        record = read_json(self.path / ERROR)
        return record if isinstance(record, dict) and isinstance(record.get("reason"), str) else None

    def write_error(self, reason: str) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path / ERROR, json.dumps({"reason": reason,
                                                    "when": time.strftime("%Y-%m-%dT%H:%M:%S")}, indent=2))

    def clear_error(self) -> None:
        (self.path / ERROR).unlink(missing_ok=True)

    def write_config(self, cfg: dict) -> None:
        write_atomic(self.config, json.dumps(cfg, indent=2))

    def write_summary(self, summary: dict) -> None:
        write_atomic(self.summary, json.dumps(summary, indent=2))

    def save_checkpoint(self, checkpoint: dict) -> None:
        save_torch(self.checkpoint, checkpoint)

    def append_history(self, record: dict) -> None:
        append_jsonl(self.history, record)

    def keep_history(self, n: int) -> None:
        """Keep the first ``n`` history lines: points recorded after the checkpoint are recorded again."""
        if self.history.exists():
            lines = self.history.read_text().splitlines(keepends=True)
            if len(lines) != n:
                write_atomic(self.history, "".join(lines[:n]))

    def sweep(self) -> None:
        """Remove temporaries of killed writers; only the claim's holder calls this, so all are stale."""
        sweep_temporaries(self.path)


# --- the whole folder ------------------------------------------------------------------------


class ResultsDir:
    """A results folder: its runs, the manifest, the invocation log and what the report builds."""

    def __init__(self, path):
        self.path = Path(path)
        self.runs = self.path / RUNS
        self.manifest = self.path / MANIFEST
        self.invocations = self.path / INVOCATIONS
        self.runs_csv, self.rows_csv, self.history_csv, self.lesion_csv = (
            self.path / n for n in (RUNS_CSV, ROWS_CSV, HISTORY_CSV, LESION_CSV))
        self.tables, self.plots = self.path / TABLES, self.path / PLOTS
        self.readme, self.notes = self.path / README, self.path / NOTES

    def run(self, run_hash: str) -> RunDir:
        return RunDir(self.runs / run_hash)

    def finished_runs(self) -> list[RunDir]:
        return [run for run in (RunDir(p.parent) for p in sorted(self.runs.glob(f"*/{SUMMARY}"))) if run.is_finished()]

    def has_manifest(self) -> bool:
        return self.manifest.is_file()

    def read_manifest(self, missing_ok: bool = False) -> dict | None:
        """The manifest; ConfigError naming the file where it is unreadable, or absent (unless ``missing_ok``)."""
        if not self.has_manifest() and missing_ok:
            return None
        if not self.has_manifest():
            raise ConfigError(f"{self.path} holds no results (no {MANIFEST}); run python -m ablation.run first")
        manifest = read_json(self.manifest)
        if not _is_manifest(manifest):
            raise CorruptFile(f"{self.manifest} is unreadable or not a results manifest; delete it and run the "
                              f"same python -m ablation.run command again to rebuild it (finished runs are kept)")
        return manifest

    def write_manifest(self, manifest: dict) -> None:
        write_atomic(self.manifest, json.dumps(manifest, indent=2, default=str))

    def read_invocations(self) -> list[dict]:
        """The invocation log; torn lines and records without the fields the README shows are skipped."""
        return [i for i in read_jsonl(self.invocations) if INVOCATION_FIELDS <= set(i)]

    def log_invocation(self, entry: dict) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise _write_failed(self.path, e) from None
        append_jsonl(self.invocations, entry)

    def storage_check(self, token: str, node: str | None = None) -> Path:
        """The driver's token file (``node`` None) or a node's reply to it (ablation.study.ray_backend)."""
        return self.path / ".".join([STORAGE_CHECK, token, *([node] if node else [])])

    def sweep(self) -> None:
        """Remove temporaries of the report's files; call it holding the folder lock (ablation.core.locks)."""
        for folder in (self.path, self.tables, self.plots):
            if folder.is_dir():
                sweep_temporaries(folder)

    def table(self, experiment: str) -> Path:
        return self.tables / f"{experiment}.md"

    def read_notes(self) -> str | None:
        return self.notes.read_text() if self.notes.is_file() else None


# --- the whole folder as tables (pandas) ------------------------------------------------------

SUMMARY_FIELDS = ("status", "reason", "final_test_error", "best_test_error", "final_train_error", "params", "flops",
                  "iterations", "epochs", "time_s", "images_per_s", "device", "threads")
CONFIG_FIELDS = ("arch", "shortcut", "shortcut_args", "order", "width", "dataset", "image_size", "train_subset",
                 "batch_size", "steps", "schedule_unit", "optimizer", "lr")
HISTORY_FIELDS = ("iteration", "epoch", "lr", "train_loss", "train_error", "test_loss", "test_error", "wall_time",
                  "images_per_s", "gate_mean", "grad_norms")
JSON_FIELDS = ("gate_mean", "grad_norms")  # kept in history.csv as JSON text


def load_tables(out) -> tuple[dict, "pd.DataFrame", "pd.DataFrame"]:
    """(manifest, runs table, history table) of the results folder ``out``: one line per run and seed
    (its summary and config fields), one per history point. A run whose folder is absent comes from
    the ``runs.csv`` and ``history.csv`` an earlier report wrote."""
    import pandas as pd

    results = ResultsDir(out)
    manifest = results.read_manifest()
    if not manifest["runs"]:
        raise ConfigError(f"{results.manifest} lists no runs; run python -m ablation.run --out {out} first")
    stored = {}  # runs.csv and history.csv of an earlier report, read only where a run folder is absent

    def stored_tables():
        if not stored:
            stored["runs"], stored["hist"] = _read_csv(results.runs_csv), _read_csv(results.history_csv)
        return stored["runs"], stored["hist"]

    rows, hist = [], []
    labels = {(e, r["variant"]): r for e, m in manifest["experiments"].items() for r in m["rows"]}
    by_hash = {}
    for entry in manifest["runs"].values():
        h = entry["hash"]
        if h not in by_hash:
            by_hash[h] = _run_record(results.run(h), h, stored_tables, hist)
        meta = labels.get((entry["experiment"], entry["variant"]), {})
        rows.append({"experiment": entry["experiment"], "variant": entry["variant"], "seed": entry["seed"],
                     "label": meta.get("label", entry["variant"]), "column": meta.get("column"),
                     "paper": meta.get("paper"), "hash": h, **by_hash[h]})
    runs = pd.DataFrame(rows)
    history = pd.DataFrame(hist, columns=["hash", *HISTORY_FIELDS])
    return manifest, runs, history


def _read_csv(path: Path):
    import pandas as pd

    if not path.is_file():
        return None
    try:
        table = pd.read_csv(path)
    except (ValueError, OSError, pd.errors.ParserError) as e:
        raise ConfigError(f"{path} is unreadable ({str(e).splitlines()[0]}); delete it to rebuild it from the "
                          f"run folders") from None
    if "hash" not in table.columns:
        raise ConfigError(f"{path} has no 'hash' column; delete it to rebuild it from the run folders")
    return table


def _run_record(run: RunDir, h: str, stored_tables, hist: list) -> dict:
    rec = {k: None for k in (*SUMMARY_FIELDS, *CONFIG_FIELDS)}
    cfg = run.read_config()  # unreadable: one line naming it (the row's config is unknown)
    error = run.read_error()
    if isinstance(cfg, dict):
        rec.update({k: cfg.get(k) for k in CONFIG_FIELDS})
        rec["shortcut_args"] = json.dumps(cfg.get("shortcut_args", {}), sort_keys=True)
        summary = run.read_summary()
        if summary is not None:  # an unreadable summary means the run has not finished
            rec.update({k: summary.get(k) for k in SUMMARY_FIELDS})
        elif error is not None:
            rec["status"], rec["reason"] = "error", error["reason"]
        else:
            rec["status"] = "incomplete" if run.is_started() else "not run"
        for r in run.read_history():
            hist.append({"hash": h, **{k: _jsonish(k, r.get(k)) for k in HISTORY_FIELDS}})
        return rec
    if error is not None:  # it failed before it wrote its config (a dataset or model that would not build)
        rec["status"], rec["reason"] = "error", error["reason"]
        return rec
    stored_runs, stored_hist = stored_tables()
    if stored_runs is not None and (stored_runs["hash"] == h).any():
        old = stored_runs[stored_runs["hash"] == h].iloc[0].to_dict()
        rec.update({k: _nan_to_none(old.get(k)) for k in rec})
        if stored_hist is not None:
            for r in stored_hist[stored_hist["hash"] == h].to_dict("records"):
                hist.append({"hash": h, **{k: _nan_to_none(r.get(k)) for k in HISTORY_FIELDS}})
        return rec
    rec["status"] = "not run"
    return rec


def _jsonish(key, v):
    return json.dumps(v, sort_keys=True) if key in JSON_FIELDS and v is not None else v


def _nan_to_none(v):
    return None if isinstance(v, float) and math.isnan(v) else v


def read_table(path, columns=(), dtype=None):
    """A CSV table the report keeps (``lesion.csv``), or None where it is absent, unreadable or lacks
    ``columns``: such a table is rebuilt from what it was computed from."""
    import pandas as pd

    if not Path(path).is_file():
        return None
    try:
        table = pd.read_csv(path, dtype=dtype)
    except (ValueError, pd.errors.ParserError):
        return None
    return table if set(columns) <= set(table.columns) else None


INVOCATION_FIELDS = {"command", "finished", "wall_s", "machine", "jobs", "trained", "skipped", "errors", "interrupted"}
_HASH_CHARS = set("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-")


def _is_manifest(m) -> bool:
    """The shape that the runner writes and the report reads (ablation.study.experiments.manifest)."""
    if not isinstance(m, dict) or not isinstance(m.get("experiments"), dict) or not isinstance(m.get("runs"), dict):
        return False
    for e in m["experiments"].values():
        if not (isinstance(e, dict) and isinstance(e.get("name"), str) and isinstance(e.get("title"), str)
                and isinstance(e.get("rows"), list) and isinstance(e.get("claims", []), list)):
            return False
        if not all(isinstance(r, dict) and isinstance(r.get("variant"), str) for r in e["rows"]):
            return False
        if not all(isinstance(c, dict) and isinstance(c.get("says"), str) for c in e.get("claims", [])):
            return False
    for r in m["runs"].values():
        # the hash names a folder under runs/: nothing that could point elsewhere
        if not (isinstance(r, dict) and isinstance(r.get("hash"), str) and r["hash"] and set(r["hash"]) <= _HASH_CHARS
                and r.get("experiment") in m["experiments"] and isinstance(r.get("variant"), str)
                and isinstance(r.get("seed"), int)):
            return False
    return True


# --- where results may go --------------------------------------------------------------------


def _ours_to_ignore(name: str) -> bool:
    # the lock, a cluster's storage check (another driver may be starting on the folder) and temporaries
    return name in (FOLDER_LOCK, TAKEOVER_LOCK) or name.startswith(STORAGE_CHECK + ".") or \
        (name.startswith(".") and ".tmp" in name)


def check_folder(path, kind: str, option: str) -> Path:
    """``path`` as a folder for ``kind`` ("results" or "run"), or ConfigError in one line; creates nothing.

    Refused: an empty name; a file; a folder that cannot be created or written; and a folder that
    holds other files and none of ours (``--out docs`` must not replace docs/README.md).
    """
    if path is None or not str(path).strip():
        raise ConfigError(f"{option} is empty; name a folder")
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option} {path} is a file, not a folder")
    ancestor = path
    while not ancestor.exists():
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
