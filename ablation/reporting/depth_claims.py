"""Claims against depth: a ladder's claims tested at each depth, and where each one appears.

A ladder (:mod:`ablation.study.ladder`) runs the rows of one experiment at several depths. At each
depth D, every claim of that experiment is tested on the seeds of its rows at D alone, exactly as
the report tests the experiment itself (:func:`ablation.reporting.stats.test_claims`: Welch's t on the means,
Holm over the claims of one depth), giving per claim and depth the effect (a difference of means,
positive as claimed) with its 95% interval and the verdict. From those:

* a claim *holds from depth D* when it HOLDS at D and at every deeper depth tested; it *never
  holds at this scale* when it does not hold at the deepest depth tested;
* a row that the paper marks "fail" (test error above ``fail_above``, 20% in He 2016 Table 1)
  *crosses the line from depth D* when our statistic of the row (the one of the tables: the median
  of seeds beside the paper's median) is above the line at D and at every deeper depth tested.

The paper's own effect of each claim is the same difference taken on its numbers (He 2016 Table 1
ran ResNet-110 only); beside a "fail" row it is a bound: the row's error is above ``fail_above``.
"""

from __future__ import annotations

import math

from . import ranking
from . import stats as st
from ..core.text import markdown_table


FIGURES = ("claims_vs_depth", "rank_vs_depth", "errors_vs_depth")  # drawn by ablation.reporting.depth_plots


def figure_name(figure: str, ladder: str) -> str:
    return f"{figure}_{ladder}"


def paper_numbers(meta: dict) -> dict[str, object]:
    """The paper's number of each source row of a ladder (the same at every depth)."""
    return {meta["axis"]["rows"][r["variant"]]: r["paper"] for r in meta["rows"]}


def ladders(manifest: dict) -> dict[str, dict]:
    """The ladders of a results folder's manifest, by experiment name: their axis."""
    return {name: meta["axis"] for name, meta in manifest["experiments"].items() if meta.get("axis")}


def _depth_of(meta: dict) -> dict[str, int]:
    return {r["variant"]: r["depth"] for r in meta["rows"] if r.get("depth") is not None}


def effects(manifest: dict, runs, name: str) -> list[dict]:
    """Every claim of the ladder's source at every depth: one dict per (claim, depth).

    Each holds ``claim`` (its index), ``depth`` and what :func:`ablation.reporting.stats.test_claims` gives
    (``says``, ``verdict``, ``detail``, and where tested ``effect``, ``ci``, ``p_holm``, ``seeds``).
    """
    meta = manifest["experiments"][name]
    axis, depth_of = meta["axis"], _depth_of(meta)
    samples = st.samples(runs, name)
    out = []
    for depth in axis["depths"]:
        at = {metric: {axis["rows"][v]: x for v, x in by.items() if depth_of.get(v) == depth}
              for metric, by in samples.items()}
        for i, result in enumerate(st.test_claims(axis["claims"], at)):
            out.append({"claim": i, "depth": depth, **result})
    return out


def holds_from(verdicts: dict[int, str]) -> dict:
    """Where a claim holds along the depths, from its verdict at each depth.

    ``from``: the smallest depth at which it HOLDS and holds at every deeper tested depth, or None;
    ``holds_at``: every depth where it HOLDS; ``tested``: the depths with a verdict from a test
    (HOLDS, NOT SIGNIFICANT or CONTRADICTED); ``contradicted_at``.
    """
    tested = sorted(d for d, v in verdicts.items() if v in (st.HOLDS, st.NOT_SIGNIFICANT, st.CONTRADICTED))
    start = None
    for d in reversed(tested):
        if verdicts[d] != st.HOLDS:
            break
        start = d
    return {"from": start, "tested": tested, "holds_at": [d for d in tested if verdicts[d] == st.HOLDS],
            "contradicted_at": [d for d in tested if verdicts[d] == st.CONTRADICTED]}


def holds_from_text(h: dict) -> str:
    """One line: from which depth the claim holds, or that it does not at this scale."""
    if not h["tested"]:
        return "not tested at any depth"
    depths = ", ".join(map(str, h["tested"]))
    if h["from"] == h["tested"][0]:
        text = f"holds at every depth tested ({depths})"
    elif h["from"] is not None:
        text = f"holds from depth {h['from']} (tested at {depths})"
    elif h["holds_at"]:
        text = (f"never holds at the deepest depths: holds at {', '.join(map(str, h['holds_at']))} only "
                f"(tested at {depths})")
    else:
        text = f"never holds at this scale (tested at {depths})"
    if h["contradicted_at"]:
        text += f"; contradicted at {', '.join(map(str, h['contradicted_at']))}"
    return text


def crossing(values: dict[int, float], line: float) -> dict:
    """Where a row's error crosses ``line`` along the depths.

    ``from``: the smallest depth at which the error is above the line and stays above at every deeper
    depth, or None; ``above_at``: every depth above it; ``between``: the depth where the straight
    line between the last depth below and ``from`` meets the line (None where ``from`` is the
    shallowest depth, or is None).
    """
    depths = sorted(d for d, v in values.items() if v is not None and not math.isnan(v))
    start = None
    for d in reversed(depths):
        if not values[d] > line:
            break
        start = d
    between = None
    if start is not None and depths.index(start) > 0:
        lo = depths[depths.index(start) - 1]
        a, b = values[lo], values[start]
        between = lo + (line - a) / (b - a) * (start - lo)
    return {"from": start, "above_at": [d for d in depths if values[d] > line], "depths": depths,
            "between": between}


