"""Gather finished runs trained into other results folders into one, with the runner's manifest.

A study trained in pieces (one folder per depth, per machine, per night) is one study once its
runs sit together: a run is its config's hash, so the runs of the rows selected here (``--experiment``
and ``--variants`` as ``python -m ablation.run`` takes them, under ``--preset`` with ``--seeds``) are
looked up by hash under each source's ``runs/``. Every finished one (a readable ``summary.json``) is
copied, never moved, into ``<out>/runs/<hash>/`` (a folder already finished there is kept). A run
that no source holds as a folder but one holds in the tables its report wrote (results committed
without their run folders: a finished line of ``runs.csv``) is carried as its lines of ``runs.csv``,
``history.csv`` and ``lesion.csv``, which the report reads where a run folder is absent. The manifest
is written as the runner writes it before training, listing the finished runs only, with the plugins the
sources' manifests record (loaded first, so that their rows can be selected by name) and those given again.
Nothing trains: a row whose seeds are not all finished shows the seeds that are.

Every merge says which number it kept. Two copies of one run (in two sources, or in a source and in
``<out>``) whose results differ (:data:`RESULT_FIELDS`) are refused, naming both, unless ``--prefer``
names the folder whose copy wins; the choice is then recorded in the manifest (``merges``: per hash,
the folder kept and those passed over). ``<out>`` holds one setting, as for the runner: a folder of
other settings is refused, and the check and the manifest that records the setting are one step under
the folder's lock.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

from ..core.errors import ConfigError, unknown_choice
from ..core.files import temporary_for, write_failed
from ..core.folder_checks import check_links
from ..core.layout import CHECKPOINT, CONFIG, HISTORY, SUMMARY, ResultsDir, reference_writes, refuse_reference
from ..core.locks import folder_lock
from ..nets import registry
from ..nets.plugins import load_recorded, merged, record
from . import catalogue
from .expansion import expand
from .manifest import manifest
from .folder_settings import refuse_other_runs, refuse_other_settings
from .selection import select

FINISHED_RUN_FILES = (CONFIG, HISTORY, CHECKPOINT, SUMMARY)  # a finished run; its claim and lock belong to its own folder
RESULT_FIELDS = ("status", "final_test_error", "best_test_error", "final_train_error", "iterations")
MERGES = "merges"  # the manifest's record of the copies chosen over others


def copy_run(src: Path, dst: Path) -> None:
    """Copy a run folder's files through a temporary folder and a rename: ``dst`` appears whole or not at all."""
    tmp = temporary_for(dst)
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            for name in FINISHED_RUN_FILES:
                if (src / name).is_file():
                    shutil.copy2(src / name, tmp / name)
            shutil.rmtree(dst, ignore_errors=True)  # an unfinished attempt of the same run, or a copy passed over
            tmp.rename(dst)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError as e:
        raise write_failed(dst, e) from None


def _recorded_plugins(homes: list[ResultsDir]) -> list:
    """The plugins the sources' manifests record (a source whose manifest is absent or does not read records none)."""
    out = []
    for h in homes:
        try:
            m = h.read_manifest(missing_ok=True)
        except ConfigError:
            continue
        out = merged(out, (m or {}).get("plugins") or [])
    return out


