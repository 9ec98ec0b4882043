"""Claims against a ladder's setting: each claim tested at every rung, and from which rung it holds.

A ladder (:mod:`ablation.study.ladder`) runs the rows of one experiment at several values of one
setting (the net's depth, the length of training). At each rung, every claim of that experiment is
tested on the seeds of its rows at that rung alone, exactly as the report tests the experiment itself
(:func:`ablation.reporting.claim_tests.test_claims`: Welch's t on the means, Holm over the claims of one rung),
giving per claim and rung the effect (a difference of means, positive as claimed) with its 95%
interval and the verdict. From those:

* a claim *holds from rung v* when it HOLDS at v and at every later rung tested; it *never holds at
  this scale* when it does not hold at the last rung tested;
* a row that the paper marks "fail" is set against the paper's line (``fail_above``, 20% test error in
  He 2016 Table 1) only where the runs are on the paper's own dataset, since the line is a number about
  that dataset's errors (:func:`ablation.reporting.stats.fail_above`); it *crosses the line from rung v*
  when our statistic of the row (the one of the tables: the median of seeds beside the paper's median)
  is above the line at v and at every later rung. Elsewhere (the quick preset's Fashion-MNIST) no line
  is drawn, and the section says, rung by rung, which runs the trainer ended as failed (at chance,
  diverged, test not finite: :mod:`ablation.core.outcomes`);
* our ranking of the rows is set against the paper's at each rung (Spearman's rho and Kendall's tau-b on
  the tables' statistic, :mod:`ablation.reporting.ranking`), the p-values Holm-adjusted over the rungs.

The paper's own effect of each claim is the same difference taken on its numbers, which stand at the
ladder's ``paper_at`` (He 2016 Table 1: ResNet-110, 64k iterations); beside a "fail" row it is a bound:
the row's error is above ``fail_above``.
"""

from __future__ import annotations

import math

from . import ranking
from . import claim_tests
from . import stats as st
from ..core.rungs import axis_of, rung_noun, rung_of, value_text
from ..core.text import markdown_table

LADDER_FIGURES = ("claims_vs", "rank_vs", "errors_vs")  # drawn by ablation.reporting.ladder_plots, against the key


def figure_name(figure: str, ladder: str, key: str) -> str:
    """``claims_vs_depth_depth_ladder``: the figure, the ladder's key and the ladder."""
    return f"{figure}_{key}_{ladder}"


def paper_numbers(meta: dict) -> dict[str, object]:
    """The paper's number of each source row of a ladder (the same at every rung)."""
    return {axis_of(meta)["rows"][r["variant"]]: r["paper"] for r in meta["rows"]}


def ladders(manifest: dict) -> dict[str, dict]:
    """The ladders of a results folder's manifest, by experiment name: their axis."""
    return {name: axis for name, meta in manifest["experiments"].items() if (axis := axis_of(meta))}


def rungs_of(meta: dict) -> dict[str, object]:
    """Each ladder row's rung value."""
    return {r["variant"]: rung_of(r) for r in meta["rows"] if rung_of(r) is not None}


def at(axis: dict, value) -> str:
    """A rung in words: ``depth 110``, ``steps 2000``."""
    return f"{axis['key']} {value_text(value)}"


def effects(manifest: dict, runs, name: str) -> list[dict]:
    """Every claim of the ladder's source at every rung: one dict per (claim, rung).

    Each holds ``claim`` (its index), ``rung`` and what :func:`ablation.reporting.claim_tests.test_claims` gives
    (``says``, ``verdict``, ``detail``, and where tested ``effect``, ``ci``, ``p_holm``, ``seeds``).
    """
    meta = manifest["experiments"][name]
    axis, rung = axis_of(meta), rungs_of(meta)
    samples = st.samples(runs, name)
    out = []
    for value in axis["values"]:
        here = {metric: {axis["rows"][v]: x for v, x in by.items() if rung.get(v) == value}
                for metric, by in samples.items()}
        for i, result in enumerate(claim_tests.test_claims(axis["claims"], here)):
            out.append({"claim": i, "rung": value, **result})
    return out


def holds_from(verdicts: dict) -> dict:
    """Where a claim holds along the rungs, from its verdict at each rung.

    ``from``: the first rung at which it HOLDS and holds at every later tested rung, or None;
    ``holds_at``: every rung where it HOLDS; ``tested``: the rungs with a verdict from a test
    (HOLDS, NOT SIGNIFICANT or CONTRADICTED); ``contradicted_at``.
    """
    tested = sorted(v for v, verdict in verdicts.items() if verdict in (st.HOLDS, st.NOT_SIGNIFICANT,
                                                                         st.CONTRADICTED))
    start = None
    for v in reversed(tested):
        if verdicts[v] != st.HOLDS:
            break
        start = v
    return {"from": start, "tested": tested, "holds_at": [v for v in tested if verdicts[v] == st.HOLDS],
            "contradicted_at": [v for v in tested if verdicts[v] == st.CONTRADICTED]}


