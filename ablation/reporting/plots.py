"""The figures of a study, matplotlib/seaborn, PNG and SVG; called by ``ablation.reporting.report``.

Each plot reads the tidy tables the report builds (runs, per-row statistics, history, the
lesion study) and is meant to be read without the text: He 2015 Fig. 6-style degradation
curves, error against depth, test error per variant beside the paper's number, the training
curves of all shortcut variants on one figure (curves: mean over seeds, band: min to max),
our ranking of the papers' rows against theirs, and the mechanisms of
:mod:`ablation.reporting.analysis` (lesion study, gradient flow, gate dynamics).
"""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path

import pandas as pd
from matplotlib.ticker import MaxNLocator

from . import analysis
from . import ranking
from . import stats as st
from ..core.outcomes import FINISHED
from ..core.errors import ConfigError
from ..nets.models import arch_spec
from ..core.files import write_atomic_with

BAND = "band: min to max over seeds"
GATED = {"exclusive-gate": "y = g F + (1 - g) x", "shortcut-gate": "y = F + (1 - g) x"}


def setup_figures():
    """(pyplot, seaborn) with the study's theme and stable SVG ids, for figure modules beside this one."""
    import matplotlib

    if "inline" not in matplotlib.get_backend():  # a notebook's inline backend draws the same and shows them
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    matplotlib.rcParams["svg.hashsalt"] = "ablation"  # stable ids: rebuilding the same results changes no byte
    return plt, sns


_kept: dict | None = None  # while capture() is open: figures by name, drawn but not written


@contextlib.contextmanager
def capture():
    """Inside, every figure the report draws is kept (name -> Figure) instead of written: what the Python
    API hands back (``Study.figure``), the same figures as the report's files."""
    global _kept
    outer, _kept = _kept, {}
    try:
        yield _kept
    finally:
        _kept = outer


def save_figure(fig, out: Path, name: str) -> list[str]:
    """``out/name.png`` and ``.svg``, each written atomically; the paths written (or would be, under :func:`capture`).

    Closes ``fig`` in pyplot: a report draws many figures, and a kept one is still a Figure to show or save.
    """
    import matplotlib.pyplot as plt

    if _kept is not None:
        _kept[name] = fig
        plt.close(fig)
        return [str(out / f"{name}.png"), str(out / f"{name}.svg")]
    paths = []
    for ext in ("png", "svg"):
        p = out / f"{name}.{ext}"
        write_atomic_with(p, lambda tmp: fig.savefig(tmp, dpi=130, bbox_inches="tight", format=ext,
                                                     metadata={"Date": None} if ext == "svg" else None))
        paths.append(str(p))
    plt.close(fig)
    return paths




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


def _scale_info(runs, experiment: str) -> str:
    sub = runs[runs["experiment"] == experiment]
    if sub.empty:
        return ""
    d = sub.iloc[0]
    size = f" {int(d['image_size'])}px" if not pd.isna(d.get("image_size")) else ""
    archs = list(dict.fromkeys(str(a) for a in sub["arch"].dropna()))
    arch = f"{archs[0]} on " if len(archs) == 1 else ""
    return f"{arch}{d['dataset']}{size}"


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
    fig.suptitle(f"Degradation (He 2015 Fig. 6 analogue, {_scale_info(runs, experiment)})")
    paths = save_figure(fig, out, f"{experiment}_curves")
    return paths


