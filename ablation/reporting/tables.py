"""A results folder as pandas tables: one line per run and seed, one per history point, and the CSVs the report keeps.

A run whose folder is absent (results committed without their run folders) comes from the
``runs.csv`` and ``history.csv`` an earlier report wrote; ``python -m ablation.gather`` carries such a
run's lines into another folder (:func:`stored_tables`, :func:`carry_tables`).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..core.errors import ConfigError
from ..core.files import write_atomic
from ..core.layout import ResultsDir, RunDir
from ..core.outcomes import FINISHED, OUTDATED, outdated
from ..core.text import nan_to_none
from ..training.config import identity
from .comparable import settings_of
from .integrity import check_run_files
from .provenance import FIELDS as PROVENANCE

SUMMARY_FIELDS = ("status", "reason", "outcome_rule", "final_test_error", "best_test_error", "final_train_error", "params", "flops",
                  "iterations", "epochs", "time_s", "images_per_s", "device", "threads", *PROVENANCE)
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
    rec = {k: None for k in (*SUMMARY_FIELDS, *CONFIG_FIELDS, "settings")}
    cfg = run.read_config()  # unreadable: one line naming it (the row's config is unknown)
    error = run.read_error()
    if isinstance(cfg, dict):
        rec.update({k: cfg.get(k) for k in CONFIG_FIELDS})
        rec["shortcut_args"] = json.dumps(cfg.get("shortcut_args", {}), sort_keys=True)
        rec["settings"] = settings_of(identity(cfg))  # every key that can change the numbers, for the claims
        summary = run.read_summary()
        check_run_files(run, cfg, summary)
        if summary is not None:  # an unreadable summary means the run has not finished
            rec.update({k: summary.get(k) for k in SUMMARY_FIELDS})
            _mark_outdated(rec)
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
        rec.update({k: nan_to_none(old.get(k)) for k in rec})
        _mark_outdated(rec)
        if stored_hist is not None:
            for r in stored_hist[stored_hist["hash"] == h].to_dict("records"):
                hist.append({"hash": h, **{k: nan_to_none(r.get(k)) for k in HISTORY_FIELDS}})
        return rec
    rec["status"] = "not run"
    return rec


def _mark_outdated(rec: dict) -> None:
    """A finished run whose outcome an older rule decided is no result (:func:`ablation.core.outcomes.outdated`):
    its status says so and its reason says why, until it is trained again."""
    why = outdated(rec)
    if why is not None and rec["status"] in FINISHED:
        rec["status"], rec["reason"] = OUTDATED, why


def _jsonish(key, v):
    return json.dumps(v, sort_keys=True) if key in JSON_FIELDS and v is not None else v


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


def stored_tables(home: ResultsDir) -> dict:
    """A results folder's report tables by name, and the hashes of the finished runs its runs.csv holds."""
    t = {"runs": read_table(home.runs_csv, ("hash", "status")), "history": read_table(home.history_csv, ("hash",)),
         "lesion": read_table(home.lesion_csv, ("hash",))}
    runs = t["runs"]
    t["finished"] = set() if runs is None else {
        row["hash"] for row in runs.to_dict("records") if row["status"] in FINISHED and outdated(row) is None}
    return t


def carry_tables(results: ResultsDir, tabled: dict, names=("runs", "history", "lesion")) -> None:
    """Each run's lines of its source's tables ``names`` (of runs.csv, history.csv and lesion.csv;
    ``tabled``: hash -> the source's :func:`stored_tables`), in place of ``results``' own lines of that run."""
    import pandas as pd

    paths = {"runs": results.runs_csv, "history": results.history_csv, "lesion": results.lesion_csv}
    for name, path in ((n, paths[n]) for n in names):
        parts = [t[name][t[name]["hash"] == h] for h, t in tabled.items() if t[name] is not None]
        if not parts:
            continue
        old = read_table(path, ("hash",))
        if old is not None:
            parts.insert(0, old[~old["hash"].isin(list(tabled))])
        write_atomic(path, pd.concat(parts, ignore_index=True).to_csv(index=False))