def _values(values) -> str:
    return ", ".join(map(value_text, values))


def holds_from_text(h: dict, key: str = "depth") -> str:
    """One line: from which rung the claim holds, or that it does not at this scale."""
    noun = rung_noun(key)
    if not h["tested"]:
        return f"not tested at any {noun}"
    tested = _values(h["tested"])
    if h["from"] == h["tested"][0]:
        text = f"holds at every {noun} tested ({tested})"
    elif h["from"] is not None:
        text = f"holds from {key} {value_text(h['from'])} (tested at {tested})"
    elif h["holds_at"]:
        text = f"never holds at the last {rung_noun(key, True)}: holds at {_values(h['holds_at'])} only (tested at {tested})"
    else:
        text = f"never holds at this scale (tested at {tested})"
    if h["contradicted_at"]:
        text += f"; contradicted at {_values(h['contradicted_at'])}"
    return text


def crossing(values: dict, line: float) -> dict:
    """Where a row's error crosses ``line`` along the rungs.

    ``from``: the first rung at which the error is above the line and stays above at every later rung,
    or None; ``above_at``: every rung above it; ``between``: the previous rung and ``from`` (None where
    ``from`` is the first rung, or is None).
    """
    rungs = sorted(v for v, e in values.items() if e is not None and not math.isnan(e))
    start = None
    for v in reversed(rungs):
        if not values[v] > line:
            break
        start = v
    between = None
    if start is not None and rungs.index(start) > 0:
        between = (rungs[rungs.index(start) - 1], start)
    return {"from": start, "above_at": [v for v in rungs if values[v] > line], "rungs": rungs, "between": between}


def crossing_text(c: dict, line: float, key: str = "depth") -> str:
    if not c["rungs"]:
        return "not run"
    if c["from"] is None:
        where = f" (above at {_values(c['above_at'])} only)" if c["above_at"] else ""
        return f"below {line:g}% at the last {key} run: never crosses the line for good{where}"
    if c["between"] is None:
        return f"above {line:g}% at every {key} run, from {value_text(c['from'])}"
    lo, hi = c["between"]
    return f"crosses {line:g}% between {key} {value_text(lo)} and {value_text(hi)} and stays above"


def paper_effect(claim: dict, paper: dict[str, object], fail_above: float | None) -> tuple[float, bool] | None:
    """The claim's effect on the paper's own numbers, and whether it is a lower bound (a "fail" row).

    ``lower [a, b]``: p_b - p_a; ``close [a, b]``: p_a - p_b; ``lowest [t]``: the smallest lead of another
    row over t. A "fail" row counts as ``fail_above`` and makes the effect a bound (above it).
    """
    def num(row):
        p = paper.get(row)
        if p == "fail":
            return (fail_above, True) if fail_above is not None else None
        return (float(p), False) if isinstance(p, (int, float)) and not math.isnan(p) else None

    if claim.get("lower") or claim.get("close"):
        a, b = claim.get("lower") or claim.get("close")
        pa, pb = num(a), num(b)
        if pa is None or pb is None or (pa[1] and pb[1]):
            return None
        if claim.get("lower"):
            return (pb[0] - pa[0], pb[1]) if not pa[1] else None
        return None if pa[1] or pb[1] else (pa[0] - pb[0], False)
    targets = claim.get("lowest") or []
    among = claim.get("among") or list(paper)
    others = [num(o) for o in among if o not in targets]
    tops = [num(t) for t in targets]
    if any(t is None or t[1] for t in tops) or not others or any(o is None for o in others):
        return None
    lead = min(others, key=lambda o: o[0])
    return lead[0] - max(t[0] for t in tops), lead[1]


def ranks_by_rung(stats, manifest: dict, name: str) -> dict:
    """Our ranking of the rows against the paper's at each rung (a ladder has a column per rung), each
    :class:`ablation.reporting.ranking.Agreement` with its p-values Holm-adjusted over the rungs."""
    meta = manifest["experiments"][name]
    axis, rung = axis_of(meta), rungs_of(meta)
    # the first source's rows alone: the paper's numbers of another source are another paper's, or another protocol
    first = [v for v, source in axis["sources"].items() if source == axis["rows_of"][0]]
    out = {}
    for _, a in ranking.agreements(stats[stats["variant"].isin(first)], name):
        rungs = {rung[v] for v in a.rows}
        if len(rungs) == 1:
            out[rungs.pop()] = a
    return ranking.holm_over(dict(sorted(out.items())))


