"""The layout of a results folder and the only code that reads or writes its files.

    <out>/manifest.json          which run (hash) holds which experiment row and seed
    <out>/invocations.jsonl      one line per invocation of the runner: command, wall time, machine
    <out>/runs/<hash>/           one run: config.json, history.jsonl, checkpoint.pt, summary.json,
                                 claim.json while a process trains it and .claim.lock (ablation.locks),
                                 TensorBoard's events.out.tfevents.* with tensorboard=true
    <out>/.lock                  the lock of the shared files above and below (ablation.locks)
    <out>/.storage-check.<token>[.<node>]   while a cluster study runs: the driver's token, and each
                                 node's reply, which show that every node sees this folder
    <out>/runs.csv, rows.csv, history.csv, tables/, plots/, README.md   built by the report
    <out>/lesion.csv             the lesion study of the trained weights (ablation.analysis), kept
                                 so that results without their run folders still show it
    <out>/notes.md               the user's own notes, kept in the README across rebuilds

Every file that holds results is written atomically (a temporary beside it, then a rename),
so a kill at any moment leaves the old file or the new one, never half of one. The report reads
the whole folder as pandas tables through :func:`load_tables`.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from .errors import ConfigError

RUNS = "runs"
MANIFEST = "manifest.json"
INVOCATIONS = "invocations.jsonl"
RUNS_CSV, ROWS_CSV, HISTORY_CSV, LESION_CSV = "runs.csv", "rows.csv", "history.csv", "lesion.csv"
TABLES, PLOTS = "tables", "plots"
README, NOTES = "README.md", "notes.md"

CONFIG, HISTORY, CHECKPOINT, SUMMARY = "config.json", "history.jsonl", "checkpoint.pt", "summary.json"
CLAIM, FOLDER_LOCK, TAKEOVER_LOCK = "claim.json", ".lock", ".claim.lock"
STORAGE_CHECK = ".storage-check"


# --- atomic writes ---------------------------------------------------------------------------


def temporary_for(path) -> Path:
    """The hidden temporary ``.<name>.tmp<pid>`` beside ``path``: per process, and swept after a kill."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def write_atomic(path, data: str | bytes) -> None:
    """Write text or bytes to ``path`` through a temporary and a rename."""
    write_atomic_with(path, lambda tmp: tmp.write_bytes(data) if isinstance(data, bytes) else tmp.write_text(data))


def write_atomic_with(path, write) -> None:
    """``write(tmp_path)`` fills a temporary (``torch.save``, ``savefig``), then it replaces ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_for(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def sweep_temporaries(folder) -> None:
    """Remove temporaries that a kill left in the middle of a write."""
    for stale in Path(folder).glob(".*.tmp*"):
        stale.unlink(missing_ok=True)


def read_json(path):
    """The JSON in ``path``, or None where it is absent or unreadable (a file half-written by another tool)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def read_jsonl(path) -> list[dict]:
    """Every complete JSON line of ``path`` (none if absent); a torn last line is skipped."""
    try:
        text = Path(path).read_text()
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def append_jsonl(path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


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
        return self.summary.exists()

    def is_started(self) -> bool:
        return self.checkpoint.exists()

    def read_config(self) -> dict | None:
        return read_json(self.config)

    def read_summary(self) -> dict | None:
        return read_json(self.summary)

    def read_history(self) -> list[dict]:
        return read_jsonl(self.history)

    def write_config(self, cfg: dict) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        write_atomic(self.config, json.dumps(cfg, indent=2))

    def write_summary(self, summary: dict) -> None:
        write_atomic(self.summary, json.dumps(summary, indent=2))

    def append_history(self, record: dict) -> None:
        append_jsonl(self.history, record)

    def keep_history(self, n: int) -> None:
        """Keep the first ``n`` history lines: points recorded after the checkpoint are recorded again."""
        if self.history.exists():
            lines = self.history.read_text().splitlines(keepends=True)
            if len(lines) != n:
                write_atomic(self.history, "".join(lines[:n]))

    def sweep(self) -> None:
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
        return [RunDir(p.parent) for p in sorted(self.runs.glob(f"*/{SUMMARY}"))]

    def has_manifest(self) -> bool:
        return self.manifest.is_file()

    def read_manifest(self, missing_ok: bool = False) -> dict | None:
        """The manifest; ConfigError naming the file where it is unreadable, or absent (unless ``missing_ok``)."""
        manifest = read_json(self.manifest)
        if not self.has_manifest() and missing_ok:
            return None
        if not self.has_manifest():
            raise ConfigError(f"{self.path} holds no results (no {MANIFEST}); run python -m ablation.run first")
        if not isinstance(manifest, dict) or not {"experiments", "runs"} <= set(manifest):
            raise ConfigError(f"{self.manifest} is unreadable or not a results manifest")
        return manifest

    def write_manifest(self, manifest: dict) -> None:
        write_atomic(self.manifest, json.dumps(manifest, indent=2, default=str))

    def read_invocations(self) -> list[dict]:
        return read_jsonl(self.invocations)

    def log_invocation(self, entry: dict) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        append_jsonl(self.invocations, entry)

    def storage_check(self, token: str, node: str | None = None) -> Path:
        """The driver's token file (``node`` None) or a node's reply to it (ablation.ray_backend)."""
        return self.path / ".".join([STORAGE_CHECK, token, *([node] if node else [])])

    def table(self, experiment: str) -> Path:
        return self.tables / f"{experiment}.md"

    def read_notes(self) -> str | None:
        return self.notes.read_text() if self.notes.is_file() else None


# --- the whole folder as tables (pandas) ------------------------------------------------------

SUMMARY_FIELDS = ("status", "reason", "final_test_error", "best_test_error", "final_train_error", "params", "flops",
                  "iterations", "epochs", "time_s", "images_per_s", "device")
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
    stored_runs = _read_csv(results.runs_csv)
    stored_hist = _read_csv(results.history_csv)
    rows, hist = [], []
    labels = {(e, r["variant"]): r for e, m in manifest["experiments"].items() for r in m["rows"]}
    by_hash = {}
    for entry in manifest["runs"].values():
        h = entry["hash"]
        if h not in by_hash:
            by_hash[h] = _run_record(results.run(h), h, stored_runs, stored_hist, hist)
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
    except (ValueError, pd.errors.ParserError) as e:
        raise ConfigError(f"{path} is unreadable ({str(e).splitlines()[0]}); delete it to rebuild it from the "
                          f"run folders") from None
    if "hash" not in table.columns:
        raise ConfigError(f"{path} has no 'hash' column; delete it to rebuild it from the run folders")
    return table


def _run_record(run: RunDir, h: str, stored_runs, stored_hist, hist: list) -> dict:
    rec = {k: None for k in (*SUMMARY_FIELDS, *CONFIG_FIELDS)}
    cfg = run.read_config()
    if isinstance(cfg, dict):
        rec.update({k: cfg.get(k) for k in CONFIG_FIELDS})
        rec["shortcut_args"] = json.dumps(cfg.get("shortcut_args", {}), sort_keys=True)
        summary = run.read_summary()
        if isinstance(summary, dict):  # an unreadable summary means the run has not finished
            rec.update({k: summary.get(k) for k in SUMMARY_FIELDS})
        else:
            rec["status"] = "incomplete" if run.is_started() else "not run"
        for r in run.read_history():
            hist.append({"hash": h, **{k: _jsonish(k, r.get(k)) for k in HISTORY_FIELDS}})
        return rec
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