def plot_depth(manifest, runs, stats, out: Path, experiment: str) -> list[str]:
    """Final error against depth, plain vs residual (the columns of ``experiment``)."""
    s = stats[(stats["experiment"] == experiment) & (stats["seeds"] > 0)].copy()
    if s.empty:
        return []
    plt, sns = setup_figures()
    arch = runs[runs["experiment"] == experiment].drop_duplicates("variant").set_index("variant")["arch"]
    s["depth"] = [_depth_of(arch[v]) for v in s["variant"]]
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    palette = {"plain": "tab:red", "residual": "tab:blue"}
    for column, g in s.sort_values("depth").groupby("column"):
        for what, style, lw in (("test", "o-", 2), ("train", "s--", 1)):
            err = [g[f"{what}_mean"] - g[f"{what}_ci_low"], g[f"{what}_ci_high"] - g[f"{what}_mean"]]
            has = g[f"{what}_ci_low"].notna().all()
            ax.errorbar(g["depth"], g[f"{what}_mean"], yerr=err if has else None, fmt=style, lw=lw, capsize=3,
                        color=palette.get(column), label=f"{column}: {what}")
    ax.set_xlabel("depth (layers, as run)")
    ax.set_ylabel("final error (%), mean over seeds; bars: 95% CI (t)")
    ax.set_xticks(sorted(s["depth"].unique()))
    ax.set_title(f"Error vs depth, plain vs residual ({_scale_info(runs, experiment)})")
    ax.legend()
    paths = save_figure(fig, out, "error_vs_depth")
    return paths


def plot_bars(manifest, runs, stats, experiment: str, out: Path) -> list[str]:
    """Our final test error per row (bar: median, dots: seeds) with the paper's number marked."""
    s = stats[(stats["experiment"] == experiment) & (stats["seeds"] > 0)]
    if s.empty:
        return []
    plt, sns = setup_figures()
    meta = manifest["experiments"][experiment]
    has_cols = s["column"].notna().any()
    labels = list(dict.fromkeys(s["label"]))
    columns = list(dict.fromkeys(s["column"])) if has_cols else [None]
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(labels) * len(columns) + 2), 5))
    width = 0.8 / len(columns)
    palette = sns.color_palette("deep", len(columns))
    papers = [float(p) for p in s["paper"] if isinstance(p, (int, float)) and not pd.isna(p)]
    seeds_runs = runs[(runs["experiment"] == experiment) & runs["status"].isin(FINISHED)]
    # at least one point of error: all-zero errors would give matplotlib identical y limits
    top = max([s["ours"].max(), *papers, *pd.to_numeric(seeds_runs["final_test_error"], errors="coerce").dropna(), 1.0])
    paper_drawn = fail_drawn = False
    for j, col in enumerate(columns):
        for i, label in enumerate(labels):
            hit = s[(s["label"] == label) & ((s["column"] == col) if has_cols else True)]
            if hit.empty:
                continue
            d = hit.iloc[0]
            x = i + (j - (len(columns) - 1) / 2) * width
            name = f"ours: {col}" if has_cols else "ours (dots: seeds)"
            ax.bar(x, d["ours"], width * 0.9, color=palette[j], label=name,
                   hatch="//" if d["failed"] * 2 > d["seeds"] else None, edgecolor="white")
            pts = seeds_runs[seeds_runs["variant"] == d["variant"]]["final_test_error"]
            ax.scatter([x] * len(pts), pts, s=12, color="black", zorder=3)
            p = d["paper"]
            if p == "fail":
                ax.text(x, top * 1.02, "paper:\nfail", ha="center", va="bottom", fontsize=7, color="darkred")
                fail_drawn = True
            elif not pd.isna(p):
                ax.plot([x - width * 0.45, x + width * 0.45], [float(p)] * 2, color="black", lw=2.5,
                        label=None if paper_drawn else "paper's number (their setup)")
                paper_drawn = True
    ax.set_xticks(range(len(labels)))
    if not has_cols and s["arch"].nunique() > 1:
        arch = dict(zip(s["label"], s["arch"]))
        ax.set_xticklabels([f"{l}\n({arch[l]})" for l in labels], rotation=30, ha="right", fontsize=8)
    elif has_cols and all(s[s["label"] == l]["arch"].nunique() == 1 for l in labels):
        arch = dict(zip(s["label"], s["arch"]))
        ax.set_xticklabels([f"{l}\n(run as {arch[l]})" for l in labels], fontsize=8)
    else:
        ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
    stat = "/".join(dict.fromkeys(s["stat"])) if s["seeds"].max() > 1 else "one seed"
    ax.set_ylabel(f"final test error (%), ours: {stat} of seeds\npaper: {meta['paper_metric']}")
    ax.set_ylim(0, top * (1.18 if fail_drawn else 1.08))
    ax.set_title(f"{meta['title']}\nours: {_scale_info(runs, experiment)}; hatched = fail", fontsize=10)
    handles, lbls = ax.get_legend_handles_labels()
    uniq = dict(zip(lbls, handles))
    ax.legend(uniq.values(), uniq.keys(), fontsize=8)
    paths = save_figure(fig, out, f"{experiment}_errors")
    return paths