def row_values(stats, manifest: dict, name: str) -> dict[str, dict]:
    """Per source row, our statistic of the tables (``ours``) at each rung that ran."""
    meta = manifest["experiments"][name]
    axis, rung = axis_of(meta), rungs_of(meta)
    s = stats[(stats["experiment"] == name) & (stats["seeds"] > 0)]
    out: dict[str, dict] = {}
    for v, ours in zip(s["variant"], s["ours"]):
        out.setdefault(axis["rows"][v], {})[rung[v]] = float(ours)
    return out


FAILURE_KINDS = (("at_chance", "at chance"), ("diverged", "diverged"), ("test_not_finite", "test not finite"))


def failure_kinds(d: dict) -> str:
    """How the trainer ended a row's failed runs (``d``: a line of the row statistics): ``2 diverged, 1 at
    chance``, or empty where it ended none."""
    return ", ".join(f"{d[k]} {words}" for k, words in FAILURE_KINDS if d.get(k))


def failures_text(d: dict) -> str:
    """``2/3 failed: 2 diverged``, or empty where the trainer ended none of the row's runs."""
    failed = sum(int(d.get(k) or 0) for k, _ in FAILURE_KINDS)
    return f"{failed}/{d['seeds']} failed: {failure_kinds(d)}" if failed else ""


def row_failures(stats, manifest: dict, name: str) -> dict[str, dict]:
    """Per source row and rung, how the trainer ended the runs it ended as failed, where any."""
    meta = manifest["experiments"][name]
    axis, rung = axis_of(meta), rungs_of(meta)
    out: dict[str, dict] = {}
    for d in stats[stats["experiment"] == name].to_dict("records"):
        if text := failures_text(d):
            out.setdefault(axis["rows"][d["variant"]], {})[rung[d["variant"]]] = text
    return out


def dataset_of(runs, name: str) -> str | None:
    """The dataset the ladder's finished runs ran on (the first one's)."""
    sub = runs[(runs["experiment"] == name) & runs["status"].isin(st.DONE)]
    return None if sub.empty else sub.iloc[0]["dataset"]


# --- the README section ------------------------------------------------------------------------


def _cell(r: dict) -> str:
    if "effect" not in r:
        return r["verdict"]
    lo, hi = r["ci"]
    return f"{r['effect']:+.2f} [{lo:+.2f}, {hi:+.2f}] {r['verdict'].upper()}"


PARTS = ("claims", "where", "fails", "ranks")  # the parts of a ladder's section, for pages that take one


def readme_lines(manifest: dict, runs, stats, plots: list[str], rel, parts=PARTS) -> list[str]:
    """The README section of every ladder: claims by rung, from which rung each holds, the paper's fail
    rows, rank agreement per rung. ``rel`` turns a plot path into a link; ``parts`` (of :data:`PARTS`)
    chooses what the section holds: ``claims``, the table of every claim at every rung, with where each holds;
    ``where``, one line per claim, where it holds; ``fails``, the paper's fail rows; ``ranks``, the rank
    agreement per rung. With every part, a heading and the figures come too."""
    lines = []
    whole = tuple(parts) == PARTS
    for name, axis in ladders(manifest).items():
        meta = manifest["experiments"][name]
        res = effects(manifest, runs, name)
        if not any("effect" in r for r in res):
            continue
        key = axis["key"]
        if whole:
            lines += [f"## Claims against {key}: {meta['title']}", ""]
        if "claims" in parts:
            lines += _claims_table(meta, axis, res)
        if "where" in parts:
            lines += _where_lines(axis, res)
        if "fails" in parts:
            lines += _fail_lines(meta, axis, stats, manifest, name, dataset_of(runs, name))
        if "ranks" in parts:
            lines += _rank_lines(stats, manifest, name, key)
        if whole:
            stems = {figure_name(f, name, key) for f in LADDER_FIGURES}
            mine = [p for p in plots if p.endswith(".png") and p.rsplit("/", 1)[-1][:-4] in stems]
            lines += [f"![{p.rsplit('/', 1)[-1][:-4]}]({rel(p)})" for p in mine]
            lines.append("")
    return lines


