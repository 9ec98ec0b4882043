"""Findings as text generated from a results folder's committed tables, for pages written by hand around them.

A page (README.md, a documentation page) holds generated blocks between two markers::

    <!-- findings: claims quick-amd-epyc identity_mappings -->
    ... generated, never edited ...
    <!-- /findings -->

The opening marker names the kind of block, the results folder (a shipped reference by name, or a path
from the project's root) and the kind's arguments. ``python -m ablation.findings PAGE...`` writes every
block from the folder's tables (runs.csv and the manifest: nothing is trained, and nothing in the folder
is written); ``--check`` says which blocks differ and exits 1, which the tests run, so that a number on a
page that is not the data's fails. Kinds:

* ``claims FOLDER EXPERIMENT...``: each claim of those experiments with its verdict, the effect (a
  difference of means) and its 95% CI, the Holm-adjusted p and the seeds;
* ``rows FOLDER EXPERIMENT``: each row's statistic beside the paper's number (the tables' statistic,
  named), mean ± std, seeds, and the runs the trainer ended as failed;
* ``ranking FOLDER``: our ranking of the ranked tables' rows against the paper's;
* ``ladder FOLDER LADDER [PART...]``: a ladder's claims at every rung, where each holds, its fail rows and
  its rank agreement per rung (:mod:`ablation.reporting.ladder_claims`); the parts ``claims``, ``where``,
  ``fails`` and ``ranks`` choose some of them (default: claims, fails, ranks);
* ``rungs FOLDER LADDER [ROW...]``: the ladder's rows (its source rows' names) against its rungs, test and
  training error;
* ``gates FOLDER EXPERIMENT``: the mean gate per stage at the first and the last recorded iteration;
* ``made FOLDER``: how many runs, on what machine and precision, and the wall time of their training.

Text outside the blocks carries no number of ours; an explanation no run has tested is written there as a
hypothesis, with the command that would test it.
"""

from __future__ import annotations

import re
from pathlib import Path

from . import ladder_claims as lc
from . import ranking
from . import claim_tests
from . import stats as st
from ..core.errors import ConfigError
from ..core.outcomes import FINISHED
from ..core.rungs import rung_noun
from ..core.text import markdown_table, num, paper_cell

ROOT = Path(__file__).resolve().parents[2]  # the project's root, where results/reference lives
OPEN = re.compile(r"<!-- findings: (?P<args>[^>]*?) -->\n")
CLOSE = "<!-- /findings -->"


def folder(name: str) -> Path:
    """A shipped reference by name (``results/reference/NAME``), or a path from the project's root (or absolute)."""
    for path in (ROOT / "results" / "reference" / name, ROOT / name):
        if (path / "manifest.json").is_file():
            return path
    raise ConfigError(f"findings block names {name!r}, which is neither a reference under results/reference "
                      f"nor a results folder under {ROOT}")


class FolderTables:
    """A results folder's tables, read once: manifest, runs, history, per-row statistics."""

    def __init__(self, path: Path):
        from .tables import load_tables

        self.path = path
        self.manifest, self.runs, self.history = load_tables(path)
        self.stats = st.row_stats(self.manifest, self.runs)

    def experiment(self, name: str) -> dict:
        if name not in self.manifest["experiments"]:
            raise ConfigError(f"findings block: {self.path.name} has no experiment {name!r}; it has "
                              f"{', '.join(self.manifest['experiments'])}")
        return self.manifest["experiments"][name]


def _claim_line(r: dict) -> str:
    verdict = r["verdict"].upper()
    if "effect" not in r:
        return f"- {verdict}: {r['says']} ({r['detail']})"
    lo, hi = r["ci"]
    return (f"- {verdict}: {r['says']}: {r['effect']:+.2f} points [95% CI {lo:+.2f}, {hi:+.2f}], a difference of "
            f"means; Holm-adjusted p {st.format_p(r['p_holm'])} ({r['n']})")


