"""The error figures of a study, PNG and SVG; called by ``ablation.reporting.report``.

Each plot reads the tidy tables the report builds (runs, per-row statistics, history) and is meant to be
read without the text: He 2015 Fig. 6-style degradation curves, error against depth, test error per
variant beside the paper's number, the training curves of all shortcut variants on one figure (curves:
mean over seeds, band: min to max), and our ranking of the papers' rows against theirs. What every
figure shares (colours, seed marks, size) is :mod:`ablation.reporting.figure_style`; the figures of the
mechanisms (lesion study, gradient flow, gates) are :mod:`ablation.reporting.mechanism_plots`.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from . import ranking
from . import stats as st
from ..core.outcomes import FINISHED
from ..core.errors import ConfigError
from ..nets.archs import arch_spec
from .figure_style import (BAND, FAMILY_COLORS, MAX_WIDTH, draw_seeds, fail_line, family_of, not_shown, row_colors,
                           save_figure, scale_info, seed_legend, setup_figures, shortcuts_of, spread, variant_colors,
                           wrap)


def _depth_of(arch) -> int | None:
    try:
        return arch_spec(str(arch)).depth
    except ConfigError:
        return None


def _curves(runs, history, experiment: str):
    """Per variant: its curves over seeds, ``<train|test>_error_<mean|min|max>`` by iteration."""
    sub = runs[(runs["experiment"] == experiment) & runs["status"].isin(FINISHED)]
    out = {}
    for variant, group in sub.groupby("variant", sort=False):
        h = history[history["hash"].isin(group["hash"])]
        if h.empty:
            continue
        agg = h.groupby("iteration")[["train_error", "test_error"]].agg(["mean", "min", "max"])
        agg.columns = [f"{a}_{b}" for a, b in agg.columns]
        out[variant] = agg.reset_index()
    return out


def _line(ax, c, what: str, style: str, lw: float, color, label=None, band: bool = True):
    """The mean curve over seeds, with the min-to-max band when there are several seeds."""
    ax.plot(c["iteration"], c[f"{what}_mean"], style, lw=lw, color=color, label=label)
    if band and (c[f"{what}_max"] > c[f"{what}_min"]).any():
        ax.fill_between(c["iteration"], c[f"{what}_min"], c[f"{what}_max"], color=color, alpha=0.15, lw=0)


def plot_degradation(manifest, runs, history, out: Path, experiment: str) -> list[str]:
    """He 2015 Fig. 6 style: training error thin dashed, test error bold; plain left, residual right.

    The rows of ``experiment`` are nets of several depths in two columns, ``plain`` and ``residual``.
    """
    curves = _curves(runs, history, experiment)
    if not curves:
        return []
    plt, sns = setup_figures()
    rows = {r["variant"]: r for r in manifest["experiments"][experiment]["rows"]}
    arch = runs[runs["experiment"] == experiment].drop_duplicates("variant").set_index("variant")["arch"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    depths = sorted({_depth_of(arch[v]) for v in curves})
    colors = dict(zip(depths, sns.color_palette("viridis_r", len(depths))))
    for ax, column in zip(axes, ("plain", "residual")):
        for v, c in curves.items():
            if rows.get(v, {}).get("column") != column:
                continue
            d = _depth_of(arch[v])
            name = f"{column}-{d} ({arch[v]})"
            _line(ax, c, "train_error", "--", 1, colors[d], band=False)
            _line(ax, c, "test_error", "-", 2.2, colors[d], name)
        ax.set_title(f"{column} nets")
        ax.set_xlabel("iterations")
        if ax.lines:
            ax.legend(title=f"mean over seeds; bold: test ({BAND}),\ndashed: train", fontsize=8, title_fontsize=8)
        else:
            ax.text(0.5, 0.5, "not run", ha="center", va="center", transform=ax.transAxes, color="gray")
    axes[0].set_ylabel("error (%)")
    fig.suptitle(f"Degradation (He 2015 Fig. 6 analogue, {scale_info(runs, experiment)})")
    paths = save_figure(fig, out, f"{experiment}_curves")
    return paths


def plot_depth(manifest, runs, stats, out: Path, experiment: str) -> list[str]:
    """Final error against depth, plain vs residual (the columns of ``experiment``): every seed a point, the mean
    a line with its 95% interval, test error bold and training error dashed."""
    s = stats[(stats["experiment"] == experiment) & (stats["seeds"] > 0)].copy()
    if s.empty:
        return []
    plt, sns = setup_figures()
    arch = runs[runs["experiment"] == experiment].drop_duplicates("variant").set_index("variant")["arch"]
    s["depth"] = [_depth_of(arch[v]) for v in s["variant"]]
    seeds_runs = runs[(runs["experiment"] == experiment) & runs["status"].isin(FINISHED)]
    line = fail_line(manifest["experiments"][experiment], seeds_runs)
    shortcut = shortcuts_of(runs, experiment, list(s["variant"]))
    fig, ax = plt.subplots(figsize=(7, 4.8))
    # a column is one family of shortcut (plain nets: none, residual: identity), whatever its depths
    palette = {column: FAMILY_COLORS.get(family_of(shortcut[g["variant"].iloc[0]]), "tab:blue")
               for column, g in s.groupby("column")}
    half = 0.02 * (s["depth"].max() - s["depth"].min() or 10)  # seeds of a depth side by side, a column each side
    columns = sorted(set(s["column"].dropna()))
    drawn = set()
    for column, g in s.sort_values("depth").groupby("column"):
        side = (columns.index(column) - (len(columns) - 1) / 2) * 2.5 * half
        for what, style, lw in (("test", "o-", 2), ("train", "s--", 1)):
            err = [g[f"{what}_mean"] - g[f"{what}_ci_low"], g[f"{what}_ci_high"] - g[f"{what}_mean"]]
            has = g[f"{what}_ci_low"].notna().all()
            ax.errorbar(g["depth"], g[f"{what}_mean"], yerr=err if has else None, fmt=style, lw=lw, capsize=3, ms=4,
                        color=palette.get(column), label=f"{column}: {what}, mean of seeds")
        for variant, depth in zip(g["variant"], g["depth"]):
            pts = seeds_runs[seeds_runs["variant"] == variant].sort_values("seed")
            xs = [depth + side + o for o in spread(len(pts), half)]
            drawn |= draw_seeds(ax, xs, pts["final_test_error"], pts["status"], palette.get(column), line, size=10)
            ax.scatter(xs, pd.to_numeric(pts["final_train_error"], errors="coerce"), marker="o", s=10,
                       facecolors="none", edgecolors=palette.get(column), linewidths=0.7, zorder=3)
    ax.set_xlabel("depth (layers, as run)")
    ax.set_ylabel("final error (%): line mean of seeds,\nbars its 95% CI (t), points each seed")
    ax.set_xticks(sorted(s["depth"].unique()))
    ax.set_title(f"Error vs depth, plain vs residual ({scale_info(runs, experiment)})")
    handles, labels = ax.get_legend_handles_labels()
    handles.append(plt.Line2D([], [], marker="o", ls="", ms=5, markerfacecolor="none", color="dimgray",
                              label="hollow: a seed's training error"))
    handles += seed_legend(drawn, line, note=not_shown(runs, experiment), seed="a seed's test error")
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    paths = save_figure(fig, out, "error_vs_depth")
    return paths


BAR_SLOT = 0.9  # inches per bar where the bars of a row's columns stand side by side
FACET_SLOT = 0.45  # inches per bar in a panel of one column


def plot_bars(manifest, runs, stats, experiment: str, out: Path) -> list[str]:
    """Our final test error per row (bar: the tables' statistic, points: every seed, marked by how it ended)
    with the paper's number marked.

    The columns of a row stand side by side where they fit in :data:`MAX_WIDTH`; otherwise (a ladder's 12 rows
    at 4 depths) each column is a panel of its own, in a grid, and the bars take their row's family colour.
    """
    s = stats[(stats["experiment"] == experiment) & (stats["seeds"] > 0)]
    if s.empty:
        return []
    plt, sns = setup_figures()
    meta = manifest["experiments"][experiment]
    has_cols = s["column"].notna().any()
    labels = list(dict.fromkeys(s["label"]))
    columns = list(dict.fromkeys(s["column"])) if has_cols else [None]
    seeds_runs = runs[(runs["experiment"] == experiment) & runs["status"].isin(FINISHED)]
    line = fail_line(meta, seeds_runs)
    papers = [float(p) for p in s["paper"] if isinstance(p, (int, float)) and not pd.isna(p)]
    # at least one point of error: all-zero errors would give matplotlib identical y limits
    top = max([s["ours"].max(), *papers, *pd.to_numeric(seeds_runs["final_test_error"], errors="coerce").dropna(), 1.0])
    grouped = BAR_SLOT * len(labels) * len(columns) + 2 <= MAX_WIDTH
    panels = [columns] if grouped else [[c] for c in columns]
    panel_w = BAR_SLOT * len(labels) * len(columns) + 2 if grouped else FACET_SLOT * len(labels) + 1.2
    ncols = max(1, min(len(panels), int((MAX_WIDTH + 0.01) // panel_w)))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(max(6.0, panel_w * ncols), 5 * nrows + 1.5), sharey=True,
                             sharex=not grouped, squeeze=False, layout="constrained")
    by_label = {label: v for label, v in zip(s["label"], s["variant"])}
    family = row_colors(shortcuts_of(runs, experiment, [by_label[label] for label in labels]))
    family = {label: family[by_label[label]] for label in labels}
    drawn, paper_drawn, fail_drawn = set(), False, False
    stat = f"{'/'.join(dict.fromkeys(s['stat']))} of seeds" if s["seeds"].max() > 1 else "one seed"
    for k, cols in enumerate(panels):
        ax = axes[k // ncols][k % ncols]
        width = 0.8 / len(cols)
        palette = sns.color_palette("deep", len(cols))
        for j, col in enumerate(cols):
            for i, label in enumerate(labels):
                hit = s[(s["label"] == label) & ((s["column"] == col) if has_cols else True)]
                if hit.empty:
                    continue
                d = hit.iloc[0]
                x = i + (j - (len(cols) - 1) / 2) * width
                color = palette[j] if len(cols) > 1 else family[label]
                name = f"ours: {col}, {stat}" if len(cols) > 1 else f"bar: ours, {stat}"
                ax.bar(x, d["ours"], width * 0.9, color=color, alpha=0.9 if len(cols) > 1 else 0.75,
                       label=name, hatch="//" if d["failed"] * 2 > d["seeds"] else None, edgecolor="white")
                pts = seeds_runs[seeds_runs["variant"] == d["variant"]].sort_values("seed")
                xs = [x + o for o in spread(len(pts), width * 0.25)]
                drawn |= draw_seeds(ax, xs, pts["final_test_error"], pts["status"], "black", line)
                p = d["paper"]
                if p == "fail":
                    ax.text(x, top * 1.02, "paper:\nfail", ha="center", va="bottom", fontsize=7, color="darkred")
                    fail_drawn = True
                elif not pd.isna(p):
                    ax.plot([x - width * 0.45, x + width * 0.45], [float(p)] * 2, color="black", lw=2.5,
                            label=None if paper_drawn else "paper's number (their setup)")
                    paper_drawn = True
        if line is not None:
            ax.axhline(line, color="darkred", lw=1, ls=":", label=f"the paper's \"fail\" line ({line:g}%)")
        if not grouped:
            archs = ", ".join(dict.fromkeys(s[s["column"] == cols[0]]["arch"]))
            ax.set_title(f"{cols[0]}" + (f" ({archs})" if archs and archs not in str(cols[0]) else ""), fontsize=10)
        ax.set_xticks(range(len(labels)))
        _bar_labels(ax, s, labels, has_cols, grouped)
        if k % ncols == 0:
            ax.set_ylabel(f"final test error (%)\nours: bar {stat}, points each seed\n"
                          f"paper: {meta['paper_metric']}", fontsize=9)
        ax.set_ylim(0, top * (1.18 if fail_drawn else 1.08))
    for k in range(len(panels), nrows * ncols):
        axes[k // ncols][k % ncols].axis("off")
    handles, lbls = axes[0][0].get_legend_handles_labels()
    uniq = dict(zip(lbls, handles))
    if not grouped or len(columns) == 1:
        uniq = {k: h for k, h in uniq.items() if not k.startswith("bar: ")}
        uniq[f"bar: ours, {stat} (colour: family of shortcut)"] = plt.Rectangle((0, 0), 1, 1, color="gray",
                                                                                       alpha=0.6)
    for h in seed_legend(drawn, line, color="black", note=not_shown(runs, experiment)):
        uniq[h.get_label()] = h
    if any(d["failed"] * 2 > d["seeds"] for d in s.to_dict("records")):
        uniq["hatched: most seeds failed"] = plt.Rectangle((0, 0), 1, 1, facecolor="white", edgecolor="gray",
                                                           hatch="//")
    fig.legend(uniq.values(), uniq.keys(), fontsize=8, loc="outside lower center", ncol=3)
    fig.suptitle(f"{meta['title']}\nours: {scale_info(runs, experiment)}", fontsize=10)
    paths = save_figure(fig, out, f"{experiment}_errors")
    return paths


def _bar_labels(ax, s, labels, has_cols: bool, grouped: bool) -> None:
    arch = dict(zip(s["label"], s["arch"]))
    if not grouped:
        # a panel per column gives each bar FACET_SLOT: at 40 degrees two lines of 7 pt fit beside the next
        # label, a third runs into it, so long labels wrap into longer lines rather than more of them
        ax.set_xticklabels([wrap(l, 48) for l in labels], rotation=40, ha="right", rotation_mode="anchor", fontsize=7)
    elif not has_cols and s["arch"].nunique() > 1:
        ax.set_xticklabels([f"{wrap(l, 36)}\n({arch[l]})" for l in labels], rotation=30, ha="right", fontsize=8)
    elif has_cols and all(s[s["label"] == l]["arch"].nunique() == 1 for l in labels):
        ax.set_xticklabels([f"{wrap(l, 24)}\n(run as {arch[l]})" for l in labels], fontsize=8)
    else:
        ax.set_xticklabels([wrap(l, 36) for l in labels], rotation=30, ha="right", fontsize=8)


def plot_shortcut_curves(manifest, runs, history, out: Path, experiment: str) -> list[str]:
    """Training and test error of every shortcut variant on one figure."""
    curves = _curves(runs, history, experiment)
    if not curves:
        return []
    plt, sns = setup_figures()
    labels = {r["variant"]: r["label"] for r in manifest["experiments"][experiment]["rows"]}
    fig, axes = plt.subplots(1, 2, figsize=(11.5, 5), sharey=True, layout="constrained")
    colors = variant_colors(manifest, runs, experiment)
    for v, c in curves.items():
        color = colors[v]
        _line(axes[0], c, "train_error", "-", 1.4, color, wrap(labels.get(v, v), 44))
        _line(axes[1], c, "test_error", "-", 1.8, color, wrap(labels.get(v, v), 44))
    axes[0].set_title("training error")
    axes[1].set_title("test error")
    for ax in axes:
        ax.set_xlabel("iterations")
    axes[0].set_ylabel("error (%)")
    axes[1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), title="shortcut", title_fontsize=8)
    fig.suptitle(f"Shortcut variants (He 2016 Table 1 rows), {scale_info(runs, experiment)}\n"
                 f"curves: mean over seeds; {BAND}")
    paths = save_figure(fig, out, f"{experiment}_curves")
    return paths


def plot_ranking(stats, ranked: dict, out: Path) -> list[str]:
    """Our rank of each row against the paper's (1 = lowest error), with the rank correlations."""
    panels = [(name, table, column, a) for name, table in ranked.items() for column, a in ranking.agreements(stats, name)]
    if not panels:
        return []
    plt, sns = setup_figures()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.6 * len(panels), 5), squeeze=False)
    for ax, (name, table, column, a) in zip(axes[0], panels):
        n = len(a.rows)
        ax.plot([1, n], [1, n], ":", color="gray", lw=1, label="same order as the paper")
        ax.scatter(a.paper_rank, a.our_rank, s=30, color="tab:blue", zorder=3)
        seen = {}
        for v, x, y in zip(a.rows, a.paper_rank, a.our_rank):  # rows on the same point stack their names
            k = seen[(x, y)] = seen.get((x, y), -1) + 1
            ax.annotate(v, (x, y), xytext=(5, 4 - 9 * k), textcoords="offset points", fontsize=7)
        ax.set_xlim(0.5, n + 1.8)
        ax.set_ylim(0.5, n + 0.8)
        ax.set_xlabel("paper's rank (1 = lowest error)")
        ax.set_ylabel("our rank")
        ax.set_title(f"{table}{f', {column}' if column else ''}\nSpearman rho = {a.spearman:+.2f} "
                     f"(p {st.format_p(a.spearman_p)}), Kendall tau-b = {a.kendall:+.2f} "
                     f"(p {st.format_p(a.kendall_p)})",
                     fontsize=9)
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle("Our ranking of the papers' rows against theirs (ours: the statistic of the tables; the paper's "
                 "fail rows,\nand ours that failed in most seeds, tied last)", y=1.08)
    paths = save_figure(fig, out, "ranking_vs_paper")
    return paths
