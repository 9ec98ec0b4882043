"""The figures of a study, matplotlib/seaborn, PNG and SVG; called by ``ablation.reporting.report``.

Each plot reads the tidy tables the report builds (runs, per-row statistics, history, the
lesion study) and is meant to be read without the text: He 2015 Fig. 6-style degradation
curves, error against depth, test error per variant beside the paper's number, the training
curves of all shortcut variants on one figure (curves: mean over seeds, band: min to max),
our ranking of the papers' rows against theirs, and the mechanisms of
:mod:`ablation.reporting.analysis` (lesion study, gradient flow, gate dynamics).

What every figure shares: a row's colour says its family of shortcut (:func:`row_colors`: a hue per
family of He 2016 Table 1, shades within it); a figure of final errors draws every seed as a point,
marked by how its run ended (:func:`draw_seeds`), beside the statistic it names; and no figure is wider
than about 2000 px at the 130 dpi it is saved at (:data:`MAX_WIDTH`: panels wrap into a grid).
"""

from __future__ import annotations

import colorsys
import contextlib
import json
import math
import textwrap
from pathlib import Path

import pandas as pd
from matplotlib.ticker import MaxNLocator

from . import analysis
from . import ranking
from . import stats as st
from ..core.outcomes import DIVERGED, FAIL, FINISHED, OK, OUTDATED, TEST_NOT_FINITE
from ..core.rungs import axis_of, rung_of, value_text
from ..core.errors import ConfigError
from ..nets.archs import arch_spec
from ..core.files import write_atomic_with

BAND = "band: min to max over seeds"
DPI = 130  # of every figure written
MAX_WIDTH = 14.0  # inches of panels: at 130 dpi about 1800 px, about 2000 with the labels outside
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

    _fit_titles(fig)
    if _kept is not None:
        _kept[name] = fig
        plt.close(fig)
        return [str(out / f"{name}.png"), str(out / f"{name}.svg")]
    paths = []
    for ext in ("png", "svg"):
        p = out / f"{name}.{ext}"
        write_atomic_with(p, lambda tmp: fig.savefig(tmp, dpi=DPI, bbox_inches="tight", format=ext,
                                                     metadata={"Date": None} if ext == "svg" else None))
        paths.append(str(p))
    plt.close(fig)
    return paths




# --- a colour per row, by its family of shortcut ------------------------------------------------

# He 2016 Table 1's families of shortcut (Sec. 3.1), by the registry's name; He 2015's options A, B and C
# are identity and 1x1 convolutions. Any other shortcut (the designs after 2016) is a family of its own.
FAMILIES = {"identity": "identity", "zero-pad": "identity", "plain": "no shortcut", "scale": "constant scaling",
            "exclusive-gate": "gating", "shortcut-gate": "gating", "projection": "1x1 convolution",
            "projection-all": "1x1 convolution", "dropout": "dropout"}
FAMILY_COLORS = {"identity": "#222222", "no shortcut": "tab:red", "constant scaling": "tab:orange",
                 "gating": "tab:blue", "1x1 convolution": "tab:green", "dropout": "tab:purple"}
OTHER_COLORS = ("tab:brown", "tab:pink", "tab:olive", "tab:cyan", "#b8860b", "#2f4f4f")  # other families, in turn


def family_of(shortcut) -> str:
    """The family of a shortcut (:data:`FAMILIES`); another shortcut is its own, a row without one ``other``."""
    if not isinstance(shortcut, str) or not shortcut:
        return "other"
    return FAMILIES.get(shortcut, shortcut)


def families(shortcuts: dict) -> dict[str, list]:
    """``{row: shortcut}`` grouped by :func:`family_of`: ``{family: [rows]}``, both in the order given."""
    out: dict[str, list] = {}
    for row, shortcut in shortcuts.items():
        out.setdefault(family_of(shortcut), []).append(row)
    return out


def _hues(n: int) -> list[tuple]:
    """``n`` colours of distinct hue: tab10's, and past ten evenly spaced hues (not tab20's look-alike pairs)."""
    from matplotlib import colormaps

    if n <= 10:
        return [tuple(c) for c in colormaps["tab10"].colors[:n]]
    return [colorsys.hls_to_rgb(i / n, 0.45, 0.7) for i in range(n)]


def row_colors(shortcuts: dict) -> dict:
    """A colour per row of ``{row: shortcut}`` (in the order the rows are listed), the same in every figure.

    Each family of shortcut (:func:`family_of`) has its hue (:data:`FAMILY_COLORS`, then :data:`OTHER_COLORS`),
    and its rows are shades of it, darkest first, so that the five gated rows or the two dropout readings
    differ while their family shows. Rows that all share one family (the unit orders, every one an identity
    shortcut) have nothing to separate by family: each gets a hue of its own.
    """
    from matplotlib.colors import to_rgb

    groups = families(shortcuts)
    if len(groups) == 1:
        return dict(zip(shortcuts, _hues(len(shortcuts))))
    unknown = [f for f in groups if f not in FAMILY_COLORS]
    extra = max(0, len(unknown) - len(OTHER_COLORS))
    others = [to_rgb(c) for c in OTHER_COLORS] + [colorsys.hls_to_rgb((i + 0.5) / extra, 0.4, 0.6)
                                                  for i in range(extra)]
    base = {f: to_rgb(FAMILY_COLORS[f]) if f in FAMILY_COLORS else others[unknown.index(f)] for f in groups}
    out = {}
    for family, rows in groups.items():
        out.update(zip(rows, _shades(base[family], len(rows))))
    return out


