"""The report of a results folder: its tables in the papers' layout, the tested findings and the README; trains nothing.

    python -m ablation.report results/quick

reads ``<dir>/manifest.json`` (which run holds which row and seed) and each run's
``summary.json`` and ``history.jsonl`` under ``<dir>/runs/``; where a run folder is
absent (results committed without their run folders) it falls back to ``runs.csv``,
``history.csv`` and ``lesion.csv`` written by an earlier report. Writes ``runs.csv`` (one row
per run and seed), ``rows.csv`` (per table row: median, mean, std, 95% CI, best over seeds),
``history.csv``, ``lesion.csv``, ``signal.csv``, ``tables/<experiment>.md``, ``plots/*.png|svg`` and
``README.md``. The statistics are :mod:`ablation.reporting.stats`, the mechanisms :mod:`ablation.reporting.analysis`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from . import ladder_claims
from . import ranking
from . import reference as ref
from . import claim_tests
from . import stats as st
from ..core.outcomes import FINISHED
from ..core import text
from ..core.text import isnan, num
from ..core.files import write_atomic, write_failed
from ..core.layout import ResultsDir, reference_writes, refuse_reference
from ..core.folder_checks import check_links
from .comparable import mark_claims, readme_note
from .provenance import readme_lines as where_lines
from .tables import load_tables
from .paper_tables import experiment_tables, fail_marks


def with_figure(manifest, figure: str) -> list[str]:
    """The experiments of the manifest whose file asks for ``figure`` (``figures = [...]``,
    :data:`ablation.study.experiments.EXPERIMENT_FIGURES`)."""
    return [n for n, m in manifest["experiments"].items() if figure in (m.get("figures") or [])]


def ranked(manifest) -> dict:
    """The experiments ranked against the paper's rows, each named by its source (the paper's table)."""
    return {n: manifest["experiments"][n].get("source") or n for n in with_figure(manifest, "ranking")}


def agreement_lines(manifest, stats) -> list[str]:
    lines = []
    for name, table in ranked(manifest).items():
        for column, a in ranking.agreements(stats, name):
            lines.append(f"- {table}{f' ({column})' if column else ''}: {ranking.describe(a)}")
    return lines


def checked_claims(manifest, runs, tables, init: dict | None = None) -> dict[str, list[dict]]:
    """Each experiment with a table: its claims tested (:func:`ablation.reporting.claim_tests.test_claims`)."""
    init = init or {}
    return {name: claim_tests.test_claims(mark_claims(meta, runs[runs["experiment"] == name]),
                                          {**st.samples(runs, name), "init": init.get(name, {})})
            for name, meta in manifest["experiments"].items() if name in tables}


def findings(manifest, runs, stats, tables, init: dict | None = None) -> list[str]:
    """``init``: ``{experiment: {variant: [...]}}`` of :func:`ablation.reporting.init_identity.samples`, for the
    ``identity_at_init`` claims."""
    checked = checked_claims(manifest, runs, tables, init)
    verdicts = [r["verdict"] for rs in checked.values() for r in rs]
    lines = ["## Findings", "",
             f"Each claim of the papers as a tested statement on our seeds (computed, not edited): HOLDS when "
             f"significant at {st.ALPHA} after Holm's correction over the claims of its experiment, CONTRADICTED "
             f"when the opposite is, NOT SIGNIFICANT when neither; `lower` is a {st.TEST_NAME} on the means, "
             "`lowest` an intersection-union of such tests, `close` an equivalence test (TOST); the effect is a "
             "difference of means with its two-sided 95% CI, not corrected for multiple claims, so a one-sided "
             "test may hold while the interval still touches zero (ablation/reporting/stats.py).", ""]
    kinds = {k for r in checked.values() for c in r if (k := c.get("kind"))}
    if kinds & {"not_worse", "identity_at_init"}:  # said only where a study uses them
        lines += ["`not_worse` is a one-sided Welch's t-test of non-inferiority against its margin; "
                  "`identity_at_init` checks each seed's net as built, before training, that every unit's branch "
                  "adds nothing (no p-value, outside Holm's family; ablation/reporting/init_identity.py).", ""]
    if verdicts:
        counts = "; ".join(f"{v}: {verdicts.count(v)}" for v in st.VERDICTS)
        lines += [f"Claims: {len(verdicts)}; {counts}.", ""]
    for name, meta in manifest["experiments"].items():
        # a ladder's fail rows are set against the paper's line depth by depth in its own section
        results = checked.get(name, [])
        fails = fail_marks(meta, stats) if name in tables and not meta.get("axis") else []
        if results or fails:
            lines += [f"**{name}**", ""]
            lines += [f"- {r['verdict'].upper()}: {r['says']} — {r['detail']}" for r in results]
            lines += [f"- fail marks: {f}" for f in fails]
            lines.append("")
    if not checked:
        lines += ["No claim could be checked: no finished runs.", ""]
    agreement = agreement_lines(manifest, stats)
    if agreement:
        lines += [f"Our ranking of the rows against the paper's, on the statistic of the tables ({ranking.TIES}); "
                  "one test per table:", "", *agreement, ""]
    return lines


# --- the whole report -------------------------------------------------------------------------


@dataclass
class ReportedStudy:
    """A results folder as the report reads it: its tables, the statistics per row and the lesion study."""

    results: ResultsDir
    manifest: dict
    runs: "pd.DataFrame"
    history: "pd.DataFrame"
    stats: "pd.DataFrame"
    tables: dict  # experiment -> its markdown table
    lesion: "pd.DataFrame | None"
    lesion_missing: dict  # why the lesion study is missing for some runs -> how many
    reference: list  # (reference study, its rows beside ours) for each reference of the same preset
    plugin_problems: list  # one line per recorded plugin that is missing or changed (ablation.nets.plugins)


def read_study(out, reference=None, plugins=()) -> ReportedStudy:
    """Everything the README and the figures are made of, read from the results folder ``out``.

    The lesion study is computed for finished runs not yet in ``lesion.csv`` (torch loads only then).
    ``reference``: a folder of reference studies, or one (default: the shipped ones,
    :data:`ablation.reporting.reference.REFERENCE_ROOT`), whose rows of the same preset stand beside ours.
    The plugins the manifest records are loaded first, after ``plugins`` (``--plugin``): a plugin row's net
    is built again for the lesion and signal studies (:func:`ablation.nets.plugins.load_recorded`).
    """
    from .analysis import lesion_study

    results = ResultsDir(out)
    manifest, runs, history = load_tables(out)
    problems = []
    if plugins or manifest.get("plugins"):  # torch loads only then
        from ..nets.plugins import load_recorded

        problems = load_recorded(manifest, plugins, str(results.manifest))
    stats = st.row_stats(manifest, runs)
    tables = experiment_tables(manifest, stats)
    lesion, missing = lesion_study(results, runs)
    beside = ref.comparisons(out, runs, manifest.get("preset"), reference)
    return ReportedStudy(results, manifest, runs, history, stats, tables, lesion, missing, beside, problems)


REFUSED = ("the report of your own study is written into its own folder (python -m ablation.report results/quick); "
           "a reference's own is rebuilt with --write-reference")


def build(out, quiet: bool = True, reference=None, plugins=(), write_reference: bool = False) -> dict:
    """Rebuild every table, plot and the README of ``out``; returns the paths written, and under
    ``plugin_problems`` a line for each recorded plugin that could not be loaded (what needs its nets is left out).

    A reference study (:func:`ablation.core.layout.reference_study`) is refused unless ``write_reference``
    (``--write-reference``); nothing is written through a symbolic link out of ``out``.
    """
    with reference_writes(out, write_reference):
        refuse_reference(out, str(out), REFUSED)
        check_links(out, str(out))
        return _build(out, quiet, reference, plugins)


def _build(out, quiet: bool, reference, plugins) -> dict:
    study = read_study(out, reference, plugins)
    results, manifest = study.results, study.manifest
    _write_reference(study)
    write_atomic(results.runs_csv, study.runs.to_csv(index=False))
    write_atomic(results.rows_csv, study.stats.to_csv(index=False))
    write_atomic(results.history_csv, study.history.to_csv(index=False))
    written = {"tables": [], "plots": []}
    for name, md in study.tables.items():
        path = results.table(name)
        write_atomic(path, f"# {manifest['experiments'][name]['title']}\n\n{md}")
        written["tables"].append(str(path))
    written["plots"] = draw(study)
    write_atomic(results.readme, readme(study, _plot_order(manifest, written["plots"])))
    written["readme"] = str(results.readme)
    written["compared"] = [r.name for r, _ in study.reference]
    if not quiet:
        for p in [*written["tables"], *written["plots"], written["readme"]]:
            print(p)
    written["plugin_problems"] = study.plugin_problems
    return written


def draw(study: ReportedStudy, signal: bool = True) -> list[str]:
    """Every figure of the study: those its experiment files ask for, then each experiment's own; with ``signal``
    the signal propagation of the trained runs too (computed where ``signal.csv`` lacks them)."""
    from . import ladder_plots
    from . import mechanism_plots as M
    from . import plots as P  # matplotlib only when drawing

    manifest, runs, history, stats, out = study.manifest, study.runs, study.history, study.stats, study.results.plots
    paths = []
    for name in with_figure(manifest, "depth_curves"):
        paths += P.plot_degradation(manifest, runs, history, out, name)
    for name in with_figure(manifest, "error_vs_depth"):
        paths += P.plot_depth(manifest, runs, stats, out, name)
    for name in manifest["experiments"]:
        paths += P.plot_bars(manifest, runs, stats, name, out)
    for name in with_figure(manifest, "row_curves"):
        paths += P.plot_shortcut_curves(manifest, runs, history, out, name)
    paths += P.plot_ranking(stats, ranked(manifest), out)
    for name in manifest["experiments"]:
        paths += M.plot_lesion(manifest, runs, study.lesion, name, out)
        paths += M.plot_grad_flow(manifest, runs, history, name, out)
        paths += M.plot_gates(manifest, runs, history, name, out)
    paths += ladder_plots.draw(manifest, runs, stats, out)
    if not signal:
        return paths
    from .signal_runs import signal_figures  # per unit at init and at the end, cached in signal.csv

    paths += signal_figures(study.results, manifest, runs)
    return paths


def _write_reference(study: ReportedStudy) -> None:
    if study.reference:
        write_atomic(study.results.reference_csv, ref.table(study.reference).to_csv(index=False))
    else:  # an earlier report's comparison, which the README no longer shows
        try:
            if study.results.reference_csv.exists():
                study.results.reference_csv.unlink()
        except OSError as e:
            raise write_failed(study.results.reference_csv, e) from None


def refresh_readme(out, reference=None) -> None:
    """Rewrite README.md alone (tables and findings again, no plots; the lesion study from its cache)."""
    refuse_reference(out, str(out), REFUSED)
    study = read_study(out, reference)
    _write_reference(study)
    plots = study.results.plots
    drawn = sorted(str(p) for p in plots.glob("*.png")) if plots.is_dir() else []
    write_atomic(study.results.readme, readme(study, _plot_order(study.manifest, drawn)))


def _plot_order(manifest, paths: list[str]) -> list[str]:
    """The training curves of the depth experiments first (the papers' first figure), then by name."""
    first = {f"{name}_curves" for name in with_figure(manifest, "depth_curves")}
    return sorted(paths, key=lambda p: (Path(p).stem not in first, Path(p).stem))


def _scale(d: dict) -> tuple:
    size = "native" if d["image_size"] is None or isnan(d["image_size"]) else int(d["image_size"])
    width = "default" if d["width"] is None or isnan(d["width"]) else int(d["width"])
    return (d["dataset"], size, width, f"{num(d['steps'], 0)} {d['schedule_unit']}", num(d["batch_size"], 0))


def scale_lines(name: str, sub) -> list[str]:
    """The scale table's lines of one experiment's finished runs: one line, or one per row (and setting) where its
    rows did not all run at one scale, so that each row says what ran."""
    records = sub.to_dict("records")
    if len({_scale(d) for d in records}) == 1:
        archs = ", ".join(dict.fromkeys(sub["arch"]))
        return [f"| {name} | {archs} | {' | '.join(map(str, _scale(records[0])))} |"]
    lines = {}
    for d in records:
        line = f"| {name}: {d['variant']} | {d['arch']} | {' | '.join(map(str, _scale(d)))} |"
        lines.setdefault(line, None)
    return list(lines)


def readme(study: ReportedStudy, plots: list[str]) -> str:
    """The results README: how the numbers were made, the scale, the tables, findings, mechanisms and figures."""
    results, manifest, runs, history, stats, tables = (study.results, study.manifest, study.runs, study.history,
                                                       study.stats, study.tables)
    out = results.path
    inv = results.read_invocations()
    trained = [i for i in inv if i.get("trained")]
    lines = [f"# Results: preset `{manifest.get('preset')}`", ""]
    if manifest.get("preset_description"):
        lines += [manifest["preset_description"], ""]
    if manifest.get("overrides"):
        given = ", ".join(f"{k}={json.dumps(v)}" for k, v in manifest["overrides"].items())
        lines += [f"Set on the command line over the preset: {given}. Where the description above says "
                  "otherwise, these hold (the scale table below shows what ran).", ""]
    if trained:
        t = trained[-1]
        lines += ["## How these numbers were made", "",
                  f"- command: `{t['command']}`",
                  f"- machine: {t['machine']}",
                  f"- wall time: {t['wall_s']:.0f} s for the invocation that trained ({t['trained']} runs trained, "
                  f"{t['skipped']} already done, {t['jobs']} at once), finished {t['finished']}"]
        if len(trained) > 1:
            lines.append(f"- runs were trained over {len(trained)} invocations, {sum(i['wall_s'] for i in trained):.0f} s in all")
        last = inv[-1]
        if last is not trained[-1]:
            lines.append(f"- last invocation: `{last['command']}` trained {last['trained']} runs in {last['wall_s']:.1f} s")
        lines.append("")
    ok = runs[runs["status"].isin(FINISHED)]
    if not ok.empty:
        lines += ["## Scale of the runs", "", "| experiment | arch (as run) | dataset | image size | width | schedule | batch |",
                  "|---|---|---|---|---|---|---|"]
        differ = []
        for name, meta in manifest["experiments"].items():
            sub = ok[ok["experiment"] == name]
            if sub.empty:
                continue
            lines += scale_lines(name, sub)
            differ += [note] if (note := readme_note(name, meta, sub)) else []
        seeds = sorted(set(stats[stats["seeds"] > 0]["seeds"]))
        lines += ["", *differ, f"Seeds per row: {', '.join(map(str, seeds))}. The paper's numbers come from its own, "
                  "full-scale setup: compare orderings, not values.", ""]
    notes = results.read_notes()
    if notes:  # measurements made outside the runner, kept across rebuilds
        lines += ["## Notes", "", notes.strip(), ""]
    lines += where_lines(runs[runs["status"].isin(st.DONE)])
    lines += ["## Tables", ""]
    for name, md in tables.items():
        meta = manifest["experiments"][name]
        lines += [f"### {meta['title']}", "", md]
        if meta.get("notes"):
            lines += [meta["notes"], ""]
    from .init_identity import samples as init_samples  # torch only where a claim checks a net

    lines += findings(manifest, runs, stats, tables, init_samples(out, manifest, runs))
    lines += ladder_claims.readme_lines(manifest, runs, stats, plots, lambda p: Path(p).relative_to(out).as_posix())
    lines += ref.report_lines(study.reference)
    from .analysis import mechanism_lines

    lines += mechanism_lines(manifest, runs, history, study.lesion, study.lesion_missing)
    errors = runs[runs["status"] == "error"]
    if not errors.empty:
        lines += ["## Runs that raised an error", ""]
        lines += [f"- {r['experiment']}:{r['variant']} seed {r['seed']} ({r['hash']}): {r['reason']}"
                  for r in errors.to_dict("records")]
        lines.append("")
    pngs = [Path(p) for p in plots if p.endswith(".png")]
    if pngs:
        lines += ["## Plots", ""]
        lines += [f"![{p.stem}]({p.relative_to(out).as_posix()})" for p in pngs]
        lines.append("")
    lines += ["All tables and plots: `python -m ablation.report " + str(out) + "` (trains nothing). "
              "Every run: `runs.csv`; per row: `rows.csv`; curves: `history.csv`; lesion study: `lesion.csv`; signal propagation: `signal.csv`.", ""]
    return "\n".join(lines)
