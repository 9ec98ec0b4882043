"""The figures of a study, matplotlib/seaborn, PNG and SVG; called by ``ablation.report``.

Each plot reads the tidy tables the report builds (runs, per-row statistics, history) and
is meant to be read without the text: He 2015 Fig. 6-style degradation curves, error
against depth, test error per variant beside the paper's number, and the training curves
of all shortcut variants on one figure.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .errors import ConfigError
from .models import arch_spec
from .results import write_atomic_with


def _setup_mpl():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    matplotlib.rcParams["svg.hashsalt"] = "ablation"  # stable ids: rebuilding the same results changes no byte
    return plt, sns


def _save(fig, out: Path, name: str) -> list[str]:
    paths = []
    for ext in ("png", "svg"):
        p = out / f"{name}.{ext}"
        write_atomic_with(p, lambda tmp: fig.savefig(tmp, dpi=130, bbox_inches="tight", format=ext,
                                                     metadata={"Date": None} if ext == "svg" else None))
        paths.append(str(p))
    return paths


def _depth_of(arch) -> int | None:
    try:
        return arch_spec(str(arch)).depth
    except ConfigError:
        return None


def _curves(runs, history, experiment: str):
    """Per variant: its mean curve over seeds (iteration, train_error, test_error)."""
    sub = runs[(runs["experiment"] == experiment) & runs["status"].isin(["ok", "fail"])]
    out = {}
    for variant, group in sub.groupby("variant", sort=False):
        h = history[history["hash"].isin(group["hash"])]
        if h.empty:
            continue
        mean = h.groupby("iteration")[["train_error", "test_error"]].mean().reset_index()
        out[variant] = mean
    return out


def _scale_info(runs, experiment: str) -> str:
    sub = runs[runs["experiment"] == experiment]
    if sub.empty:
        return ""
    d = sub.iloc[0]
    size = f" {int(d['image_size'])}px" if not pd.isna(d.get("image_size")) else ""
    archs = list(dict.fromkeys(str(a) for a in sub["arch"].dropna()))
    arch = f"{archs[0]} on " if len(archs) == 1 else ""
    return f"{arch}{d['dataset']}{size}"


def plot_degradation(manifest, runs, history, out: Path) -> list[str]:
    """He 2015 Fig. 6 style: training error thin dashed, test error bold; plain left, residual right."""
    curves = _curves(runs, history, "degradation")
    if not curves:
        return []
    plt, sns = _setup_mpl()
    rows = {r["variant"]: r for r in manifest["experiments"]["degradation"]["rows"]}
    arch = runs[runs["experiment"] == "degradation"].drop_duplicates("variant").set_index("variant")["arch"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    depths = sorted({_depth_of(arch[v]) for v in curves})
    colors = dict(zip(depths, sns.color_palette("viridis_r", len(depths))))
    for ax, column in zip(axes, ("plain", "residual")):
        for v, c in curves.items():
            if rows.get(v, {}).get("column") != column:
                continue
            d = _depth_of(arch[v])
            name = f"{column}-{d} ({arch[v]})"
            ax.plot(c["iteration"], c["train_error"], "--", lw=1, color=colors[d])
            ax.plot(c["iteration"], c["test_error"], "-", lw=2.2, color=colors[d], label=name)
        ax.set_title(f"{column} nets")
        ax.set_xlabel("iterations")
        if ax.lines:
            ax.legend(title="bold: test, dashed: train", fontsize=8, title_fontsize=8)
        else:
            ax.text(0.5, 0.5, "not run", ha="center", va="center", transform=ax.transAxes, color="gray")
    axes[0].set_ylabel("error (%)")
    fig.suptitle(f"Degradation (He 2015 Fig. 6 analogue, {_scale_info(runs, 'degradation')})")
    paths = _save(fig, out, "degradation_curves")
    plt.close(fig)
    return paths


def plot_depth(manifest, runs, stats, out: Path) -> list[str]:
    """Final error against depth, plain vs residual."""
    s = stats[(stats["experiment"] == "degradation") & (stats["seeds"] > 0)].copy()
    if s.empty:
        return []
    plt, sns = _setup_mpl()
    arch = runs[runs["experiment"] == "degradation"].drop_duplicates("variant").set_index("variant")["arch"]
    s["depth"] = [_depth_of(arch[v]) for v in s["variant"]]
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    palette = {"plain": "tab:red", "residual": "tab:blue"}
    for column, g in s.sort_values("depth").groupby("column"):
        ax.plot(g["depth"], g["test_median"], "o-", lw=2, color=palette.get(column), label=f"{column}: test")
        ax.plot(g["depth"], g["train_median"], "s--", lw=1, color=palette.get(column), label=f"{column}: train")
    ax.set_xlabel("depth (layers, as run)")
    ax.set_ylabel("final error (%), median over seeds")
    ax.set_xticks(sorted(s["depth"].unique()))
    ax.set_title(f"Error vs depth, plain vs residual ({_scale_info(runs, 'degradation')})")
    ax.legend()
    paths = _save(fig, out, "error_vs_depth")
    plt.close(fig)
    return paths


def plot_bars(manifest, runs, stats, experiment: str, out: Path) -> list[str]:
    """Our final test error per row (bar: median, dots: seeds) with the paper's number marked."""
    s = stats[(stats["experiment"] == experiment) & (stats["seeds"] > 0)]
    if s.empty:
        return []
    plt, sns = _setup_mpl()
    meta = manifest["experiments"][experiment]
    has_cols = s["column"].notna().any()
    labels = list(dict.fromkeys(s["label"]))
    columns = list(dict.fromkeys(s["column"])) if has_cols else [None]
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(labels) * len(columns) + 2), 5))
    width = 0.8 / len(columns)
    palette = sns.color_palette("deep", len(columns))
    papers = [float(p) for p in s["paper"] if isinstance(p, (int, float)) and not pd.isna(p)]
    # at least one point of error: all-zero errors would give matplotlib identical y limits
    top = max([s["test_median"].max(), *papers, 1.0])
    seeds_runs = runs[(runs["experiment"] == experiment) & runs["status"].isin(["ok", "fail"])]
    paper_drawn = fail_drawn = False
    for j, col in enumerate(columns):
        for i, label in enumerate(labels):
            hit = s[(s["label"] == label) & ((s["column"] == col) if has_cols else True)]
            if hit.empty:
                continue
            d = hit.iloc[0]
            x = i + (j - (len(columns) - 1) / 2) * width
            name = f"ours: {col}" if has_cols else "ours (median; dots: seeds)"
            ax.bar(x, d["test_median"], width * 0.9, color=palette[j], label=name,
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
    ax.set_ylabel(f"final test error (%) — paper: {meta['paper_metric']}")
    ax.set_ylim(0, top * (1.18 if fail_drawn else 1.08))
    ax.set_title(f"{meta['title']}\nours: {_scale_info(runs, experiment)}; hatched = fail", fontsize=10)
    handles, lbls = ax.get_legend_handles_labels()
    uniq = dict(zip(lbls, handles))
    ax.legend(uniq.values(), uniq.keys(), fontsize=8)
    paths = _save(fig, out, f"{experiment}_errors")
    plt.close(fig)
    return paths


def plot_shortcut_curves(manifest, runs, history, out: Path, experiment="identity_mappings") -> list[str]:
    """Training and test error of every shortcut variant on one figure."""
    curves = _curves(runs, history, experiment)
    if not curves:
        return []
    plt, sns = _setup_mpl()
    labels = {r["variant"]: r["label"] for r in manifest["experiments"][experiment]["rows"]}
    fig, axes = plt.subplots(1, 2, figsize=(13, 5), sharey=True)
    palette = sns.color_palette("tab20", len(curves))
    for color, (v, c) in zip(palette, curves.items()):
        axes[0].plot(c["iteration"], c["train_error"], lw=1.4, color=color, label=labels.get(v, v))
        axes[1].plot(c["iteration"], c["test_error"], lw=1.8, color=color, label=labels.get(v, v))
    axes[0].set_title("training error")
    axes[1].set_title("test error")
    for ax in axes:
        ax.set_xlabel("iterations")
    axes[0].set_ylabel("error (%)")
    axes[1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), title="shortcut", title_fontsize=8)
    fig.suptitle(f"Shortcut variants (He 2016 Table 1 rows), {_scale_info(runs, experiment)}")
    paths = _save(fig, out, f"{experiment}_curves")
    plt.close(fig)
    return paths


# --- the whole report -------------------------------------------------------------------------