def claims(s: FolderTables, *experiments: str) -> list[str]:
    from .comparable import mark_claims
    from .init_identity import samples as init_samples

    init = init_samples(s.path, s.manifest, s.runs, keep=False)
    lines = []
    for name in experiments:
        meta = s.experiment(name)
        sub = s.runs[s.runs["experiment"] == name]
        samples = {**st.samples(s.runs, name), "init": init.get(name, {})}
        tested = claim_tests.test_claims(mark_claims(meta, sub), samples)
        lines += [_claim_line(r) for r in tested]
    return lines


def rows(s: FolderTables, name: str) -> list[str]:
    s.experiment(name)
    sub = s.stats[(s.stats["experiment"] == name) & (s.stats["seeds"] > 0)]
    table = [["row", *(["column"] if sub["column"].notna().any() else []), "ours", "mean ± std", "train",
              "seeds", "failed (trainer)", "paper"]]
    for d in sub.to_dict("records"):
        sd = "" if d["seeds"] < 2 else f" ± {num(d['test_std'])}"
        column = [str(d["column"])] if len(table[0]) == 8 else []
        table.append([d["label"], *column, f"{num(d['ours'])} ({d['stat']})", f"{num(d['test_mean'])}{sd}",
                      num(d[f"train_{d['stat']}"]), str(d["seeds"]), lc.failure_kinds(d) or "—",
                      paper_cell(d["paper"], d)])
    return [*markdown_table(table).splitlines(), "",
            "Final test error in %; *ours*: the statistic named, over seeds; *train*: the same statistic of the "
            "final training error (over the images of the last evaluation interval); *failed*: runs the trainer "
            "ended before or at the end of training (ablation/core/outcomes.py)."]


def ranking_lines(s: FolderTables) -> list[str]:
    from .report import ranked

    lines = []
    for name, table in ranked(s.manifest).items():
        for column, a in ranking.agreements(s.stats, name):
            lines.append(f"- {table}{f' ({column})' if column else ''}, on our {lc.stat_name(s.stats, name)} of "
                         f"seeds ({ranking.TIES}): {ranking.describe(a)}")
    return lines


def ladder(s: FolderTables, name: str, *parts: str) -> list[str]:
    s.experiment(name)
    unknown = [p for p in parts if p not in lc.PARTS]
    if unknown:
        raise ConfigError(f"findings block: ladder parts are {', '.join(lc.PARTS)}, not {', '.join(unknown)}")
    one = {"experiments": {name: s.manifest["experiments"][name]}}
    return lc.readme_lines(one, s.runs, s.stats, [], lambda p: p, parts or ("claims", "fails", "ranks"))


def rungs(s: FolderTables, name: str, *rows: str) -> list[str]:
    """A ladder's rows (its source rows; all where none are named) against its rungs: test and training error."""
    meta = s.experiment(name)
    axis = lc.axis_of(meta)
    if axis is None:
        raise ConfigError(f"findings block: {name} is not a ladder")
    rung = lc.rungs_of(meta)
    sub = s.stats[(s.stats["experiment"] == name) & (s.stats["seeds"] > 0)]
    cells, labels = {}, {}
    for d in sub.to_dict("records"):
        row = axis["rows"][d["variant"]]
        labels[row] = d["label"]
        failed = lc.failure_kinds(d)
        cell = f"{num(d['ours'])} / {num(d['train_' + d['stat']])}"
        cells.setdefault(row, {})[rung[d["variant"]]] = f"{cell} ({failed})" if failed else cell
    chosen = list(rows) or list(cells)
    unknown = [r for r in chosen if r not in cells]
    if unknown:
        raise ConfigError(f"findings block: {name} has no finished rows {', '.join(unknown)}")
    table = [["row", *(lc.at(axis, v) for v in axis["values"])]]
    table += [[labels[r], *(cells[r].get(v, "—") for v in axis["values"])] for r in chosen]
    stat = lc.stat_name(s.stats, name)
    return [*markdown_table(table).splitlines(), "",
            f"Final test error / final training error in %, {stat} of seeds at each {rung_noun(axis['key'])}; in brackets the "
            "runs the trainer ended as failed."]