def _claims_table(meta, axis, res) -> list[str]:
    key, values = axis["key"], axis["values"]
    paper = paper_numbers(meta)
    where_paper = f"{key} {value_text(axis['paper_at'])}" if axis.get("paper_at") is not None else "its scale"
    noun = rung_noun(key)
    lines = [f"Each claim of {', '.join(axis['rows_of'])} tested at each {noun} on the seeds of that {noun} alone "
             f"(Holm over the {len(axis['claims'])} claims of one {noun}). Cells: the effect in points of "
             f"test error, a difference of means (positive: as claimed; for `close`, the gap), its 95% CI, "
             f"and the verdict (Holm-adjusted p < {st.ALPHA}). *paper*: the same difference on the paper's "
             f"numbers, at {where_paper} (> : a bound, from a \"fail\" row).", ""]
    table = [["claim", *(at(axis, v) for v in values), f"paper ({where_paper})", "where it holds"]]
    for i, claim in enumerate(axis["claims"]):
        by_rung = {r["rung"]: r for r in res if r["claim"] == i}
        pe = paper_effect(claim, paper, meta.get("fail_above"))
        pcell = "—" if pe is None else f"{'> ' if pe[1] else ''}{pe[0]:+.2f}"
        h = holds_from({v: r["verdict"] for v, r in by_rung.items()})
        table.append([claim["says"], *(_cell(by_rung[v]) for v in values), pcell, holds_from_text(h, axis["key"])])
    return [*lines, markdown_table(table)]


def _where_lines(axis, res) -> list[str]:
    lines = [f"Where each claim holds (HOLDS: Holm-adjusted p < {st.ALPHA} over the claims of one {rung_noun(axis['key'])}):", ""]
    for i, claim in enumerate(axis["claims"]):
        h = holds_from({r["rung"]: r["verdict"] for r in res if r["claim"] == i})
        lines.append(f"- {claim['says']}: {holds_from_text(h, axis['key'])}")
    return [*lines, ""]


def _fail_lines(meta, axis, stats, manifest, name, dataset) -> list[str]:
    paper = paper_numbers(meta)
    key = axis["key"]
    values = row_values(stats, manifest, name)
    fails = [row for row, p in paper.items() if p == "fail" and row in values]
    if not fails:
        return []
    failed = row_failures(stats, manifest, name)
    stat = stat_name(stats, name)
    line = st.fail_above(meta, dataset)
    if line is None:
        lines = [f"Rows the paper marks \"fail\" (test error above {meta['fail_above']:g}% on "
                 f"{meta.get('dataset') or 'its dataset'}); that line is not drawn on {dataset}, whose errors are "
                 f"on another scale. Our {stat} of seeds at each {rung_noun(key)}, and the runs the trainer ended as failed:",
                 ""] if meta.get("fail_above") is not None else [
                 f"Rows the paper marks \"fail\": our {stat} of seeds at each {rung_noun(key)}, and the runs the trainer ended "
                 "as failed:", ""]
        for row in fails:
            lines.append(f"- {row}: {_rung_cells(values[row], failed.get(row, {}), value_text)}")
        return [*lines, ""]
    lines = [f"Rows the paper marks \"fail\" (test error above {line:g}%) against that line, on our {stat} of "
             "seeds:", ""]
    for row in fails:
        v = values[row]
        lines.append(f"- {row}: {crossing_text(crossing(v, line), line, key)} "
                     f"({_rung_cells(v, failed.get(row, {}), value_text)})")
    return [*lines, ""]


def stat_name(stats, name: str) -> str:
    """The statistic of the tables for a ladder's rows (median beside the paper's medians), by name."""
    return "/".join(dict.fromkeys(stats[stats["experiment"] == name]["stat"])) or "median"


def _rank_lines(stats, manifest, name: str, key: str) -> list[str]:
    agree = ranks_by_rung(stats, manifest, name)
    if not agree:
        return []
    source = axis_of(manifest["experiments"][name])["rows_of"][0]
    lines = [f"Our ranking of the rows of {source} against the paper's at each {rung_noun(key)}, on our {stat_name(stats, name)} "
             f"of seeds (the statistic of the tables; {ranking.TIES}); p two-sided, Holm-adjusted over the "
             f"{len(agree)} {rung_noun(key, True)}:", ""]
    lines += [f"- {key} {value_text(v)}: {ranking.describe(a)}" for v, a in agree.items()]
    return [*lines, ""]


def _rung_cells(v: dict, failed: dict, value_text) -> str:
    """``20: 16.5, 110: 75.3 (1/3 failed: 1 at chance)``: a row's statistic at each rung, with its failed runs."""
    return ", ".join(f"{value_text(r)}: {v[r]:.1f}" + (f" ({failed[r]})" if r in failed else "") for r in sorted(v))
