"""A results folder as Python objects: :func:`load` and :class:`Results` (tables as DataFrames, the report's figures).

    import ablation
    ref = ablation.load("quick-amd-epyc")   # a shipped reference study, or any results folder
    ref.rows                                # one line per table row: ours beside the paper's number
    ref.findings                            # each claim of the papers, tested on our seeds
    ref.figure("identity_mappings_errors")  # a matplotlib Figure, as the report draws it

Everything is read from the folder as ``python -m ablation.report`` reads it (:mod:`ablation.reporting`);
nothing is written there, except the caches the report itself keeps (``lesion.csv``, ``init_identity.csv``)
where a figure or a claim needs a run not yet in them.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from ..core.errors import ConfigError, unknown_choice
from ..core.layout import ResultsDir

FINDING_FIELDS = ("experiment", "says", "verdict", "effect", "ci", "p", "p_holm", "seeds", "detail")


def reference_root() -> Path:
    from ..reporting.reference import REFERENCE_ROOT

    return REFERENCE_ROOT


def load(out, plugins=()) -> "Results":
    """The results folder ``out``, or the shipped reference study of that name (``results/reference/<name>``).

    ``plugins``: files or modules that register shortcuts, as ``--plugin``; those the study was run with load
    from its manifest (:mod:`ablation.nets.plugins`). One that is missing or has changed is a warning naming it,
    and what needs the nets of its rows (the lesion and signal studies) is left out.
    """
    if not isinstance(out, (str, os.PathLike)):
        raise ConfigError(f"ablation.load takes a results folder or a reference's name, got {out!r}")
    path = Path(out)
    if not path.is_dir() and (reference_root() / str(out)).is_dir():
        path = reference_root() / str(out)
    if not path.is_dir():
        shipped = sorted(p.name for p in reference_root().glob("*") if (p / "manifest.json").is_file()) \
            if reference_root().is_dir() else []
        raise ConfigError(f"{out} is not a folder; give a results folder written by python -m ablation.run"
                          + (f", or a shipped reference: {', '.join(shipped)}" if shipped else ""))
    folder = ResultsDir(path)
    manifest = folder.read_manifest()  # not a results folder: one line now
    from .pipeline import plugin_list

    plugins = plugin_list(plugins)
    if plugins or manifest.get("plugins"):  # torch loads only then
        from ..nets.plugins import load_recorded

        for line in load_recorded(manifest, plugins, str(folder.manifest)):
            warnings.warn(line, stacklevel=2)
    return Results(path, plugins)


class Results:
    """A results folder: ``.runs``, ``.rows``, ``.findings``, ``.history`` as pandas DataFrames, ``.figure(name)``.

    Read on first use and kept; :meth:`refresh` reads the folder again.
    """

    def __init__(self, out, plugins=()):
        self.path = Path(out)
        self.plugins = tuple(plugins)  # loaded by now; the report's reading loads them again where it must
        self._cache: dict = {}

    def refresh(self) -> "Results":
        """Forget what was read, so that the next attribute reads the folder again; returns the results."""
        self._cache.clear()
        return self

    def _get(self, key, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def tables(self):
        """(manifest, runs, history) as :func:`ablation.reporting.tables.load_tables` reads them."""
        from ..reporting.tables import load_tables

        return self._get("tables", lambda: load_tables(self.path))

    @property
    def manifest(self) -> dict:
        """The folder's manifest.json: which run holds which row and seed, and each experiment's rows and claims."""
        return self.tables()[0]

    @property
    def runs(self) -> "pd.DataFrame":
        """One line per row and seed: the run's hash, status, final errors, cost and config fields."""
        return self.tables()[1].copy()

    @property
    def history(self) -> "pd.DataFrame":
        """One line per history point of every run (``hash`` joins it to :attr:`runs`)."""
        return self.tables()[2].copy()

    def statistics(self):
        """Per table row, the report's statistics (:func:`ablation.reporting.stats.row_stats`), columns as stored."""
        from ..reporting import stats as st

        return self._get("stats", lambda: st.row_stats(self.manifest, self.tables()[1]))

    @property
    def rows(self) -> "pd.DataFrame":
        """One line per table row: our statistic (``ours``, the paper's protocol: median, best or mean of the seeds)
        beside the paper's number, then the seeds' summary (``rows.csv`` of the report)."""
        stats = self.statistics()
        first = ["experiment", "variant", "label", "ours", "paper", "stat", "seeds", "failed"]
        return stats[[*first, *(c for c in stats.columns if c not in first)]].copy()

    def claims(self) -> dict:
        """Each experiment with a table: its claims tested (:func:`ablation.reporting.report.checked_claims`)."""
        def make():
            from ..reporting import paper_tables, report
            from ..reporting.init_identity import samples

            manifest, runs = self.manifest, self.tables()[1]
            tables = paper_tables.experiment_tables(manifest, self.statistics())
            return report.checked_claims(manifest, runs, tables, samples(self.path, manifest, runs))

        return self._get("checked", make)

    @property
    def findings(self) -> "pd.DataFrame":
        """Each claim of the papers as a tested statement: its verdict (holds, not significant, contradicted,
        cannot be tested, not run), the effect (difference of means, points of error) with its 95% CI, and the
        one-sided p-value, raw and Holm-corrected within its experiment."""
        import pandas as pd

        lines = [{"experiment": name, **{k: c.get(k) for k in FINDING_FIELDS[1:]}}
                 for name, claims in self.claims().items() for c in claims]
        return pd.DataFrame(lines, columns=list(FINDING_FIELDS))

    def _figures(self) -> dict:
        def make():
            from ..reporting import figure_style, report

            study = report.read_study(self.path, plugins=self.plugins)
            with figure_style.capture() as kept:
                report.draw(study, signal=False)  # the signal figures need a pass over every trained net
            return dict(kept)

        return self._get("figures", make)

    def figures(self) -> list[str]:
        """The names of the report's figures of this study (those :meth:`figure` draws)."""
        return sorted(self._figures())

    def figure(self, name: str):
        """The report's figure ``name`` (a file stem of its ``plots/``, e.g. ``identity_mappings_errors``) as a
        matplotlib Figure."""
        figures = self._figures()
        if name not in figures:
            raise unknown_choice("figure", name, sorted(figures))
        return figures[name]

    def table(self, experiment: str) -> "Table":
        """One experiment's table as the report prints it: our statistic beside the paper's number."""
        if experiment not in self.manifest["experiments"]:
            raise unknown_choice("experiment", experiment, list(self.manifest["experiments"]))
        return Table(self, experiment)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    def _repr_html_(self) -> str:
        from .display import results_html

        return results_html(self)


class Table:
    """One experiment of a study: ``.frame`` (its lines of :attr:`Results.rows`) and its HTML with the verdicts."""

    def __init__(self, results: Results, experiment: str):
        self.results, self.experiment = results, experiment
        rows = results.rows
        self.frame = rows[rows["experiment"] == experiment].reset_index(drop=True)

    def __repr__(self) -> str:
        return f"Table({self.experiment!r}, {len(self.frame)} rows)"

    def _repr_html_(self) -> str:
        from .display import experiment_html

        return experiment_html(self.results, self.experiment)