def _result(record: dict) -> tuple:
    """What two copies of a run must agree on: its outcome and its numbers (to 6 decimals, as the tables keep them)."""
    out = []
    for k in RESULT_FIELDS:
        v = record.get(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            v = None if math.isnan(v) else round(float(v), 6)
        out.append(v)
    return tuple(out)


def _describe(record: dict) -> str:
    return f"{record.get('status')}, final test error {record.get('final_test_error')}"


class _Copy:
    """One finished copy of a run: where it is (``home``), as a folder or as lines of a report's tables (``table``);
    ``stored``: that folder's report tables, which may hold a copied folder's lesion study."""

    def __init__(self, home: ResultsDir, record: dict, table: dict | None = None, stored: dict | None = None):
        self.home, self.record, self.table, self.stored = home, record, table, stored

    @property
    def where(self) -> str:
        return str(self.home.path)


def _copies(h: str, results: ResultsDir, homes: list, stored: list, mine: dict | None) -> list[_Copy]:
    """Every finished copy of run ``h``: in ``results`` itself first, then in each source (its folder, else its
    tables' line)."""
    found = []
    for home, t in [(results, mine), *zip(homes, stored or [None] * len(homes))]:
        run = home.run(h)
        if run.is_finished():
            found.append(_Copy(home, run.read_summary(), stored=t))
        elif t is not None and h in t["finished"]:
            line = t["runs"][t["runs"]["hash"] == h].iloc[0].to_dict()
            found.append(_Copy(home, line, t))
    return found


def _choose(r, copies: list[_Copy], prefer: list[Path]) -> tuple[_Copy, list[_Copy]]:
    """The copy of run ``r`` to keep and those passed over; ConfigError where they differ and ``prefer`` names none."""
    distinct = {_result(c.record) for c in copies}
    if len(distinct) == 1:
        return copies[0], []
    for p in prefer:
        chosen = next((c for c in copies if c.home.path.resolve() == p), None)
        if chosen is not None:
            return chosen, [c for c in copies if _result(c.record) != _result(chosen.record)]
    a = copies[0]
    b = next(c for c in copies if _result(c.record) != _result(a.record))
    raise ConfigError(f"run {r.hash} ({r.experiment}:{r.variant} seed {r.seed}) differs between {a.where} "
                      f"({_describe(a.record)}) and {b.where} ({_describe(b.record)}): name the copy to keep with "
                      f"--prefer {a.where} or --prefer {b.where}")


def gather(sources: list, out, experiment: str | None, variants: str | None, preset: str = "quick",
           seeds: int | None = None, experiments=None, tables=None, plugins=(), prefer=(),
           write_reference: bool = False) -> dict:
    """Copy the finished runs of the selected rows from ``sources`` into ``out`` and write its manifest.

    ``tables``: how a source's report tables are read and a run's lines carried, the pair
    (:func:`ablation.reporting.tables.stored_tables`, :func:`ablation.reporting.tables.carry_tables`)
    that the command passes in; None: run folders only. ``plugins``: as ``--plugin``, loaded first and recorded.
    ``prefer``: folders (sources, or ``out``) whose copy of a run wins where copies differ, first named first.
    ``write_reference``: ``out`` may be a reference study. ``experiments``: the user's folders of experiment files
    (``--experiments``; None: ``./experiments`` where there is one).
    Returns counts: ``runs`` (selected), ``copied``, ``from_tables``, ``present`` (already finished in
    ``out``), ``missing``, ``chosen`` (runs whose copies differed, kept by ``prefer``), and ``plugin_problems``:
    a line for each recorded plugin that is missing or changed.
    """
    homes = [ResultsDir(s) for s in sources]
    recorded = _recorded_plugins(homes)
    problems = load_recorded({"plugins": recorded}, plugins, "a source's manifest")
    recorded = merged(recorded, record(plugins))
    folders = catalogue.user_folders(experiments)
    experiments = catalogue.load_experiments(folders)
    presets = catalogue.load_presets(folders)
    if preset not in presets:
        raise unknown_choice("preset", preset, presets)
    try:
        rows = select(experiments, experiment, variants, registry.list_shortcuts(), presets[preset].all_rows)
    except ConfigError as e:  # a row of a plugin that did not load: say why
        raise ConfigError("; ".join([str(e), *problems])) from None
    runs = expand(experiments, rows, presets[preset], seeds)
    for h in homes:
        if not (h.runs.is_dir() or h.runs_csv.is_file()):
            raise ConfigError(f"{h.path} holds neither runs/ nor runs.csv: not a results folder to gather from")
    results = ResultsDir(out)
    preferred = []
    for p in prefer:
        if Path(p).resolve() not in {h.path.resolve() for h in [*homes, results]}:
            raise ConfigError(f"--prefer {p} is none of the sources nor --out; name the folder whose copies win")
        preferred.append(Path(p).resolve())
    with reference_writes(out, write_reference):
        refuse_reference(out, f"--out {out}", "gather into a folder of your own (results/NAME); a new reference "
                         "study is gathered with --write-reference")
        check_links(out, f"--out {out}")
        settled = (presets[preset].name, {}, f"--out {out}")  # gather sets nothing over the preset
        refuse_other_settings(results.read_manifest(missing_ok=True), *settled)  # one line before anything is read
        read, carry = tables or (None, None)
        stored = [read(h) for h in homes] if read else []
        mine = read(results) if read and results.path.is_dir() else None
        plan, merges = [], {}
        for r in runs:
            copies = _copies(r.hash, results, homes, stored, mine)
            if not copies:
                plan.append((r, None))
                continue
            chosen, over = _choose(r, copies, preferred)
            if over:
                merges[r.hash] = {"run": f"{r.experiment}:{r.variant}:{r.seed}", "kept": chosen.where,
                                  "over": sorted({c.where for c in over}), "by": "--prefer"}
            if chosen.table is not None and results.run(r.hash).is_finished():
                raise ConfigError(f"--prefer {chosen.where}: its copy of run {r.hash} is a line of its runs.csv, and "
                                  f"{out} holds that run's folder, which a report reads first; remove that folder "
                                  f"from {out} first, or prefer another copy")
            plan.append((r, chosen))
        counts = _write(results, plan, merges, runs, rows, experiments, presets[preset], carry, settled, recorded)
    return {**counts, "plugin_problems": problems}


def _write(results: ResultsDir, plan: list, merges: dict, runs, rows, experiments, preset, carry, settled,
           plugins: list) -> dict:
    """Copy and carry what ``plan`` chose, then the manifest: under the folder's lock, the settings checked again."""
    counts = {"runs": len(runs), "copied": 0, "from_tables": 0, "present": 0, "missing": 0, "chosen": len(merges)}
    finished, tabled, lesioned = [], {}, {}
    with folder_lock(results.path):
        old = results.read_manifest(missing_ok=True)
        refuse_other_settings(old, *settled)
        refuse_other_runs(old, runs, settled[2])
        for r, chosen in plan:
            if chosen is None:
                counts["missing"] += 1
                continue
            finished.append(r)
            if chosen.home is results:
                counts["present"] += 1
            elif chosen.table is None:
                copy_run(chosen.home.run(r.hash).path, results.run(r.hash).path)
                counts["copied"] += 1
                # its lesion study, measured on the same checkpoint (copied with its time, so its stamp holds)
                t = chosen.stored
                if t is not None and t["lesion"] is not None and (t["lesion"]["hash"] == r.hash).any():
                    lesioned[r.hash] = t
            elif r.hash not in tabled:
                tabled[r.hash] = chosen.table
                counts["from_tables"] += 1
        if tabled:
            carry(results, tabled)
        if lesioned:
            carry(results, lesioned, ("lesion",))
        new = manifest(old, preset, experiments, rows, finished, {}, plugins=plugins)
        if merges:
            new[MERGES] = {**new.get(MERGES, {}), **merges}
        results.write_manifest(new)
    return counts

