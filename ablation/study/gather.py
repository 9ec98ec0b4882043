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
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..core.errors import ConfigError, unknown_choice
from ..core.files import temporary_for
from ..core.layout import CHECKPOINT, CONFIG, HISTORY, SUMMARY, ResultsDir
from ..core.locks import folder_lock
from ..nets import shortcuts
from ..nets.plugins import load_recorded, merged, record
from . import experiments as ex
from .expansion import expand
from .manifest import manifest
from .selection import select

COPIED = (CONFIG, HISTORY, CHECKPOINT, SUMMARY)  # a finished run; its claim and lock belong to its own folder


def copy_run(src: Path, dst: Path) -> None:
    """Copy a run folder's files through a temporary folder and a rename: ``dst`` appears whole or not at all."""
    tmp = temporary_for(dst)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        for name in COPIED:
            if (src / name).is_file():
                shutil.copy2(src / name, tmp / name)
        shutil.rmtree(dst, ignore_errors=True)  # an unfinished attempt of the same run
        tmp.rename(dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


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


def gather(sources: list, out, experiment: str | None, variants: str | None, preset: str = "quick",
           seeds: int | None = None, experiments_dir=None, tables=None, plugins=()) -> dict:
    """Copy the finished runs of the selected rows from ``sources`` into ``out`` and write its manifest.

    ``tables``: how a source's report tables are read and a run's lines carried, the pair
    (:func:`ablation.reporting.tables.stored_tables`, :func:`ablation.reporting.tables.carry_tables`)
    that the command passes in; None: run folders only.
    Returns counts: ``runs`` (selected), ``copied``, ``from_tables``, ``present`` (already finished in
    ``out``), ``missing``, and ``plugin_problems``: a line for each recorded plugin that is missing or changed.
    ``plugins``: as ``--plugin``, loaded first and recorded.
    """
    homes = [ResultsDir(s) for s in sources]
    recorded = _recorded_plugins(homes)
    problems = load_recorded({"plugins": recorded}, plugins, "a source's manifest")
    recorded = merged(recorded, record(plugins))
    experiments = ex.load_experiments(experiments_dir)
    presets = ex.load_presets(experiments_dir)
    if preset not in presets:
        raise unknown_choice("preset", preset, presets)
    try:
        rows = select(experiments, experiment, variants, shortcuts.list_shortcuts(), presets[preset].all_rows)
    except ConfigError as e:  # a row of a plugin that did not load: say why
        raise ConfigError("; ".join([str(e), *problems])) from None
    runs = expand(experiments, rows, presets[preset], seeds)
    for h in homes:
        if not (h.runs.is_dir() or h.runs_csv.is_file()):
            raise ConfigError(f"{h.path} holds neither runs/ nor runs.csv: not a results folder to gather from")
    results = ResultsDir(out)
    counts = {"runs": len(runs), "copied": 0, "from_tables": 0, "present": 0, "missing": 0,
              "plugin_problems": problems}
    finished, tabled, lesioned = [], {}, {}
    read, carry = tables or (None, None)
    stored = [read(h) for h in homes] if read else []
    for r in runs:
        if results.run(r.hash).is_finished():
            counts["present"] += 1
        elif home := next((h for h in homes if h.run(r.hash).is_finished()), None):
            copy_run(home.run(r.hash).path, results.run(r.hash).path)
            counts["copied"] += 1
            # its lesion study, measured on the same checkpoint (copied with its time, so its stamp holds)
            t = stored[homes.index(home)] if stored else None
            if t is not None and t["lesion"] is not None and (t["lesion"]["hash"] == r.hash).any():
                lesioned[r.hash] = t
        elif t := next((t for t in stored if r.hash in t["finished"]), None):
            if r.hash not in tabled:
                tabled[r.hash] = t
                counts["from_tables"] += 1
        else:
            counts["missing"] += 1
            continue
        finished.append(r)
    with folder_lock(results.path):
        if tabled:
            carry(results, tabled)
        if lesioned:
            carry(results, lesioned, ("lesion",))
        results.write_manifest(manifest(results.read_manifest(missing_ok=True), presets[preset], experiments,
                                        rows, finished, plugins=recorded))
    return counts