def gates(s: FolderTables, name: str) -> list[str]:
    from .analysis import gate_dynamics

    s.experiment(name)
    g = gate_dynamics(s.history, s.runs, name)
    if g.empty:
        return ["(no gated row has recorded gates)"]
    table = [["row", "stage", "first iteration", "g", "last iteration", "g"]]
    for (variant, stage), part in g.groupby(["variant", "stage"], sort=False):
        part = part.sort_values("iteration")
        first, last = part.iloc[0], part.iloc[-1]
        table.append([variant, str(int(stage) + 1), str(int(first["iteration"])), f"{first['mean']:.3g}",
                      str(int(last["iteration"])), f"{last['mean']:.3g}"])
    return [*markdown_table(table).splitlines(), "",
            "g: the mean gate of a stage's units, mean over seeds (y = g F + (1 - g) x for exclusive gating, "
            "y = F + (1 - g) x for shortcut-only gating)."]


def made(s: FolderTables) -> list[str]:
    done = s.runs[s.runs["status"].isin(FINISHED)]
    return [f"{len(done)} finished runs; machine: {_counted(done, 'machine')}; precision: "
            f"{_counted(done, 'precision')}; {float(done['time_s'].fillna(0).sum()) / 3600:.1f} hours of training "
            f"summed over runs (their own clocks)."]


def _counted(done, column: str) -> str:
    """Each value of ``column`` among the runs with its count where there is more than one (runs trained before
    the column was recorded: "not recorded")."""
    values = [v if isinstance(v, str) and v else "not recorded" for v in done.get(column, [None] * len(done))]
    counts = {v: values.count(v) for v in sorted(set(values))}
    if len(counts) <= 1:
        return next(iter(counts), "not recorded")
    return ", ".join(f"{v} ({n} runs)" for v, n in counts.items())


KINDS = {"claims": claims, "rows": rows, "ranking": ranking_lines, "ladder": ladder, "rungs": rungs, "gates": gates,
         "made": made}


def render(args: str, cache: dict) -> str:
    """The text of one block from its marker's arguments (``KIND FOLDER ARGS...``)."""
    words = args.split()
    if len(words) < 2 or words[0] not in KINDS:
        raise ConfigError(f"findings block '{args}': expected KIND FOLDER ..., KIND one of {', '.join(KINDS)}")
    kind, name, rest = words[0], words[1], words[2:]
    path = folder(name)
    if path not in cache:
        cache[path] = FolderTables(path)
    try:
        lines = KINDS[kind](cache[path], *rest)
    except TypeError:
        raise ConfigError(f"findings block '{args}': wrong arguments for {kind}") from None
    return "\n".join(lines).rstrip() + "\n"


def fill(text: str, cache: dict | None = None) -> str:
    """``text`` with every findings block written anew from its results folder."""
    cache = {} if cache is None else cache
    out, pos = [], 0
    for m in OPEN.finditer(text):
        if m.start() < pos:
            continue
        end = text.find(CLOSE, m.end())
        if end < 0:
            raise ConfigError(f"findings block '{m['args']}' has no closing {CLOSE}")
        out += [text[pos:m.end()], render(m["args"], cache)]
        pos = end
    return "".join(out) + text[pos:]


def differing(text: str, cache: dict | None = None) -> list[str]:
    """The markers of the blocks of ``text`` whose text is not what the data give."""
    cache = {} if cache is None else cache
    bad = []
    for m in OPEN.finditer(text):
        end = text.find(CLOSE, m.end())
        if end < 0 or text[m.end():end] != render(m["args"], cache):
            bad.append(m["args"])
    return bad
