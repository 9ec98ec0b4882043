"""Figures of signal propagation (ablation.nets.signal): per unit, against unit index, log scale.

* :func:`plot_one`: one net, as ``python -m ablation.signal --plot`` draws it.
* :func:`plot_ladder`: per net of the ladder (ablation.reporting.signal_ladder), the rows of an
  experiment (He 2016 Table 1, or the designs after 2016) side by side, at the standard initialisation and with zero-initialised branches; and the
  backward signal across the whole net against its number of units.
* :func:`plot_runs`: per experiment of a results folder, its rows at initialisation and at the
  end of training (ablation.reporting.signal_runs), for ``python -m ablation.report``.

Each backward panel is labelled with what it is: *through the loss* (``||dL/dx_l||``, which the
classifier decides: 0 everywhere where it starts at zero) or *no head* (``||dP/dx_l||`` from a fixed
random direction at the last unit's output). A value of 0 (a plain net's zero branch, a signal that
underflowed, a zero classifier) has no place on a log axis and is left out of its curve.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

from matplotlib.ticker import MaxNLocator

from ..core.files import write_atomic_with
from .figure_style import save_figure, setup_figures

# (column, what the axis shows)
OUT_VAR = ("out_var", "unit output x_{l+1}:\naverage channel variance")
OUT_SQ_MEAN = ("out_sq_mean", "unit output x_{l+1}:\naverage squared channel mean")
BRANCH_VAR = ("branch_var", "residual branch F:\naverage channel variance")
BACKWARD = ("grad_norm", "backward through the loss:\n||dL/dx_l|| (unit input)")
PROBE = ("probe_grad_norm", "backward, no head: ||dP/dx_l||,\nP = <g, x_{L+1}>, g random, fixed")
INIT_TITLES = {"standard": "standard initialisation", "zero-branches": "zero-initialised branches (last BN gamma = 0)",
               "init": "at initialisation", "end": "end of training"}


def _positive(values):
    return [v if 0 < v < float("inf") else float("nan") for v in values]


def _curve(ax, g, column: str, **style):
    g = g.sort_values("unit")
    ax.plot(g["unit"] + 1, _positive(g[column]), **style)


def _transitions(ax, g):
    for u in sorted(set(g[g["shape_change"].astype(bool)]["unit"])):
        if u > 0:
            ax.axvline(u + 1, color="gray", lw=0.6, ls=":")


def _log_or_zero(ax, values) -> None:
    """A log axis, or a note where nothing in the panel is above 0 (a zero-initialised branch)."""
    positive = values[(values > 0) & (values < float("inf"))]
    if len(positive):
        ax.set_yscale("log")
        lo, hi = float(positive.min()), float(positive.max())
        if hi < 10 * lo:  # a decade at least: BN holds a branch's variance at 1, and noise should look like noise
            mid = (lo * hi) ** 0.5
            ax.set_ylim(mid / 10 ** 0.5, mid * 10 ** 0.5)
    else:
        ax.text(0.5, 0.5, "0 at every unit", transform=ax.transAxes, ha="center", va="center", color="gray")


FLOAT32_LARGEST = 3.4e38  # float32's largest number; every net runs in float32
# float32's smallest positive number is 1.4e-45 (subnormal): a curve that comes below this before its 0 ran out of
# float32's range; a curve that drops to 0 from far above it is 0 for what the net computes
UNDERFLOW_NEAR = 1e-30


def _at(where: str, x) -> str:
    return f"L = {x:g}" if where == "L" else f"{where} {x:g}"


def _where(xs, mask, where: str) -> str:
    idx = [i for i, m in enumerate(mask) if m]
    if all(mask[idx[0]:]) and len(idx) > 1:
        return f"at every {where}" if idx[0] == 0 else f"from {_at(where, xs[idx[0]])} on"
    if len(idx) <= 3:
        return "at " + ", ".join(_at(where, xs[i]) for i in idx)
    return f"at {len(idx)} {where}s from {_at(where, xs[idx[0]])}"


def gone(xs, values, where: str = "unit") -> str | None:
    """Why a curve has fewer points on a log axis than values, in words; None where every value shows.

    A 0 that follows values near float32's smallest number is an underflow; a 0 after larger values, or at every
    point, is exactly 0 (nothing passes: a zero branch beside a zero shortcut, every element dropped); inf is a
    float32 overflow; NaN is neither (0/0, inf - inf).
    """
    xs, v = [float(x) for x in xs], [float(x) for x in values]
    zero = [x == 0 for x in v]
    inf = [math.isinf(x) for x in v]
    nan = [math.isnan(x) for x in v]
    why = []
    if any(zero):
        first = zero.index(True)
        before = v[first - 1] if first else math.nan
        how = (f"float32 underflow, after {before:.2g}" if 0 < before < UNDERFLOW_NEAR else "exactly 0")
        why.append(f"0 {_where(xs, zero, where)} ({how})")
    if any(inf):
        why.append(f"inf {_where(xs, inf, where)} (float32 overflow: above {FLOAT32_LARGEST:g})")
    if any(nan):
        why.append(f"NaN {_where(xs, nan, where)} (0/0 or inf/inf)")
    return "; ".join(why) or None


def _note_gone(ax, notes: dict) -> None:
    """On the panel, what :func:`gone` says of each curve (``{name: note}``), the names of one note together."""
    by = {}
    for name, note in notes.items():
        if note:
            by.setdefault(note, []).append(str(name))
    if not by:
        return
    from matplotlib.legend import Legend

    lines = [textwrap.fill(f"{', '.join(names)}: {note}", 70, subsequent_indent="  ") for note, names in by.items()]
    # a legend without entries, for its "best" place: where it hides the fewest points of the curves
    note = Legend(ax, [], [], title="not on the log axis:\n" + "\n".join(lines), loc="best", alignment="left",
                  title_fontsize=6, framealpha=0.75, borderpad=0.3)
    note.get_title().set_color("dimgray")
    note.set_zorder(5)
    ax.add_artist(note)


def _depth_gone(s, col: str) -> dict:
    """:func:`gone` of each curve of a panel of :func:`_plot_depth` (a row on the nets of one order)."""
    out = {}
    for (family, variant), g in s.groupby(["family", "variant"], sort=False):
        g = g.sort_values("units")
        out[variant if family == "original" else f"{variant} ({family})"] = gone(g["units"], g[col], "L")
    return out


def _unit_ticks(ax, summary) -> None:
    """A tick at every net's number of units L, under it the nets of that L (ResNet-110 and -164 both have 54)."""
    nets = summary.drop_duplicates(["units", "arch"]).sort_values("units")
    ticks = {}
    for units, arch in zip(nets["units"], nets["arch"]):
        ticks.setdefault(int(units), []).append(str(arch).replace("resnet", "ResNet-"))
    ax.set_xticks(list(ticks))
    ax.set_xticklabels([f"{u}\n" + "\n".join(archs) for u, archs in ticks.items()], fontsize=7)
    ax.minorticks_off()


