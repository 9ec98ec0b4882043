"""What every figure of a study shares: its colours, its seed marks, its size, and how it is saved.

A row's colour says its family of shortcut (:func:`row_colors`: a hue per family of He 2016 Table 1,
shades within it); a figure of final errors draws every seed as a point, marked by how its run ended
(:func:`draw_seeds`), beside the statistic it names; and no figure is wider than about 2000 px at the
130 dpi it is saved at (:data:`MAX_WIDTH`: panels wrap into a grid). matplotlib and seaborn load on the
first figure (:func:`setup_figures`); :func:`capture` keeps figures in memory instead of writing them.
"""

from __future__ import annotations

import colorsys
import contextlib
import math
import textwrap
from pathlib import Path

import pandas as pd

from . import stats as st
from ..core.outcomes import DIVERGED, FAIL, FINISHED, OK, OUTDATED, TEST_NOT_FINITE
from ..core.rungs import axis_of, rung_of, value_text
from ..core.files import write_atomic_with


BAND = "band: min to max over seeds"
DPI = 130  # of every figure written
MAX_WIDTH = 14.0  # inches of panels: at 130 dpi about 1800 px, about 2000 with the labels outside


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


def scale_info(runs, experiment: str) -> str:
    sub = runs[runs["experiment"] == experiment]
    if sub.empty:
        return ""
    d = sub.iloc[0]
    size = f" {int(d['image_size'])}px" if not pd.isna(d.get("image_size")) else ""
    archs = list(dict.fromkeys(str(a) for a in sub["arch"].dropna()))
    arch = f"{archs[0]} on " if len(archs) == 1 else ""
    return f"{arch}{d['dataset']}{size}"


def legend_below(fig, handles: dict, ncol: int = 4) -> None:
    """One legend for the whole figure, under its panels (a legend beside them would widen it)."""
    fig.legend(list(handles.values()), list(handles), fontsize=7, loc="outside lower center", ncol=ncol)


def legend_handles(axes) -> dict:
    """Every labelled artist of the panels, once by label, in the order first drawn."""
    out = {}
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels()):
            out.setdefault(label, h)
    return out
