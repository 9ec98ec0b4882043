"""A results folder as pandas tables: one line per run and seed, one per history point, and the CSVs the report keeps.

A run whose folder is absent (results committed without their run folders) comes from the
``runs.csv`` and ``history.csv`` an earlier report wrote; ``python -m ablation.gather`` carries such a
run's lines into another folder (:func:`stored_tables`, :func:`carry_tables`).

Every table is read whole or not at all: a file cut short, a line with fewer or more fields than its
header, a value out of its range (:mod:`ablation.core.records`) is one line naming the file, before
anything is written, so that a damaged file never makes the report rewrite the others without the
runs it could not read. So is a run that ``runs.csv`` lacks while ``history.csv`` holds its points.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ..core.errors import ConfigError
from ..core.files import CorruptFile, write_atomic
from ..core.layout import ResultsDir, RunDir
from ..core.outcomes import FINISHED, OUTDATED, outdated
from ..core.records import cache_line_problem, history_line_problem, history_problem, run_line_problem
from ..core.text import nan_to_none
from ..training.config import identity
from .comparable import settings_of
from .integrity import check_run_files
from .provenance import PROVENANCE_FIELDS as PROVENANCE

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
    if stored:
        _check_none_lost(results, by_hash, *stored_tables())
    runs = pd.DataFrame(rows)
    history = pd.DataFrame(hist, columns=["hash", *HISTORY_FIELDS])
    return manifest, runs, history


_NEEDED = "restore it (from git or a copy); nothing was written"  # a table that stands for absent run folders
_CACHE = "restore it, or delete it to rebuild it from the run folders (the lines of runs without a folder go with it)"


def checked_csv(path: Path, line_problem, columns=(), dtype=None, advice: str = _NEEDED, lacking_ok: bool = False):
    """The table in ``path``, or None where it is absent; CorruptFile in one line naming it where it is damaged.

    Damaged: unreadable, not UTF-8, cut short (its last line not whole), a line with another number of fields
    than its header, a header without ``columns`` (None instead where ``lacking_ok``: a table of an older layout,
    rebuilt from what it was computed from), or a line that ``line_problem`` (:mod:`ablation.core.records`) finds
    out of range.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        return None

    def damaged(why: str):
        return CorruptFile(f"{path} is damaged ({why}); {advice}")

    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as e:
        raise damaged(f"cannot be read: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise damaged(f"not UTF-8 text at byte {e.start}") from None
    if not text.endswith("\n"):
        raise damaged("empty" if not text else "cut short: its last line is not whole")
    try:
        records = [r for r in csv.reader(io.StringIO(text)) if r]
    except csv.Error as e:
        raise damaged(f"not CSV: {e}") from None
    if not records:
        raise damaged("empty")
    header = records[0]
    for i, record in enumerate(records[1:], 1):
        if len(record) != len(header):
            raise damaged(f"record {i} has {len(record)} fields where its header has {len(header)}")
    lacking = [c for c in columns if c not in header]
    if lacking:
        if lacking_ok:
            return None
        raise damaged(f"no {', '.join(map(repr, lacking))} column")
    try:
        table = pd.read_csv(io.StringIO(text), dtype=dtype)
    except (ValueError, pd.errors.ParserError) as e:
        raise damaged(str(e).splitlines()[0]) from None
    for record in table.to_dict("records"):
        problem = line_problem(record)
        if problem:
            raise damaged(problem)
    return table


def _read_csv(path: Path):
    """A report's runs.csv or history.csv, read where a run folder is absent: its lines stand for that run."""
    return checked_csv(path, run_line_problem if Path(path).name == "runs.csv" else history_line_problem, ("hash",))


def _check_none_lost(results: ResultsDir, by_hash: dict, stored_runs, stored_hist) -> None:
    """CorruptFile where a run without a folder is in history.csv but not in runs.csv: runs.csv lost its line (cut
    short at a line's end, or edited), and a report built now would drop the run's points from history.csv."""
    if stored_hist is None:
        return
    held = set() if stored_runs is None else set(stored_runs["hash"])
    points = set(stored_hist["hash"])
    for h, rec in by_hash.items():
        if rec["status"] == "not run" and h not in held and h in points and not results.run(h).path.exists():
            what = f"lacks run {h}" if stored_runs is not None else f"is missing, and so is run {h}"
            raise CorruptFile(f"{results.runs_csv} {what}, whose points {results.history_csv} holds: it was cut "
                              f"short or edited; {_NEEDED}")


def _run_record(run: RunDir, h: str, stored_tables, hist: list) -> dict:
    rec = {k: None for k in (*SUMMARY_FIELDS, *CONFIG_FIELDS, "settings")}
    cfg = run.read_config()  # unreadable: one line naming it (the row's config is unknown)
    error = run.read_error()
    if isinstance(cfg, dict):
        rec.update({k: cfg.get(k) for k in CONFIG_FIELDS})
        rec["shortcut_args"] = json.dumps(cfg.get("shortcut_args", {}), sort_keys=True)
        rec["settings"] = settings_of(identity(cfg))  # every key that can change the numbers, for the claims
        damage = run.summary_damage()
        if damage:  # not finished, but its record must not turn into "incomplete" in the tables
            raise CorruptFile(f"{run.summary} is damaged ({damage}), so the run is not finished; python -m "
                              f"ablation.run trains it again from its checkpoint, or restore the file")
        summary = run.read_summary()
        check_run_files(run, cfg, summary)
        if summary is not None:
            rec.update({k: summary.get(k) for k in SUMMARY_FIELDS})
            _mark_outdated(rec)
        elif error is not None:
            rec["status"], rec["reason"] = "error", error["reason"]
        else:
            rec["status"] = "incomplete" if run.is_started() else "not run"
        for i, r in enumerate(run.read_history(), 1):
            problem = history_problem(r)
            if problem:
                raise CorruptFile(f"{run.history} is damaged (point {i}: {problem}); restore it, or delete the run "
                                  f"folder to train the run again")
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
    """A CSV table the report keeps (``lesion.csv``), or None where it is absent or lacks ``columns`` (an older
    layout): such a table is rebuilt from what it was computed from. A damaged one is a CorruptFile naming it
    (:func:`checked_csv`): its lines of runs without a folder could not be rebuilt."""
    return checked_csv(path, cache_line_problem, columns, dtype, _CACHE, lacking_ok=True)


def keep_table(results: ResultsDir, path, table) -> None:
    """Write a table the report keeps (a DataFrame, or its CSV text) into ``results``, unless the folder is a
    reference study that no documented flag opened (:meth:`ablation.core.layout.ResultsDir.protected`)."""
    if not results.protected():
        write_atomic(path, table if isinstance(table, str) else table.to_csv(index=False))


def stored_tables(home: ResultsDir) -> dict:
    """A results folder's report tables by name, and the hashes of the finished runs its runs.csv holds."""
    t = {"runs": checked_csv(home.runs_csv, run_line_problem, ("hash", "status")),
         "history": checked_csv(home.history_csv, history_line_problem, ("hash",)),
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
        old = checked_csv(path, cache_line_problem if name == "lesion" else run_line_problem if name == "runs" else
                          history_line_problem, ("hash",))
        if old is not None:
            parts.insert(0, old[~old["hash"].isin(list(tabled))])
        write_atomic(path, pd.concat(parts, ignore_index=True).to_csv(index=False))
