"""The layout of a results folder: every file name, one run's folder and the whole folder, and where results may go.

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
    <out>/signal.csv             signal propagation of the trained runs at initialisation and at the end
                                 (ablation.reporting.signal_runs), kept as lesion.csv is
    <out>/init_identity.csv      each run's net as built checked for the identity per unit
                                 (ablation.reporting.init_identity), kept likewise
    <out>/notes.md               the user's own notes, kept in the README across rebuilds
    <out>/reference.csv          its rows beside the shipped reference study's (ablation.reporting.reference)
    <out>/reference.toml         in a shipped reference study only: how it was made; such a folder (and any
                                 under results/reference/) is read-only to every command unless a documented
                                 flag says otherwise (:func:`refuse_reference`)

Every file is written atomically (:mod:`ablation.core.files`); the report reads the whole folder
as pandas tables (:mod:`ablation.reporting.tables`).

An unreadable ``summary.json``, or one that is not a finished run's summary (:mod:`ablation.core.records`),
means the run has not finished (it is trained again, from its checkpoint); any other unreadable file the
results depend on is a :class:`CorruptFile` error naming it.

A reference study (:func:`reference_study`) is written only inside a :func:`reference_writes` block, which a
command opens where its documented flag says so; nothing is written through a link out of a results folder
(:func:`ablation.core.folder_checks.check_links`).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

from .errors import ConfigError
from .names import is_safe_name
from .outcomes import outdated
from .records import invocation_problem, is_hash, summary_problem
from .files import CorruptFile, append_jsonl, read_json, read_json_strict, read_jsonl, read_text, save_torch, \
    sweep_temporaries, write_atomic, write_failed

RUNS = "runs"
MANIFEST = "manifest.json"
INVOCATIONS = "invocations.jsonl"
RUNS_CSV, ROWS_CSV, HISTORY_CSV, LESION_CSV = "runs.csv", "rows.csv", "history.csv", "lesion.csv"
SIGNAL_CSV = "signal.csv"
INIT_IDENTITY_CSV = "init_identity.csv"
TABLES, PLOTS = "tables", "plots"
README, NOTES = "README.md", "notes.md"
REFERENCE_CSV, REFERENCE_TOML = "reference.csv", "reference.toml"

CONFIG, HISTORY, CHECKPOINT, SUMMARY = "config.json", "history.jsonl", "checkpoint.pt", "summary.json"
CLAIM, FOLDER_LOCK, TAKEOVER_LOCK = "claim.json", ".lock", ".claim.lock"
STORAGE_CHECK = ".storage-check"
ERROR = "error.json"
RUN_FILES = (CONFIG, HISTORY, CHECKPOINT, SUMMARY, CLAIM, ERROR)  # what makes a folder a run folder
RESULTS_FILES = (MANIFEST, INVOCATIONS, RUNS)  # what makes a folder a results folder


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
        """A readable summary whose outcome holds under the current rule: an unreadable one means the run
        has not finished (it trains again from its checkpoint), an outdated one
        (:func:`ablation.core.outcomes.outdated`) that it trains again from the start."""
        summary = self.read_summary()
        return summary is not None and outdated(summary) is None

    def outdated(self) -> str | None:
        """Why the run's summary no longer holds (:func:`ablation.core.outcomes.outdated`), or None."""
        summary = self.read_summary()
        return None if summary is None else outdated(summary)

    def start_over(self) -> None:
        """Remove what an earlier training of the run left (summary, history, checkpoint, error): an
        outdated outcome is trained again from the start. Only the claim's holder calls this. The summary
        goes last, so that an interrupted call leaves the run outdated, never resumable from the old checkpoint."""
        for path in (self.checkpoint, self.history, self.path / ERROR, self.summary):
            path.unlink(missing_ok=True)

    def is_started(self) -> bool:
        """Something was trained: a checkpoint, a history point or a summary exists."""
        return any(p.exists() for p in (self.checkpoint, self.history, self.summary))

    def read_config(self) -> dict | None:
        """The run's config; None where there is none; CorruptFile naming the file where it does not read."""
        return read_json_strict(self.config, "; delete the run folder to train that run again")

    def read_summary(self) -> dict | None:
        """The summary, or None where it is absent, unreadable or damaged (the run is then not finished)."""
        summary = read_json(self.summary)
        return summary if summary_problem(summary) is None else None

    def summary_damage(self) -> str | None:
        """Why a ``summary.json`` that exists is no summary (:func:`ablation.core.records.summary_problem`), or None
        where it is absent or whole."""
        if not self.summary.is_file():
            return None
        summary = read_json(self.summary)
        return "not JSON" if summary is None else summary_problem(summary)

    def read_history(self) -> list[dict]:
        return read_jsonl(self.history)

    def read_error(self) -> dict | None:
        """Why the run's last attempt failed (``reason``, ``when``), or None."""
        record = read_json(self.path / ERROR)
        return record if isinstance(record, dict) and isinstance(record.get("reason"), str) else None

    def write_error(self, reason: str) -> None:
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
            lines = read_text(self.history).splitlines(keepends=True)
            if len(lines) != n:
                write_atomic(self.history, "".join(lines[:n]))

    def sweep(self) -> None:
        """Remove temporaries of killed writers; only the claim's holder calls this, so all are stale."""
        sweep_temporaries(self.path)


