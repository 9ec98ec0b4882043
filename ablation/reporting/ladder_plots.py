"""The figures of a ladder (:mod:`ablation.reporting.ladder_claims`): claims, ranking and row errors against its key.

* ``claims_vs_<key>_<ladder>``: one panel per claim, its effect at each rung with the 95% CI,
  coloured by verdict, and the paper's effect marked at the ladder's ``paper_at``;
* ``rank_vs_<key>_<ladder>``: Spearman's rho and Kendall's tau-b of our ranking against the
  paper's at each rung;
* ``errors_vs_<key>_<ladder>``: every row's test error against the key, a panel per family of shortcut
  with identity in each: every seed a point (marked by how its run ended), the tables' statistic a line,
  and the paper's "fail" line where the runs are on the paper's dataset.

A numeric key is drawn on a log axis (depths and lengths grow by factors); another on evenly spaced ticks.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

from . import ladder_claims as dc
from . import stats as st
from ..core.rungs import axis_of, rung_noun, value_text
from .figure_style import (draw_seeds, families, not_shown, row_colors, save_figure, seed_legend, setup_figures, spread,
                           wrap)

VERDICT_COLORS = {st.HOLDS: "tab:green", st.NOT_SIGNIFICANT: "tab:gray", st.CONTRADICTED: "tab:red"}


def _numeric(values) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _x(axis: dict, value) -> float:
    """Where a rung stands on the x axis: its value for a numeric key, its index otherwise."""
    return value if _numeric(axis["values"]) else axis["values"].index(value)


def _rung_axis(ax, axis: dict, extra=()):
    values = axis["values"]
    if _numeric(values):
        shown = sorted({*values, *extra})
        ax.set_xscale("log")
        ax.set_xticks(shown)
        ax.set_xticklabels([value_text(v) for v in shown])
        ax.minorticks_off()
        ax.set_xlim(min(shown) / 1.25, max(shown) * 1.25)
    else:
        ax.set_xticks(range(len(values)))
        ax.set_xticklabels([value_text(v) for v in values])
        ax.set_xlim(-0.5, len(values) - 0.5)
    ax.set_xlabel(axis["key"], fontsize=8)


def _scale(runs, name: str) -> str:
    """``fashion-mnist, 500 iterations, seeds per row: 3``; a ladder over the length names every length it ran."""
    sub = runs[(runs["experiment"] == name) & runs["status"].isin(st.DONE)]
    if sub.empty:
        return ""
    d = sub.iloc[0]
    steps = ", ".join(f"{s:g}" for s in sorted(set(sub["steps"])))
    return f"{d['dataset']}, {steps} {d['schedule_unit']}, seeds per row: " \
           f"{'/'.join(map(str, sorted(set(sub.groupby('variant').size()))))}"


def plot_claims(manifest, runs, name: str, out: Path) -> list[str]:
    meta = manifest["experiments"][name]
    axis = axis_of(meta)
    res = dc.effects(manifest, runs, name)
    if not any("effect" in r for r in res):
        return []
    plt, _ = setup_figures()
    key, claims, paper_at = axis["key"], axis["claims"], axis.get("paper_at")
    paper = dc.paper_numbers(meta)
    numeric = _numeric(axis["values"])
    cols = 3
    nrows = math.ceil(len(claims) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.9 * cols, 3.7 * nrows), squeeze=False)
    for i, claim in enumerate(claims):
        ax = axes[i // cols][i % cols]
        got = [r for r in res if r["claim"] == i and "effect" in r]
        ax.axhline(0, color="black", lw=0.8)
        if claim.get("close"):
            for y in (-claim["within"], claim["within"]):
                ax.axhline(y, color="black", lw=0.8, ls=":")
        for r in got:
            lo, hi = r["ci"]
            ax.errorbar([_x(axis, r["rung"])], [r["effect"]], yerr=[[r["effect"] - lo], [hi - r["effect"]]],
                        fmt="o", color=VERDICT_COLORS.get(r["verdict"], "black"), capsize=4, ms=6)
        if len(got) > 1:
            ax.plot([_x(axis, r["rung"]) for r in got], [r["effect"] for r in got], color="tab:blue", lw=0.8,
                    alpha=0.5)
        pe = dc.paper_effect(claim, paper, meta.get("fail_above"))
        if pe is not None and paper_at is not None and numeric:
            ax.scatter([paper_at], [pe[0]], marker="^" if pe[1] else "*", s=110, color="black", zorder=4)
            ax.annotate(f"paper: {'>' if pe[1] else ''}{pe[0]:+.1f}", (paper_at, pe[0]),
                        xytext=(-6, 8), textcoords="offset points", ha="right", fontsize=7)
        _rung_axis(ax, axis, [paper_at] if paper_at is not None and numeric else [])
        ax.margins(y=0.18)  # room for the paper's label above its mark
        ax.set_title("\n".join(textwrap.wrap(claim["says"], 48)), fontsize=8)
        ax.tick_params(labelsize=7)
        if i % cols == 0:
            ax.set_ylabel("effect: difference of means\n(points of test error)", fontsize=8)
    for j in range(len(claims), nrows * cols):
        axes[j // cols][j % cols].axis("off")
    where = f"{key} {value_text(paper_at)}" if paper_at is not None else "its own scale"
    handles = [plt.Line2D([], [], marker="o", ls="", color=c, label=v) for v, c in VERDICT_COLORS.items()]
    handles += [plt.Line2D([], [], marker="*", ls="", color="black", ms=10, label=f"paper's effect ({where})"),
                plt.Line2D([], [], marker="^", ls="", color="black", ms=8,
                           label="paper's bound (a \"fail\" row: above its line)")]
    fig.legend(handles=handles, loc="lower center", ncol=5, fontsize=8, bbox_to_anchor=(0.5, -0.02))
    fig.suptitle(f"Claims of {', '.join(axis['rows_of'])} against {key}: effect (difference of means; positive = as claimed; "
                 f"`close`: the gap, dotted: the margin) with 95% CI\nours: {_scale(runs, name)}; verdict per "
                 f"{rung_noun(key)}: Holm-adjusted p < {st.ALPHA} over the claims of that {rung_noun(key)}", fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 0.95))
    return save_figure(fig, out, dc.figure_name("claims_vs", name, key))


def plot_ranks(manifest, runs, stats, name: str, out: Path) -> list[str]:
    agree = dc.ranks_by_rung(stats, manifest, name)
    if not agree:
        return []
    plt, _ = setup_figures()
    axis = axis_of(manifest["experiments"][name])
    key = axis["key"]
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    rungs = list(agree)
    for attr, label, marker in (("spearman", "Spearman rho", "o"), ("kendall", "Kendall tau-b", "s")):
        xs, ys = [_x(axis, v) for v in rungs], [getattr(agree[v], attr) for v in rungs]
        ax.plot(xs, ys, marker=marker, label=label)
        for v, x, y in zip(rungs, xs, ys):
            ax.annotate(f"p {st.format_p(getattr(agree[v], attr + '_p_holm'))}", (x, y),
                        xytext=(4, -12 if marker == "s" else 6), textcoords="offset points", fontsize=7)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_ylim(-1.05, 1.05)
    _rung_axis(ax, axis)
    ax.set_ylabel("rank correlation with the paper's order")
    n = "/".join(str(len(a.rows)) for a in agree.values())
    stat = dc.stat_name(stats, name)
    ax.set_title(f"Our ranking of the rows of {axis['rows_of'][0]} ({stat} of seeds) against the paper's, per {rung_noun(key)} "
                 f"({n} rows)\nours: {_scale(runs, name)}; p: Holm-adjusted over the {len(rungs)} {rung_noun(key, True)}", fontsize=9)
    ax.legend(fontsize=8)
    return save_figure(fig, out, dc.figure_name("rank_vs", name, key))


def plot_rows(manifest, runs, stats, name: str, out: Path) -> list[str]:
    """Every row's final test error against the key: a panel per family of shortcut (identity in each, for
    reference), every seed a point marked by how its run ended, the tables' statistic a line through the rungs.

    Within a panel each row stands a little apart from the next (a few percent of the key, on its log axis),
    so that seeds at the same rung do not hide each other.
    """
    values = dc.row_values(stats, manifest, name)
    if not values:
        return []
    plt, _ = setup_figures()
    meta = manifest["experiments"][name]
    axis = axis_of(meta)
    paper = dc.paper_numbers(meta)
    labels = {axis["rows"][r["variant"]]: r["label"] for r in meta["rows"]}
    rung = dc.rungs_of(meta)
    done = runs[(runs["experiment"] == name) & runs["status"].isin(st.DONE)].copy()
    done["row"] = [axis["rows"].get(v) for v in done["variant"]]
    done["rung"] = [rung.get(v) for v in done["variant"]]
    shortcuts = {}
    for row, shortcut in zip(done["row"], done["shortcut"]):
        shortcuts.setdefault(row, shortcut)
    shortcuts = {row: shortcuts.get(row) for row in values}
    colors = row_colors(shortcuts)
    groups = families(shortcuts)
    reference = groups.pop("identity", []) if len(groups) > 1 else []
    panels = list(groups.items())
    ncols = 1 if len(panels) == 1 else 2
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.6 * ncols, 4.4 * nrows), sharey=True, squeeze=False,
                             layout="constrained")
    line = st.fail_above(meta, dc.dataset_of(runs, name))
    stat = dc.stat_name(stats, name)
    numeric = _numeric(axis["values"])
    drawn = set()
    for k, (family, rows) in enumerate(panels):
        ax = axes[k // ncols][k % ncols]
        shown = [*reference, *rows]
        half = 0.09 if numeric else 0.25  # the rows of a panel side by side: on a log axis, +-9% of the key
        for i, row in enumerate(shown):
            off = spread(len(shown), half)[i]
            where = (lambda r, o=0.0: _x(axis, r) * math.exp(off + o)) if numeric else (lambda r, o=0.0: _x(axis, r) + off + o)
            v = values[row]
            fail = paper.get(row) == "fail"
            ax.plot([where(r) for r in sorted(v)], [v[r] for r in sorted(v)], ls="--" if fail else "-", lw=1.6,
                    color=colors[row], alpha=0.9,
                    label=wrap(f"{labels.get(row, row)}{' (paper: fail)' if fail else ''}", 46))
            seeds = done[done["row"] == row].sort_values(["rung", "seed"])
            at = seeds.groupby("rung", sort=False)["seed"]  # a row's seeds of one rung side by side
            own = [spread(n, half / (2 * len(shown)))[i] for i, n in zip(at.cumcount(), at.transform("size"))]
            drawn |= draw_seeds(ax, [where(r, o) for r, o in zip(seeds["rung"], own)], seeds["final_test_error"],
                                seeds["status"], colors[row], line, size=12)
        if line is not None:
            ax.axhline(line, color="darkred", lw=1, ls=":", label=f"the paper's \"fail\" line ({line:g}%)")
        _rung_axis(ax, axis)
        ax.set_title(family + (" (identity for reference)" if reference else ""), fontsize=9)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
        if k % ncols == 0:
            ax.set_ylabel(f"final test error (%)\nline: {stat} of seeds; points: each seed", fontsize=9)
        ax.tick_params(labelsize=8)
    for j in range(len(panels), nrows * ncols):
        axes[j // ncols][j % ncols].axis("off")
    fig.suptitle(f"{meta['title']}\nours: {_scale(runs, name)}; line: the {stat} of seeds, dashed where the paper "
                 f"marks the row fail; points: every seed", fontsize=9)
    handles = seed_legend(drawn, line, note=not_shown(runs, name))
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 3), fontsize=8)
    return save_figure(fig, out, dc.figure_name("errors_vs", name, axis["key"]))


def draw(manifest, runs, stats, out: Path) -> list[str]:
    """Every figure of every ladder in the manifest; the paths written."""
    paths = []
    for name in dc.ladders(manifest):
        paths += plot_claims(manifest, runs, name, out)
        paths += plot_ranks(manifest, runs, stats, name, out)
        paths += plot_rows(manifest, runs, stats, name, out)
    return paths
