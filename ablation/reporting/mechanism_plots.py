"""The figures of the mechanisms of :mod:`ablation.reporting.analysis`: the lesion study, gradient flow and gates.

Veit et al. 2016's lesion study (test error with units removed), the gradient norm per stage over
training, and the mean gate of the gated shortcuts; in the style every figure shares
(:mod:`ablation.reporting.figure_style`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from matplotlib.ticker import MaxNLocator

from . import analysis
from ..core.rungs import axis_of, rung_of
from .figure_style import (BAND, MAX_WIDTH, facets, legend_below, legend_handles, save_figure, scale_info,
                           setup_figures, source_rows, variant_colors)


GATED = {"exclusive-gate": "y = g F + (1 - g) x", "shortcut-gate": "y = F + (1 - g) x"}


def plot_lesion(manifest, runs, lesion, experiment: str, out: Path) -> list[str]:
    """Veit et al. 2016 (Sec. 4) analogue: test error with one unit removed (by index), and with k at random;
    a ladder's rungs each a row of panels."""
    t = analysis.lesion_rows(manifest, runs, lesion)
    t = t[t["experiment"] == experiment]
    if t.empty:
        return []
    plt, sns = setup_figures()
    colors = variant_colors(manifest, runs, experiment)
    source = source_rows(manifest["experiments"][experiment])
    panels = facets(manifest, experiment, dict.fromkeys(t["variant"]))
    fig, axes = plt.subplots(len(panels), 2, figsize=(13, 4.8 * len(panels)), squeeze=False, layout="constrained")
    for (title, variants), axs in zip(panels, axes):
        for variant in variants:
            g = t[t["variant"] == variant]
            color = colors.get(variant)
            single = g[g["kind"] == "single"].sort_values("unit")
            axs[0].plot(single["unit"], single["test_error"], "o-", ms=3.5, lw=1.5, color=color,
                        label=f"{source.get(variant, variant)} (seed {int(g['seed'].iloc[0])})")
            shape = single[single["shape_change"].astype(bool)]
            axs[0].scatter(shape["unit"], shape["test_error"], marker="X", s=70, color=color, zorder=3)
            axs[0].axhline(g[g["kind"] == "intact"]["test_error"].mean(), color=color, lw=0.8, ls=":")
            rnd = g[g["kind"] == "random"].groupby("k")["test_error"].agg(["mean", "min", "max"]).reset_index()
            axs[1].plot(rnd["k"], rnd["mean"], "o-", ms=3, lw=1.5, color=color)
            axs[1].fill_between(rnd["k"], rnd["min"], rnd["max"], color=color, alpha=0.12, lw=0)
        axs[0].set_ylabel("test error (%); dotted: nothing removed", fontsize=9)
        axs[0].set_title(f"{title + ': ' if title else ''}one unit removed at test time", fontsize=10)
        axs[1].set_ylabel(f"test error (%), mean of {analysis.LESION_DRAWS} draws;\nband: min to max", fontsize=9)
        axs[1].set_title(f"{title + ': ' if title else ''}k random units removed", fontsize=10)
        for ax in axs:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[-1][0].set_xlabel("unit removed (index; X: the unit changes the shape; gap: cannot be removed)", fontsize=9)
    axes[-1][1].set_xlabel("units removed at random (k)", fontsize=9)
    fig.suptitle(f"Lesion study (Veit et al. 2016), {experiment}: {scale_info(runs, experiment)}, "
                 f"{analysis.LESION_IMAGES} test images")
    legend_below(fig, legend_handles(axes[:, 0]), ncol=3)
    paths = save_figure(fig, out, f"lesion_{experiment}")
    return paths