class ResultsDir:
    """A results folder: its runs, the manifest, the invocation log and what the report builds."""

    def __init__(self, path):
        self.path = Path(path)
        self.runs = self.path / RUNS
        self.manifest = self.path / MANIFEST
        self.invocations = self.path / INVOCATIONS
        self.runs_csv, self.rows_csv, self.history_csv, self.lesion_csv = (
            self.path / n for n in (RUNS_CSV, ROWS_CSV, HISTORY_CSV, LESION_CSV))
        self.signal_csv = self.path / SIGNAL_CSV
        self.init_identity_csv = self.path / INIT_IDENTITY_CSV
        self.tables, self.plots = self.path / TABLES, self.path / PLOTS
        self.readme, self.notes = self.path / README, self.path / NOTES
        self.reference_csv, self.reference_toml = self.path / REFERENCE_CSV, self.path / REFERENCE_TOML

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
        """The invocation log; torn lines and records without the fields the README shows, or with values of
        another type or range (:func:`ablation.core.records.invocation_problem`), are skipped."""
        return [i for i in read_jsonl(self.invocations) if INVOCATION_FIELDS <= set(i) and invocation_problem(i) is None]

    def log_invocation(self, entry: dict) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise write_failed(self.path, e) from None
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
        return read_text(self.notes) if self.notes.is_file() else None

    def protected(self) -> bool:
        """A reference study (:func:`reference_study`) that no :func:`reference_writes` block opened: the caches
        the report keeps are computed but not written there."""
        home = reference_study(self.path)
        return home is not None and str(home) not in _OPENED


# --- where results may not go -----------------------------------------------------------------

_OPENED: set[str] = set()  # reference studies that a command's documented flag opened for writing


def reference_study(path) -> Path | None:
    """The reference study that ``path`` lies in: the folder itself or one above it holding ``reference.toml``,
    or the folder under ``results/reference/`` that holds it (``results/reference`` itself where it is that
    folder); None where it lies in none. Symbolic links are followed, so that a link to a reference is one."""
    absolute = Path(os.path.abspath(path))
    for p in dict.fromkeys((absolute, Path(os.path.realpath(absolute)))):
        for folder in (p, *p.parents):
            try:
                if (folder / REFERENCE_TOML).is_file():
                    return folder
            except OSError:  # a name longer than the file system takes: check_names says so
                continue
        parts = p.parts
        for i in range(len(parts) - 1):
            if parts[i:i + 2] == ("results", "reference"):
                return Path(*parts[:i + 3])
    return None


@contextlib.contextmanager
def reference_writes(path, allowed: bool = True):
    """Within this block the reference study that ``path`` lies in may be written (where ``allowed``: a command's
    documented flag said so). Elsewhere :func:`refuse_reference` refuses it and the report's caches skip it."""
    home = reference_study(path) if allowed else None
    key = None if home is None or str(home) in _OPENED else str(home)
    if key:
        _OPENED.add(key)
    try:
        yield
    finally:
        if key:
            _OPENED.discard(key)


def refuse_reference(path, said: str, instead: str) -> None:
    """ConfigError where ``path`` lies in a reference study not opened by :func:`reference_writes`.

    ``said``: the option as given (``--out results/reference/x``); ``instead``: where the user's own results go.
    """
    home = reference_study(path)
    if home is None or str(home) in _OPENED:
        return
    why = "it holds reference.toml" if (home / REFERENCE_TOML).is_file() else "it lies under results/reference/"
    raise ConfigError(f"{said} is in the reference study {home} ({why}), which is never written; {instead}")


INVOCATION_FIELDS = {"command", "finished", "wall_s", "machine", "jobs", "trained", "skipped", "errors", "interrupted"}


def _is_manifest(m) -> bool:
    """The shape that the runner writes and the report reads (ablation.study.experiments.manifest)."""
    if not isinstance(m, dict) or not isinstance(m.get("experiments"), dict) or not isinstance(m.get("runs"), dict):
        return False
    # an experiment's name becomes file names (tables/<name>.md, plots/<name>_*.png): nothing that leaves the folder
    if not all(is_safe_name(name) for name in m["experiments"]):
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
        if not (isinstance(r, dict) and is_hash(r.get("hash")) and r.get("experiment") in m["experiments"]
                and isinstance(r.get("variant"), str) and isinstance(r.get("seed"), int)
                and not isinstance(r["seed"], bool) and r["seed"] >= 0):
            return False
    return True