def crossing_text(c: dict, line: float) -> str:
    if not c["depths"]:
        return "not run"
    if c["from"] is None:
        where = f" (above at {', '.join(map(str, c['above_at']))} only)" if c["above_at"] else ""
        return f"below {line:g}% at the deepest depth run: never crosses the line for good{where}"
    if c["between"] is None:
        return f"above {line:g}% at every depth run, from {c['from']}"
    return f"crosses {line:g}% between depths {c['depths'][c['depths'].index(c['from']) - 1]} and {c['from']} " \
           f"(at about {c['between']:.0f} by linear interpolation) and stays above"


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


def ranks_by_depth(stats, manifest: dict, name: str) -> dict[int, "ranking.Agreement"]:
    """Our ranking of the rows against the paper's at each depth (a ladder has a column per depth)."""
    depth_of = _depth_of(manifest["experiments"][name])
    out = {}
    for _, a in ranking.agreements(stats, name):
        depths = {depth_of[v] for v in a.rows}
        if len(depths) == 1:
            out[depths.pop()] = a
    return dict(sorted(out.items()))


def row_values(stats, manifest: dict, name: str) -> dict[str, dict[int, float]]:
    """Per source row, our statistic of the tables (``ours``) at each depth that ran."""
    meta = manifest["experiments"][name]
    axis, depth_of = meta["axis"], _depth_of(meta)
    s = stats[(stats["experiment"] == name) & (stats["seeds"] > 0)]
    out: dict[str, dict[int, float]] = {}
    for v, ours in zip(s["variant"], s["ours"]):
        out.setdefault(axis["rows"][v], {})[depth_of[v]] = float(ours)
    return out


def row_failures(stats, manifest: dict, name: str) -> dict[str, dict[int, str]]:
    """Per source row and depth, the runs the trainer ended as fail: `` (fail: 2/3, diverged)``, where any."""
    meta = manifest["experiments"][name]
    axis, depth_of = meta["axis"], _depth_of(meta)
    s = stats[(stats["experiment"] == name) & (stats["failed"] > 0)]
    out: dict[str, dict[int, str]] = {}
    for d in s.to_dict("records"):
        why = ", diverged" if d["diverged"] == d["failed"] else f", {d['diverged']} diverged" if d["diverged"] else ""
        out.setdefault(axis["rows"][d["variant"]], {})[depth_of[d["variant"]]] = \
            f" (fail: {d['failed']}/{d['seeds']}{why})"
    return out


# --- the README section ------------------------------------------------------------------------


def _cell(r: dict) -> str:
    if "effect" not in r:
        return r["verdict"]
    lo, hi = r["ci"]
    return f"{r['effect']:+.2f} [{lo:+.2f}, {hi:+.2f}] {r['verdict'].upper()}"


def readme_lines(manifest: dict, runs, stats, plots: list[str], rel) -> list[str]:
    """The README section of every ladder: claims by depth, from which depth each holds, fail rows
    against the paper's line, rank agreement per depth. ``rel`` turns a plot path into a link."""
    lines = []
    for name, axis in ladders(manifest).items():
        meta = manifest["experiments"][name]
        res = effects(manifest, runs, name)
        if not any("effect" in r for r in res):
            continue
        depths = axis["depths"]
        paper = paper_numbers(meta)
        lines += [f"## Claims against depth: {meta['title']}", "",
                  f"Each claim of {axis['rows_of']} tested at each depth on the seeds of that depth alone "
                  f"(Holm over the {len(axis['claims'])} claims of one depth). Cells: the effect in points of "
                  f"test error (positive: as claimed; for `close`, the gap), its 95% CI, and the verdict. "
                  "*paper*: the same difference on the paper's ResNet-110 numbers (> : a bound, from a "
                  "\"fail\" row).", ""]
        head = ["claim", *(f"depth {d}" for d in depths), "paper (110)", "where it holds"]
        table = [head]
        for i, claim in enumerate(axis["claims"]):
            by_depth = {r["depth"]: r for r in res if r["claim"] == i}
            pe = paper_effect(claim, paper, meta.get("fail_above"))
            pcell = "—" if pe is None else f"{'> ' if pe[1] else ''}{pe[0]:+.2f}"
            h = holds_from({d: r["verdict"] for d, r in by_depth.items()})
            table.append([claim["says"], *(_cell(by_depth[d]) for d in depths), pcell, holds_from_text(h)])
        lines.append(markdown_table(table))
        line = meta.get("fail_above")
        values = row_values(stats, manifest, name)
        fails = [row for row, p in paper.items() if p == "fail" and row in values]
        if line is not None and fails:
            lines += [f"Rows the paper marks \"fail\" (test error above {line:g}%) against that line, on our "
                      "statistic of the tables (median of seeds):", ""]
            failed = row_failures(stats, manifest, name)
            for row in fails:
                v = values[row]
                at = ", ".join(f"{d}: {v[d]:.1f}{failed.get(row, {}).get(d, '')}" for d in sorted(v))
                lines.append(f"- {row}: {crossing_text(crossing(v, line), line)} ({at})")
            lines.append("")
        agree = ranks_by_depth(stats, manifest, name)
        if agree:
            lines += ["Our ranking of the rows against the paper's at each depth (the paper's fail rows, and ours "
                      "failed in most seeds, tied last):", ""]
            lines += [f"- depth {d}: Spearman rho = {a.spearman:+.2f} (p {st.format_p(a.spearman_p)}), Kendall "
                      f"tau-b = {a.kendall:+.2f} (p {st.format_p(a.kendall_p)}) over {len(a.rows)} rows"
                      for d, a in agree.items()]
            lines.append("")
        stems = {figure_name(f, name) for f in FIGURES}
        mine = [p for p in plots if p.endswith(".png") and p.rsplit("/", 1)[-1][:-4] in stems]
        lines += [f"![{p.rsplit('/', 1)[-1][:-4]}]({rel(p)})" for p in mine]
        lines.append("")
    return lines