def plot_shortcut_curves(manifest, runs, history, out: Path, experiment: str) -> list[str]:
    """Training and test error of every shortcut variant on one figure."""
    curves = _curves(runs, history, experiment)
    if not curves:
        return []
    plt, sns = setup_figures()
    labels = {r["variant"]: r["label"] for r in manifest["experiments"][experiment]["rows"]}
    fig, axes = plt.subplots(1, 2, figsize=(13, 5), sharey=True)
    colors = _colors(manifest, runs, experiment, sns)
    for v, c in curves.items():
        color = colors[v]
        _line(axes[0], c, "train_error", "-", 1.4, color, labels.get(v, v))
        _line(axes[1], c, "test_error", "-", 1.8, color, labels.get(v, v))
    axes[0].set_title(f"training error (mean over seeds; {BAND})")
    axes[1].set_title(f"test error (mean over seeds; {BAND})")
    for ax in axes:
        ax.set_xlabel("iterations")
    axes[0].set_ylabel("error (%)")
    axes[1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), title="shortcut", title_fontsize=8)
    fig.suptitle(f"Shortcut variants (He 2016 Table 1 rows), {_scale_info(runs, experiment)}")
    paths = save_figure(fig, out, f"{experiment}_curves")
    return paths


def _colors(manifest, runs, experiment: str, sns) -> dict:
    """One color per row of the experiment that ran, the same in every figure of it."""
    ran = set(runs[(runs["experiment"] == experiment) & runs["status"].isin(FINISHED)]["variant"])
    rows = [r["variant"] for r in manifest["experiments"][experiment]["rows"] if r["variant"] in ran]
    # tab10's hues are far apart; past ten rows, evenly spaced hues rather than tab20's look-alike pairs
    palette = sns.color_palette("tab10" if len(rows) <= 10 else "husl", len(rows))
    return dict(zip(rows, palette))


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


def plot_lesion(manifest, runs, lesion, experiment: str, out: Path) -> list[str]:
    """Veit et al. 2016 (Sec. 4) analogue: test error with one unit removed (by index), and with k at random."""
    t = analysis.lesion_rows(manifest, runs, lesion)
    t = t[t["experiment"] == experiment]
    if t.empty:
        return []
    plt, sns = setup_figures()
    colors = _colors(manifest, runs, experiment, sns)
    fig, axes = plt.subplots(1, 2, figsize=(14, 5))
    for variant, g in t.groupby("variant", sort=False):
        color = colors.get(variant)
        single = g[g["kind"] == "single"].sort_values("unit")
        axes[0].plot(single["unit"], single["test_error"], "o-", ms=3.5, lw=1.5, color=color,
                     label=f"{variant} (seed {int(g['seed'].iloc[0])})")
        shape = single[single["shape_change"].astype(bool)]
        axes[0].scatter(shape["unit"], shape["test_error"], marker="X", s=70, color=color, zorder=3)
        axes[0].axhline(g[g["kind"] == "intact"]["test_error"].mean(), color=color, lw=0.8, ls=":")
        rnd = g[g["kind"] == "random"].groupby("k")["test_error"].agg(["mean", "min", "max"]).reset_index()
        axes[1].plot(rnd["k"], rnd["mean"], "o-", ms=3, lw=1.5, color=color, label=variant)
        axes[1].fill_between(rnd["k"], rnd["min"], rnd["max"], color=color, alpha=0.12, lw=0)
    axes[0].set_xlabel("unit removed (index; X: the unit changes the shape; gap: cannot be removed)")
    axes[0].set_ylabel("test error (%); dotted: nothing removed")
    axes[0].set_title("one unit removed at test time")
    axes[1].set_xlabel("units removed at random (k)")
    axes[1].set_ylabel(f"test error (%), mean of {analysis.LESION_DRAWS} draws; band: min to max")
    axes[1].set_title("k random units removed")
    axes[0].legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.14), ncol=3)
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(f"Lesion study (Veit et al. 2016), {experiment}: {_scale_info(runs, experiment)}, "
                 f"{analysis.LESION_IMAGES} test images")
    paths = save_figure(fig, out, f"lesion_{experiment}")
    return paths


