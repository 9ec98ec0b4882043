"""An experiment's table in the paper's layout: our statistic beside the paper's number, row by row, in markdown.

Each cell says which statistic of our seeds stands beside the paper's (median, best or mean, as the paper
reported the row; :func:`ours_cell`), with the mean, std and 95% interval (:func:`ci_cell`); under the
table, the rows where we fail unlike the paper, or the paper fails unlike us (:func:`fail_marks`).
"""

from __future__ import annotations


from . import stats as st
from ..core import text
from ..core.text import isnan, num, paper_cell
from .provenance import cell_note


def ours_cell(s: dict) -> str:
    """Our statistic that matches the paper's protocol, tagged with its name when there are several seeds."""
    if not s["seeds"]:
        return "error" if s["errors"] else "not run"
    if s["seeds"] == 1:
        return f"fail ({_fail_number(s)})" if s["failed"] else num(s["ours"])
    notes = [s["stat"], *([f"{s['failed']}/{s['seeds']} failed"] if s["failed"] else []),
             *([mixed] if (mixed := cell_note(s)) else [])]
    if s["failed"] * 2 > s["seeds"]:
        return f"fail: {_fail_number(s)} ({'; '.join(notes)})"
    return f"{num(s['ours'])} ({'; '.join(notes)})"


def _fail_number(s: dict, unit: str = "") -> str:
    """A failed row's error, or "diverged" where most of its runs stopped on a non-finite loss
    (the error of a net whose weights are NaN is that of a constant guess, not a measurement)."""
    if s.get("diverged") and s["diverged"] * 2 > s["seeds"]:
        return "diverged"
    return num(s["ours"]) + unit


def ci_cell(s: dict) -> str:
    """mean ± std [95% CI of the mean], or a dash with fewer than two seeds."""
    if s["seeds"] < 2 or s["test_std"] is None or isnan(s["test_std"]):
        return "—"
    return f"{num(s['test_mean'])} ± {num(s['test_std'])} [{num(s['test_ci_low'])}, {num(s['test_ci_high'])}]"


def _cells(d: dict) -> list[str]:
    return [ours_cell(d), ci_cell(d), num(d[f"train_{d['stat']}"]), paper_cell(d["paper"], d)]


def paper_layout_table(meta: dict, stats) -> str:
    """The experiment in the paper's layout: rows as printed, our statistic beside the paper's number."""
    s = stats[stats["experiment"] == meta["name"]]
    s = s[(s["seeds"] > 0) | (s["errors"] > 0)]
    if s.empty:
        return ""
    columns = [c for c in dict.fromkeys(s["column"]) if c is not None and not isnan(c)]
    if columns:
        labels = list(dict.fromkeys(s["label"]))
        # the nets as run may be smaller than the paper's: say which, per column or per row
        col_arch = {c: set(s[s["column"] == c]["arch"]) for c in columns}
        row_arch = {l: set(s[s["label"] == l]["arch"]) for l in labels}
        per_col = all(len(a) == 1 for a in col_arch.values())
        per_row = not per_col and all(len(a) == 1 for a in row_arch.values())
        head = [""]
        for c in columns:
            run_as = f" ({next(iter(col_arch[c]))})" if per_col else ""
            head += [f"{c}{run_as} ours", f"{c} mean ± std [95% CI]", f"{c} ours (train)", f"{c} paper"]
        lines = [head]
        for label in labels:
            line = [f"{label} ({next(iter(row_arch[label]))})" if per_row else label]
            for c in columns:
                hit = s[(s["label"] == label) & (s["column"] == c)]
                line += _cells(hit.iloc[0].to_dict()) if len(hit) else ["", "", "", ""]
            lines.append(line)
    else:
        lines = [["", "arch (as run)", "ours", "mean ± std [95% CI]", "ours (train)", "paper", "seeds"]]
        for d in s.to_dict("records"):
            ours, ci, train, paper = _cells(d)
            lines.append([d["label"], d["arch"], ours, ci, train, paper, str(d["seeds"])])
    return text.markdown_table(lines) + "\n" + TABLE_NOTE + "\n"


TABLE_NOTE = ("Errors in %. *ours*: the statistic of our seeds that matches how the paper reported the row "
              "(best of seeds beside a paper's best, mean beside a mean, median beside a median or a single "
              "run, and median where the protocol is not recorded), named in brackets; one seed: that run. "
              f"*mean ± std [95% CI]*: over seeds, the interval of the mean by the {st.CI_METHOD} distribution. "
              "*ours (train)*: the same statistic of the final training error.")


# --- findings ---------------------------------------------------------------------------------


def fail_marks(meta: dict, stats) -> list[str]:
    """Where the paper printed "fail", did we fail too, and did we fail anywhere it did not?"""
    s = stats[(stats["experiment"] == meta["name"]) & (stats["seeds"] > 0)]
    lines = []
    for d in s.to_dict("records"):
        ours = d["failed"] * 2 > d["seeds"]
        paper = d["paper"] == "fail"
        if paper or ours:
            reported = d["paper"] is not None and not isnan(d["paper"])
            agree = ("as in the paper" if ours == paper else "unlike the paper") if reported else \
                "the paper reports no number for this row"
            lines.append(f"{d['label']}: paper {'fail' if paper else paper_cell(d['paper'])}, ours "
                         f"{'fail' if ours else 'no fail'} ({_fail_number(d, '%')}) — {agree}")
    return lines




def experiment_tables(manifest, stats) -> dict[str, str]:
    """Each experiment with rows to show: its markdown table (:func:`paper_layout_table`)."""
    return {n: md for n, m in manifest["experiments"].items() if (md := paper_layout_table(m, stats))}
