"""The figures of a ladder (:mod:`ablation.reporting.depth_claims`): claims, ranking and row errors against depth.

* ``claims_vs_depth_<ladder>``: one panel per claim, its effect at each depth with the 95% CI,
  coloured by verdict, and the paper's effect (He 2016: ResNet-110 only) marked at depth 110;
* ``rank_vs_depth_<ladder>``: Spearman's rho and Kendall's tau-b of our ranking against the
  paper's at each depth;
* ``errors_vs_depth_<ladder>``: every row's test error (the tables' statistic) against depth,
  with the paper's "fail" line.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

from . import depth_claims as dc
from . import stats as st
from .plots import save_figure, setup_figures

VERDICT_COLORS = {st.HOLDS: "tab:green", st.NOT_SIGNIFICANT: "tab:gray", st.CONTRADICTED: "tab:red"}
PAPER_DEPTH = 110  # He 2016 Table 1 ran ResNet-110 only


def _depth_axis(ax, depths):
    ax.set_xscale("log")
    ax.set_xticks(depths)
    ax.set_xticklabels([str(d) for d in depths])
    ax.minorticks_off()
    ax.set_xlim(min(depths) / 1.25, max(depths) * 1.25)


def _scale(runs, name: str) -> str:
    sub = runs[(runs["experiment"] == name) & runs["status"].isin(st.DONE)]
    if sub.empty:
        return ""
    d = sub.iloc[0]
    return f"{d['dataset']}, {d['steps']:g} {d['schedule_unit']}, seeds per row: " \
           f"{'/'.join(map(str, sorted(set(sub.groupby('variant').size()))))}"


def plot_claims(manifest, runs, name: str, out: Path) -> list[str]:
    meta = manifest["experiments"][name]
    axis = meta["axis"]
    res = dc.effects(manifest, runs, name)
    if not any("effect" in r for r in res):
        return []
    plt, _ = setup_figures()
    depths, claims = axis["depths"], axis["claims"]
    paper = dc.paper_numbers(meta)
    cols = 3
    nrows = math.ceil(len(claims) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(5.2 * cols, 3.7 * nrows), squeeze=False)
    for i, claim in enumerate(claims):
        ax = axes[i // cols][i % cols]
        got = [r for r in res if r["claim"] == i and "effect" in r]
        ax.axhline(0, color="black", lw=0.8)
        if claim.get("close"):
            for y in (-claim["within"], claim["within"]):
                ax.axhline(y, color="black", lw=0.8, ls=":")
        for r in got:
            lo, hi = r["ci"]
            ax.errorbar([r["depth"]], [r["effect"]], yerr=[[r["effect"] - lo], [hi - r["effect"]]], fmt="o",
                        color=VERDICT_COLORS.get(r["verdict"], "black"), capsize=4, ms=6)
        if len(got) > 1:
            ax.plot([r["depth"] for r in got], [r["effect"] for r in got], color="tab:blue", lw=0.8, alpha=0.5)
        pe = dc.paper_effect(claim, paper, meta.get("fail_above"))
        if pe is not None:
            ax.scatter([PAPER_DEPTH * 1.1], [pe[0]], marker="^" if pe[1] else "*", s=110, color="black", zorder=4)
            ax.annotate(f"paper: {'>' if pe[1] else ''}{pe[0]:+.1f}, holds", (PAPER_DEPTH * 1.1, pe[0]),
                        xytext=(-6, 8), textcoords="offset points", ha="right", fontsize=7)
        _depth_axis(ax, depths)
        ax.margins(y=0.18)  # room for the paper's label above its mark
        ax.set_title("\n".join(textwrap.wrap(claim["says"], 48)), fontsize=8)
        ax.tick_params(labelsize=7)
        if i % cols == 0:
            ax.set_ylabel("effect (points of test error)", fontsize=8)
        if i // cols == nrows - 1:
            ax.set_xlabel("depth", fontsize=8)
    for j in range(len(claims), nrows * cols):
        axes[j // cols][j % cols].axis("off")
    handles = [plt.Line2D([], [], marker="o", ls="", color=c, label=v) for v, c in VERDICT_COLORS.items()]
    handles += [plt.Line2D([], [], marker="*", ls="", color="black", ms=10, label="paper's effect (ResNet-110)"),
                plt.Line2D([], [], marker="^", ls="", color="black", ms=8,
                           label="paper's bound (a \"fail\" row: above its line)")]
    fig.legend(handles=handles, loc="lower center", ncol=5, fontsize=8, bbox_to_anchor=(0.5, -0.02))
    fig.suptitle(f"Claims of {axis['rows_of']} against depth: effect (positive = as claimed; `close`: the gap, "
                 f"dotted: the margin) with 95% CI\nours: {_scale(runs, name)}; verdict per depth, Holm over the "
                 f"claims of that depth", fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 0.95))
    paths = save_figure(fig, out, dc.figure_name("claims_vs_depth", name))
    return paths


def plot_ranks(manifest, runs, stats, name: str, out: Path) -> list[str]:
    agree = dc.ranks_by_depth(stats, manifest, name)
    if not agree:
        return []
    plt, _ = setup_figures()
    depths = manifest["experiments"][name]["axis"]["depths"]
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    ds = list(agree)
    for attr, label, marker in (("spearman", "Spearman rho", "o"), ("kendall", "Kendall tau-b", "s")):
        ys = [getattr(agree[d], attr) for d in ds]
        ax.plot(ds, ys, marker=marker, label=label)
        for d, y in zip(ds, ys):
            ax.annotate(f"p {st.format_p(getattr(agree[d], attr + '_p'))}", (d, y), xytext=(4, -12 if
                        marker == "s" else 6), textcoords="offset points", fontsize=7)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_ylim(-1.05, 1.05)
    _depth_axis(ax, depths)
    ax.set_xlabel("depth")
    ax.set_ylabel("rank correlation with the paper's order")
    n = "/".join(str(len(a.rows)) for a in agree.values())
    rows_of = manifest["experiments"][name]["axis"]["rows_of"]
    ax.set_title(f"Our ranking of the rows of {rows_of} against the paper's, per depth ({n} rows)\n"
                 f"ours: {_scale(runs, name)}", fontsize=9)
    ax.legend(fontsize=8)
    paths = save_figure(fig, out, dc.figure_name("rank_vs_depth", name))
    return paths


def plot_rows(manifest, runs, stats, name: str, out: Path) -> list[str]:
    values = dc.row_values(stats, manifest, name)
    if not values:
        return []
    plt, sns = setup_figures()
    meta = manifest["experiments"][name]
    paper = dc.paper_numbers(meta)
    depths = meta["axis"]["depths"]
    labels = {meta["axis"]["rows"][r["variant"]]: r["label"] for r in meta["rows"]}
    fig, ax = plt.subplots(figsize=(9, 5.5))
    palette = sns.color_palette("tab10" if len(values) <= 10 else "husl", len(values))
    for (row, v), color in zip(values.items(), palette):
        ds = sorted(v)
        fail = paper.get(row) == "fail"
        ax.plot(ds, [v[d] for d in ds], marker="o", ls="--" if fail else "-", color=color,
                label=f"{labels.get(row, row)}{' (paper: fail)' if fail else ''}")
    if meta.get("fail_above") is not None:
        ax.axhline(meta["fail_above"], color="darkred", lw=1, ls=":",
                   label=f"the paper's \"fail\" line ({meta['fail_above']:g}%)")
    _depth_axis(ax, depths)
    ax.set_xlabel("depth")
    stat = "/".join(dict.fromkeys(stats[stats["experiment"] == name]["stat"]))
    ax.set_ylabel(f"final test error (%), {stat} of seeds")
    ax.set_title(f"{meta['title']}\nours: {_scale(runs, name)}; dashed: rows the paper marks fail", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    paths = save_figure(fig, out, dc.figure_name("errors_vs_depth", name))
    return paths


def draw(manifest, runs, stats, out: Path) -> list[str]:
    """Every figure of every ladder in the manifest; the paths written."""
    paths = []
    for name in dc.ladders(manifest):
        paths += plot_claims(manifest, runs, name, out)
        paths += plot_ranks(manifest, runs, stats, name, out)
        paths += plot_rows(manifest, runs, stats, name, out)
    return paths
