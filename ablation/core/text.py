"""How numbers and tables are written as text: NaN as missing, fixed decimals, markdown tables, the paper's number."""

from __future__ import annotations

import math


def isnan(x) -> bool:
    """A float NaN (pandas' mark of a missing value); anything else, None included, is not."""
    return isinstance(x, float) and math.isnan(x)


def nan_to_none(v):
    """NaN as None, so that a value read back from a CSV is missing as it was before it was written."""
    return None if isnan(v) else v


def num(x, digits=2) -> str:
    """``x`` with ``digits`` decimals, or a dash where it is missing (None or NaN)."""
    return "—" if x is None or isnan(x) else f"{x:.{digits}f}"


def markdown_table(lines: list[list]) -> str:
    """A markdown table of ``lines`` (the first is the header), each column padded to its widest cell."""
    widths = [max(len(str(r[i])) for r in lines) for i in range(len(lines[0]))]
    fmt = lambda r: "| " + " | ".join(str(x).ljust(w) for x, w in zip(r, widths)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([fmt(lines[0]), rule, *map(fmt, lines[1:])]) + "\n"


def paper_cell(p, row: dict | None = None, *, terminal: bool = False) -> str:
    """The paper's number ``p`` for a row, with what it is over the paper's runs (``row``: the manifest's row).

    In a table (markdown): ``6.43 (best); mean 6.61 ± 0.16``, "fail" or "not reported". On a terminal
    (the dry run's grid, ASCII): ``6.43 (mean 6.61 +- 0.16), best (He 2015 Table 6)``, with the source,
    ``>60`` where the paper gives only a bound, and a dash where it reports nothing.
    """
    row = row or {}
    if terminal:
        if (p is None or isnan(p)) and row.get("paper_above") is not None:
            number = f">{row['paper_above']:g}"
        else:
            number = "-" if p is None or isnan(p) else (p if isinstance(p, str) else f"{p:g}")
        if row.get("paper_mean") is not None:
            std = row.get("paper_std")
            number += f" (mean {row['paper_mean']:g}" + (f" +- {std:g})" if std is not None else ")")
        protocol = f", {row['protocol']}" if row.get("protocol") and p is not None else ""
        return f"{number}{protocol} ({row.get('source') or 'no source'})"
    if p is None or isnan(p):
        return "not reported"
    if p == "fail":
        return "fail"
    text = f"{float(p):.2f}"
    if isinstance(row.get("protocol"), str):
        text += f" ({row['protocol']})"
    if row.get("paper_mean") is not None and not isnan(row["paper_mean"]):
        std = row.get("paper_std")
        text += f"; mean {float(row['paper_mean']):.2f}" + ("" if std is None or isnan(std) else f" ± {float(std):.2f}")
    return text