def plot_one(recs: list[dict], path, title: str) -> None:
    """Forward statistics of the output and the branch, and the backward signal, of one net; to ``path``."""
    import pandas as pd

    plt, sns = setup_figures()
    t = pd.DataFrame(recs)
    panels = _measured(t, (OUT_VAR, BRANCH_VAR, BACKWARD, PROBE))
    cols = 2 if len(panels) > 3 else len(panels)  # four panels in two rows: within 2000 px at dpi 130
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.7 * cols, 3.8 * rows), squeeze=False)
    for ax, (col, label) in zip(axes.flat, panels):
        _curve(ax, t, col, color="C0", lw=1.4, label=label.split(":")[0])
        if col == "out_var":
            _curve(ax, t, OUT_SQ_MEAN[0], color="C1", lw=1.2, ls="--", label="average squared channel mean")
            ax.legend(fontsize=7)
        _transitions(ax, t)
        _log_or_zero(ax, t[col])
        _note_gone(ax, {label.split(":")[0]: gone(t.sort_values("unit")["unit"] + 1, t.sort_values("unit")[col])})
        ax.set_ylabel(label, fontsize=9)
        ax.set_xlabel("unit l (input side left; dotted: shape changes)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    fig.suptitle(f"Signal propagation, {title}")
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    path = Path(path)
    write_atomic_with(path, lambda tmp: fig.savefig(tmp, dpi=130, bbox_inches="tight", format=path.suffix[1:]))
    plt.close(fig)


def _measured(table, panels) -> list:
    """The panels whose column the table holds a number of: a table written before the head-independent
    backward existed has no such panel."""
    return [p for p in panels if p[0] in table.columns and table[p[0]].notna().any()]


def _palette(names, sns) -> dict:
    """A colour and a dash per name: rows that coincide (lam_f does not matter where F = 0) stay visible."""
    colors = [*sns.color_palette("tab10", 10), (0.0, 0.0, 0.0), (0.6, 0.6, 0.2)]
    dashes = ["-", "--", "-.", ":"]
    return {n: {"color": colors[i % len(colors)], "ls": dashes[i % len(dashes)]} for i, n in enumerate(names)}


LEGEND_BESIDE = 16  # rows a legend beside the panels holds; more go under them


def _grid(table, group: str, columns: list[str], panels, title: str, out: Path, name: str) -> list[str]:
    """Rows of panels (one per statistic), a column per value of ``group``, a line per variant."""
    plt, sns = setup_figures()
    variants = list(dict.fromkeys(table["variant"]))
    colors = _palette(variants, sns)
    fig, axes = plt.subplots(len(panels), len(columns), figsize=(5.4 * len(columns) + 2.0, 3.1 * len(panels)),
                             sharex=True, squeeze=False)
    for j, key in enumerate(columns):
        sub = table[table[group] == key]
        for i, (col, label) in enumerate(panels):
            ax = axes[i][j]
            notes = {}
            for variant, g in sub.groupby("variant", sort=False):
                _curve(ax, g, col, **colors[variant], lw=1.3, label=variant)
                notes[variant] = gone(g.sort_values("unit")["unit"] + 1, g.sort_values("unit")[col])
            if len(sub):
                _transitions(ax, sub[sub["variant"] == sub["variant"].iloc[0]])
            _log_or_zero(ax, sub[col])
            if ((sub[col] > 0) & (sub[col] < float("inf"))).any():  # else the panel says "0 at every unit"
                _note_gone(ax, notes)
            if j == 0:
                ax.set_ylabel(label, fontsize=9)
            if i == 0:
                ax.set_title(INIT_TITLES.get(key, key), fontsize=10)
            if i == len(panels) - 1:
                ax.set_xlabel("unit l (input side left; dotted: shape changes)")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    # every row once, also those that only some columns have (a net without BN has no zeroed branch)
    handles = {}
    for ax in axes[0]:
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    if len(handles) <= LEGEND_BESIDE:
        axes[0][-1].legend(list(handles.values()), list(handles), fontsize=7, loc="upper left",
                           bbox_to_anchor=(1.02, 1.0))
    fig.suptitle(textwrap.fill(title, 120), y=1.0)
    fig.tight_layout()
    if len(handles) > LEGEND_BESIDE:  # a ladder's rows at every rung: under the panels, not as tall as the figure
        fig.legend(list(handles.values()), list(handles), fontsize=7, loc="upper center", ncol=5,
                   bbox_to_anchor=(0.5, 0.0))
    paths = save_figure(fig, out, name)
    return paths


def plot_ladder(table, out, rows_of: str = "He 2016 Table 1 rows") -> list[str]:
    """``signal_<arch>`` per net of the ladder and ``signal_ladder_depth``; the paths written."""
    from .signal_ladder import INITS, LADDER, ladder_summary

    out = Path(out)
    paths = []
    for arch, order, match in LADDER:
        t = table[table["arch"] == arch]
        if t.empty:
            continue
        first = t.iloc[0]
        units = t["unit"].max() + 1
        ran = set(zip(t["order"], t["match"], t["norm"]))
        net = f"{order}, {match} where shapes change" + ("" if ran == {(order, match, "bn")} else
                                                         "; rows of other units as they say")
        title = (f"Signal propagation at initialisation, {arch} ({net}, {units} units), {rows_of}; "
                 f"one batch of {first['batch']} Gaussian images {first['image']}, BN on batch statistics")
        paths += _grid(t, "init", [i for i in INITS if i in set(t["init"])],
                       _measured(t, (OUT_VAR, BRANCH_VAR, BACKWARD, PROBE)), title, out, f"signal_{arch}")
    paths += _plot_depth(ladder_summary(table), out, rows_of)
    return paths


def _plot_depth(summary, out: Path, rows_of: str) -> list[str]:
    """Against the number of units L, a line per row, a column per init: ||dL/dx_1|| / ||dL/dx_L|| (top)
    and the geometric mean of ||dL/dx_l|| / ||dL/dx_{l+1}|| over the units that are not transitions (bottom).

    float32 holds nothing below about 1e-45: where lam^L is smaller, dL/dx_1 is 0 and the ratio has no
    point; the per-unit factor, from the units before the underflow, still has one.
    """
    import numpy as np
    from matplotlib.lines import Line2D

    if summary.empty:
        return []
    plt, sns = setup_figures()
    variants = list(dict.fromkeys(summary["variant"]))
    colors = _palette(variants, sns)
    inits = list(dict.fromkeys(summary["init"]))
    panels = [p for p in (
        ("backward_first_over_last", "through the loss: ||dL/dx_1|| / ||dL/dx_L||\n(below 1: shrinks towards the input)"),
        ("backward_factor_per_unit", "through the loss: ||dL/dx_l|| / ||dL/dx_{l+1}||\n(geometric mean, transitions "
                                     "left out)"),
        ("probe_first_over_last", "no head: ||dP/dx_1|| / ||dP/dx_L||\n(P = <g, x_{L+1}>, g random, fixed)"),
        ("probe_factor_per_unit", "no head: ||dP/dx_l|| / ||dP/dx_{l+1}||\n(geometric mean, transitions left out)"))
        if p[0] in summary.columns and summary[p[0]].notna().any()]
    fig, axes = plt.subplots(len(panels), len(inits), figsize=(6.4 * len(inits) + 2.5, 4.2 * len(panels)),
                             squeeze=False, sharex=True)
    for j, init in enumerate(inits):
        s = summary[summary["init"] == init]
        for i, (col, label) in enumerate(panels):
            ax = axes[i][j]
            for family, marker, ls in (("original", "o", "-"), ("full-preact", "s", "--")):
                for variant, g in s[s["family"] == family].groupby("variant", sort=False):
                    g = g.sort_values("units")
                    ax.plot(g["units"], _positive(g[col]), marker=marker, ls=ls, ms=4, lw=1.2,
                            color=colors[variant]["color"], label=variant)
            _note_gone(ax, _depth_gone(s, col))
            values = s[col][np.isfinite(s[col]) & (s[col] > 0)]
            L = np.array(sorted(set(s["units"])), dtype=float)
            if col.endswith("first_over_last"):
                ax.plot(L, 0.5 ** (L - 1), color="black", lw=0.8, ls=":", label="0.5^(L-1)")
            else:
                ax.axhline(0.5, color="black", lw=0.8, ls=":", label="0.5")
            ax.set_xscale("log")
            ax.set_yscale("log")
            _unit_ticks(ax, summary)
            if len(values):  # the data decide the range, not the reference line
                ax.set_ylim(float(values.min()) / 10, float(values.max()) * 10)
            if i == 0:
                ax.set_title(INIT_TITLES.get(init, init), fontsize=10)
            if i == len(panels) - 1:
                ax.set_xlabel("units L (log scale)")
            if j == 0:
                ax.set_ylabel(label, fontsize=9)
    seen = {}
    for ax in axes.flat:  # every row drawn in any panel, once, and each panel's reference line
        for h, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, h)
    handles = [*seen.values(), Line2D([], [], color="gray", marker="o", ls="-"),
               Line2D([], [], color="gray", marker="s", ls="--")]
    labels = [*seen, "He 2015's nets (original)", "He 2016's nets (full-preact)"]
    axes[0][-1].legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle(f"Backward signal at initialisation against depth, {rows_of} (He 2016 eq. 5): through the loss, "
                 f"and from a fixed random direction at the last unit (no head)")
    fig.tight_layout()
    paths = save_figure(fig, out, "signal_ladder_depth")
    return paths


def plot_runs(runs, signal, experiment: str, out) -> list[str]:
    """``signal_<experiment>``: each row's first finished seed at initialisation and at the end of training."""
    sub = runs[runs["experiment"] == experiment][["hash", "variant", "arch"]].drop_duplicates("hash")
    t = signal.merge(sub, on="hash")
    if t.empty:
        return []
    archs = ", ".join(dict.fromkeys(t["arch"]))
    title = (f"Signal propagation, {experiment} ({archs}): one batch of test images, BN on batch statistics, "
             "the lowest finished seed of each row")
    return _grid(t, "when", [w for w in ("init", "end") if w in set(t["when"])], _measured(t, (OUT_VAR, BACKWARD, PROBE)),
                 title, Path(out), f"signal_{experiment}")