def _shades(base, n: int) -> list[tuple]:
    """``n`` shades of ``base``: dark to light, and turning a little in hue (at most 36 degrees in all), so that
    five gated rows stay apart; a grey stays grey."""
    if n == 1:
        return [base]
    h, _, s = colorsys.rgb_to_hls(*base)
    turn, s = (0.1, max(s, 0.55)) if s > 0.1 else (0.0, s)  # a paler hue (tab:purple) would shade into grey
    return [colorsys.hls_to_rgb((h + turn * (i / (n - 1) - 0.5)) % 1, 0.3 + 0.38 * i / (n - 1), s) for i in range(n)]


def shortcuts_of(runs, experiment: str, rows) -> dict:
    """``{row: shortcut}`` of an experiment's rows (variants), from any of their runs."""
    sub = runs[runs["experiment"] == experiment].drop_duplicates("variant").set_index("variant")
    return {v: sub.loc[v, "shortcut"] if v in sub.index and "shortcut" in sub.columns else None for v in rows}


def source_rows(meta: dict) -> dict:
    """Each row's name in its figures: a ladder's row at every rung is its source row, any other row itself."""
    axis = axis_of(meta)
    return {r["variant"]: axis["rows"][r["variant"]] if axis else r["variant"] for r in meta["rows"]}


def variant_colors(manifest, runs, experiment: str) -> dict:
    """:func:`row_colors` of the experiment's rows, by variant; a ladder's rows have one colour per source row."""
    meta = manifest["experiments"][experiment]
    source = source_rows(meta)
    by_source = {}
    for variant, shortcut in shortcuts_of(runs, experiment, list(source)).items():
        if by_source.get(source[variant]) is None:
            by_source[source[variant]] = shortcut
    colors = row_colors(by_source)
    return {v: colors[s] for v, s in source.items()}


def facets(manifest, experiment: str, variants) -> list[tuple[str | None, list]]:
    """The panels of a figure of many rows: one per rung of a ladder (``[(title, variants)]``), else one of all."""
    meta = manifest["experiments"][experiment]
    axis = axis_of(meta)
    variants = list(variants)
    if not axis:
        return [(None, variants)]
    rung = {r["variant"]: rung_of(r) for r in meta["rows"]}
    out = {}
    for v in variants:
        out.setdefault(rung.get(v), []).append(v)
    return [(f"{axis['key']} {value_text(r)}", vs) for r, vs in out.items()]


# --- a mark per seed, by how its run ended ---------------------------------------------------------

SEED_MARKS = {OK: ("o", "a seed"), FAIL: ("X", "a seed stopped at chance (fail)"),
              DIVERGED: ("^", "a seed that diverged (training loss not finite)"),
              TEST_NOT_FINITE: ("s", "a seed whose final test loss is not finite")}
NO_ERROR = "no final error: drawn at the top"


def fail_line(meta: dict, runs) -> float | None:
    """The paper's "fail" line for these runs: only where they ran on the paper's dataset."""
    done = runs[runs["status"].isin(FINISHED)]
    return None if done.empty else st.fail_above(meta, done.iloc[0]["dataset"])


def spread(n: int, half: float) -> list[float]:
    """``n`` offsets evenly over [-half, half] (0 for one): points of one place side by side, not on each other."""
    return [0.0] * n if n < 2 else [-half + 2 * half * i / (n - 1) for i in range(n)]


def draw_seeds(ax, xs, errors, statuses, color, line: float | None = None, size: float = 14) -> set:
    """One point per seed at ``(x, final error)``, its mark by how its run ended (:data:`SEED_MARKS`): a
    failed one larger with a black edge; one above the paper's "fail" ``line`` ringed in red; one without a
    final error at the top of the panel. The marks drawn, for :func:`seed_legend`."""
    from matplotlib.transforms import blended_transform_factory

    drawn = set()
    top = blended_transform_factory(ax.transData, ax.transAxes)
    for x, y, status in zip(xs, errors, statuses):
        status = status if status in SEED_MARKS else OK
        marker, _ = SEED_MARKS[status]
        failed = status != OK
        y = float(y) if y is not None else math.nan
        at = {"transform": top} if not math.isfinite(y) else {}
        # labels with "_" stay out of legends (seed_legend says what each mark is, once)
        ax.scatter([x], [0.97 if not math.isfinite(y) else y], marker=marker, s=size * (3 if failed else 1),
                   color=color, edgecolors="black" if failed else "none", linewidths=0.7, zorder=4,
                   alpha=1.0 if failed else 0.85, label=f"_seed:{status}", **at)
        drawn.add(status)
        if not math.isfinite(y):
            drawn.add(NO_ERROR)
        elif line is not None and y > line:
            ax.scatter([x], [y], marker="o", s=size * 6, facecolors="none", edgecolors="darkred", linewidths=1,
                       zorder=5, label="_above the fail line")
            drawn.add("above")
    return drawn