def plot_grad_flow(manifest, runs, history, experiment: str, out: Path) -> list[str]:
    """||dL/dW_l|| against unit index l at each recorded iteration, log scale, median over seeds."""
    f = analysis.grad_flow(history, runs, experiment)
    if f.empty:
        return []
    plt, sns = setup_figures()
    colors = _colors(manifest, runs, experiment, sns)
    its = sorted(f["iteration"].unique())
    fig, axes = plt.subplots(1, len(its), figsize=(4.2 * len(its) + 2, 4.6), sharey=True, squeeze=False)
    for ax, it in zip(axes[0], its):
        for variant, g in f[f["iteration"] == it].groupby("variant", sort=False):
            g = g.sort_values("unit")
            ax.plot(g["unit"], g["norm"].where(g["norm"] > 0), "o-", ms=2.5, lw=1.3, color=colors.get(variant),
                    label=variant)
        ax.set_yscale("log")
        ax.set_title(f"iteration {it}" + (" (initialisation)" if it == its[0] else ""), fontsize=10)
        ax.set_xlabel("unit index (input side left)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0][0].set_ylabel("||dL/dW|| of the unit (median over seeds)")
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle(f"Gradient flow per unit, {experiment}: {_scale_info(runs, experiment)}")
    paths = save_figure(fig, out, f"grad_flow_{experiment}")
    return paths


def plot_gates(manifest, runs, history, experiment: str, out: Path) -> list[str]:
    """Mean gate g per stage over training, one panel per gated row (mean over seeds; band: min to max)."""
    g = analysis.gate_dynamics(history, runs, experiment)
    if g.empty:
        return []
    plt, sns = setup_figures()
    variants = list(dict.fromkeys(g["variant"]))
    fig, axes = plt.subplots(1, len(variants), figsize=(4.2 * len(variants), 4.3), sharey=True, squeeze=False)
    stages = sorted(g["stage"].unique())
    palette = dict(zip(stages, sns.color_palette("viridis", len(stages))))
    rows = runs[runs["experiment"] == experiment].drop_duplicates("variant").set_index("variant")
    for ax, variant in zip(axes[0], variants):
        for stage, h in g[g["variant"] == variant].groupby("stage"):
            h = h.sort_values("iteration")
            ax.plot(h["iteration"], h["mean"], "-", lw=1.8, color=palette[stage], label=f"stage {stage + 1}")
            ax.fill_between(h["iteration"], h["min"], h["max"], color=palette[stage], alpha=0.15, lw=0)
        b = json.loads(rows.loc[variant, "shortcut_args"] or "{}").get("b") if variant in rows.index else None
        if b is not None:  # where g starts: W_g x is small at initialisation
            ax.axhline(1 / (1 + math.exp(-b)), ls="--", lw=1, color="gray", label="sigmoid(b_g): g where W_g x = 0")
        ax.set_yscale("log")
        shortcut = rows.loc[variant, "shortcut"] if variant in rows.index else None
        ax.set_title(f"{variant}\n{GATED.get(shortcut, '')}", fontsize=9)
        ax.set_xlabel("iterations")
    axes[0][0].set_ylabel("mean gate g (log scale)")
    axes[0][0].legend(fontsize=8, title=f"mean over seeds;\n{BAND}", title_fontsize=7)
    fig.suptitle(f"Gate dynamics, {experiment}: {_scale_info(runs, experiment)}", y=1.05)
    paths = save_figure(fig, out, f"gates_{experiment}")
    return paths