def plot_grad_flow(manifest, runs, history, experiment: str, out: Path) -> list[str]:
    """||dL/dW_l|| against unit index l at each recorded iteration (a column each), log scale, median over seeds;
    a ladder's rungs each a row of panels."""
    f = analysis.grad_flow(history, runs, experiment)
    if f.empty:
        return []
    plt, sns = setup_figures()
    colors = variant_colors(manifest, runs, experiment)
    source = source_rows(manifest["experiments"][experiment])
    panels = facets(manifest, experiment, dict.fromkeys(f["variant"]))
    # rungs of a length ladder record at other iterations: each row of panels takes its own, so that no
    # column stands empty for the rungs that never reached it
    its_of = [sorted(f.loc[f["variant"].isin(variants), "iteration"].unique()) for _, variants in panels]
    columns = max(len(its) for its in its_of)
    width = min(4.2, MAX_WIDTH / columns)
    fig, axes = plt.subplots(len(panels), columns, figsize=(width * columns, 3.9 * len(panels)), sharey=True,
                             squeeze=False, layout="constrained")
    for (title, variants), axs, its in zip(panels, axes, its_of):
        for ax in axs[len(its):]:
            ax.set_visible(False)
        for ax, it in zip(axs, its):
            at = f[(f["iteration"] == it) & f["variant"].isin(variants)]
            for variant, g in at.groupby("variant", sort=False):
                g = g.sort_values("unit")
                ax.plot(g["unit"], g["norm"].where(g["norm"] > 0), "o-", ms=2.5, lw=1.3, color=colors.get(variant),
                        label=source.get(variant, variant))
            ax.set_yscale("log")
            ax.set_title(f"{title + ', ' if title else ''}iteration {it}" + (" (initialisation)" if it == its[0]
                                                                             else ""), fontsize=9)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        axs[0].set_ylabel("||dL/dW|| of the unit\n(median over seeds)", fontsize=9)
    for ax in axes[-1]:
        ax.set_xlabel("unit index (input side left)", fontsize=9)
    fig.suptitle(f"Gradient flow per unit, {experiment}: {scale_info(runs, experiment)}")
    legend_below(fig, legend_handles(axes.flat), ncol=4)
    paths = save_figure(fig, out, f"grad_flow_{experiment}")
    return paths


def plot_gates(manifest, runs, history, experiment: str, out: Path) -> list[str]:
    """Mean gate g per stage over training, one panel per gated row (mean over seeds; band: min to max), in a
    grid: a ladder's gated rows down and its rungs across, other experiments' rows wrapped."""
    g = analysis.gate_dynamics(history, runs, experiment)
    if g.empty:
        return []
    plt, sns = setup_figures()
    variants = list(dict.fromkeys(g["variant"]))
    meta = manifest["experiments"][experiment]
    if axis_of(meta):
        source, rung = source_rows(meta), {r["variant"]: rung_of(r) for r in meta["rows"]}
        down, across = list(dict.fromkeys(source[v] for v in variants)), list(dict.fromkeys(rung[v] for v in variants))
        across.sort(key=lambda r: (not isinstance(r, (int, float)), r if isinstance(r, (int, float)) else 0))
        place = {v: (down.index(source[v]), across.index(rung[v])) for v in variants}
        nrows, ncols = len(down), len(across)
    else:
        ncols = min(len(variants), int(MAX_WIDTH // 3.6))
        nrows = math.ceil(len(variants) / ncols)
        place = {v: divmod(i, ncols) for i, v in enumerate(variants)}
    width = min(4.2, MAX_WIDTH / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, 3.6 * nrows), sharey=True, squeeze=False,
                             layout="constrained")
    stages = sorted(g["stage"].unique())
    palette = dict(zip(stages, sns.color_palette("viridis", len(stages))))
    rows = runs[runs["experiment"] == experiment].drop_duplicates("variant").set_index("variant")
    for variant in variants:
        ax = axes[place[variant][0]][place[variant][1]]
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
    used = set(place.values())
    for i in range(nrows):
        axes[i][0].set_ylabel("mean gate g (log scale)", fontsize=9)
        for j in range(ncols):
            if (i, j) not in used:
                axes[i][j].axis("off")
            elif i == nrows - 1 or (i + 1, j) not in used:
                axes[i][j].set_xlabel("iterations", fontsize=9)
    fig.suptitle(f"Gate dynamics, {experiment}: {scale_info(runs, experiment)}\nmean over seeds; {BAND}")
    legend_below(fig, legend_handles(axes.flat), ncol=5)
    paths = save_figure(fig, out, f"gates_{experiment}")
    return paths