def not_shown(runs, experiment: str) -> str | None:
    """The runs of an experiment that a figure of final errors leaves out, by status (they are no result)."""
    sub = runs[(runs["experiment"] == experiment) & ~runs["status"].isin(FINISHED)]
    if sub.empty:
        return None
    why = {OUTDATED: " (ended under an older outcome rule, to be trained again)"}
    return "not shown: " + ", ".join(f"{n} {status}{why.get(status, '')}"
                                     for status, n in sub["status"].value_counts(sort=False).items()) + " runs"


def seed_legend(drawn: set, line: float | None = None, color="dimgray", note: str | None = None,
                seed: str = "a seed") -> list:
    """Legend handles for the marks :func:`draw_seeds` drew (a seed that trained to the end always), and a
    ``note`` (:func:`not_shown`) last."""
    from matplotlib.lines import Line2D

    handles = []
    for status, (marker, label) in SEED_MARKS.items():
        if status == OK or status in drawn:
            failed = status != OK
            handles.append(Line2D([], [], marker=marker, ls="", color=color, ms=8 if failed else 5,
                                  markeredgecolor="black" if failed else color, label=label if failed else seed))
    if "above" in drawn:
        handles.append(Line2D([], [], marker="o", ls="", ms=10, markerfacecolor="none", markeredgecolor="darkred",
                              label=f"a seed above the paper's \"fail\" line ({line:g}%)"))
    if NO_ERROR in drawn:
        handles.append(Line2D([], [], ls="", label=f"({NO_ERROR})"))
    if note:
        handles.append(Line2D([], [], ls="", label=note))
    return handles


def wrap(text: str, width: int = 40) -> str:
    return "\n".join(textwrap.wrap(str(text), width)) or str(text)


def _fit_titles(fig) -> None:
    """Wrap a figure's title (any text of the figure itself) that is wider than the figure, which the saved image
    would otherwise widen to; where no layout engine places it, it then grows upwards, above the panels."""
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    renderer = fig.canvas.get_renderer()
    for text in fig.texts:
        wide = text.get_window_extent(renderer).width
        if wide <= fig.bbox.width:
            continue
        lines = text.get_text().split("\n")
        chars = max(20, int(max(map(len, lines)) * 0.95 * fig.bbox.width / wide))
        text.set_text("\n".join(textwrap.fill(line, chars) for line in lines))
        if text.get_va() == "top" and not isinstance(fig.get_layout_engine(), ConstrainedLayoutEngine):
            text.set_va("bottom")


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
    ax.set_title(f"Error vs depth, plain vs residual ({_scale_info(runs, experiment)})")
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
    fig.suptitle(f"{meta['title']}\nours: {_scale_info(runs, experiment)}", fontsize=10)
    paths = save_figure(fig, out, f"{experiment}_errors")
    return paths


def _bar_labels(ax, s, labels, has_cols: bool, grouped: bool) -> None:
    arch = dict(zip(s["label"], s["arch"]))
    if not grouped:
        ax.set_xticklabels([wrap(l, 34) for l in labels], rotation=40, ha="right", rotation_mode="anchor", fontsize=7)
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
    fig.suptitle(f"Shortcut variants (He 2016 Table 1 rows), {_scale_info(runs, experiment)}\n"
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


def _legend_below(fig, handles: dict, ncol: int = 4) -> None:
    """One legend for the whole figure, under its panels (a legend beside them would widen it)."""
    fig.legend(list(handles.values()), list(handles), fontsize=7, loc="outside lower center", ncol=ncol)


def _handles(axes) -> dict:
    """Every labelled artist of the panels, once by label, in the order first drawn."""
    out = {}
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels()):
            out.setdefault(label, h)
    return out


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
    fig.suptitle(f"Lesion study (Veit et al. 2016), {experiment}: {_scale_info(runs, experiment)}, "
                 f"{analysis.LESION_IMAGES} test images")
    _legend_below(fig, _handles(axes[:, 0]), ncol=3)
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
    its = sorted(f["iteration"].unique())
    panels = facets(manifest, experiment, dict.fromkeys(f["variant"]))
    width = min(4.2, MAX_WIDTH / len(its))
    fig, axes = plt.subplots(len(panels), len(its), figsize=(width * len(its), 3.9 * len(panels)), sharey=True,
                             squeeze=False, layout="constrained")
    for (title, variants), axs in zip(panels, axes):
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
    fig.suptitle(f"Gradient flow per unit, {experiment}: {_scale_info(runs, experiment)}")
    _legend_below(fig, _handles(axes.flat), ncol=4)
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
    fig.suptitle(f"Gate dynamics, {experiment}: {_scale_info(runs, experiment)}\nmean over seeds; {BAND}")
    _legend_below(fig, _handles(axes.flat), ncol=5)
    paths = save_figure(fig, out, f"gates_{experiment}")
    return paths
