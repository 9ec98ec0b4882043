"""Our order of a table's rows against the paper's: Spearman's rho and Kendall's tau-b.

Our order is that of the tables' statistic of each row (the one beside the paper's number: the median of
seeds beside the paper's median). Both coefficients handle ties; the rows the paper marks "fail" are tied
last (their mean rank), and our rows where most seeds failed are tied last likewise. Their p-values are
two-sided (scipy's): one test per table column; where a study has several columns of one table (a
ladder's rungs), :func:`holm_over` adjusts them over the columns, and :func:`describe` says which it shows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy import stats as sps

from ..core.text import isnan
from .stats import ALPHA, format_p, holm

TIES = "the paper's fail rows, and ours where most seeds failed, tied last"


@dataclass(frozen=True)
class Agreement:
    rows: list  # the variants compared
    paper_rank: list
    our_rank: list
    spearman: float
    spearman_p: float
    kendall: float
    kendall_p: float
    spearman_p_holm: float | None = None  # Holm-adjusted over a family of columns, where there is one
    kendall_p_holm: float | None = None

    @property
    def significant(self) -> bool:
        """Spearman's rho positive and its p (Holm-adjusted where adjusted) below ALPHA."""
        p = self.spearman_p if self.spearman_p_holm is None else self.spearman_p_holm
        return self.spearman > 0 and p < ALPHA


def holm_over(agreements: dict) -> dict:
    """``agreements`` (column -> Agreement) with each coefficient's p Holm-adjusted over the columns."""
    keys = list(agreements)
    rho = holm([agreements[k].spearman_p for k in keys])
    tau = holm([agreements[k].kendall_p for k in keys])
    return {k: replace(agreements[k], spearman_p_holm=r, kendall_p_holm=t) for k, r, t in zip(keys, rho, tau)}


def describe(a: Agreement) -> str:
    """``Spearman rho = +0.56 (unadjusted p = 0.059), ...``: each p named (Holm-adjusted where adjusted, with
    the unadjusted one beside it), and whether the agreement is significant."""
    def p(raw, adjusted):
        return f"unadjusted p {format_p(raw)}" if adjusted is None else \
            f"Holm-adjusted p {format_p(adjusted)}, unadjusted p {format_p(raw)}"
    verdict = "a significant agreement" if a.significant else "not a significant agreement"
    return (f"Spearman rho = {a.spearman:+.2f} ({p(a.spearman_p, a.spearman_p_holm)}), Kendall tau-b = "
            f"{a.kendall:+.2f} ({p(a.kendall_p, a.kendall_p_holm)}) over {len(a.rows)} rows: {verdict} at {ALPHA}")


def ranks(values: list, failed: list[bool]) -> list[float]:
    """Ranks (1 = lowest error, ties averaged) with failed rows tied last."""
    worst = max([v for v, f in zip(values, failed) if not f], default=0.0) + 1.0
    return list(sps.rankdata([worst if f else v for v, f in zip(values, failed)]))


def rank_agreement(rows: list[str], paper: list, ours: list[float], ours_failed: list[bool]) -> Agreement | None:
    """Our order of ``rows`` against the paper's (numbers or "fail"); None with fewer than 3 rows."""
    if len(rows) < 3:
        return None
    paper_failed = [p == "fail" for p in paper]
    pr = ranks([0.0 if f else float(p) for p, f in zip(paper, paper_failed)], paper_failed)
    our = ranks(list(ours), list(ours_failed))
    if len(set(pr)) < 2 or len(set(our)) < 2:
        return None
    rho, rho_p = sps.spearmanr(pr, our)
    tau, tau_p = sps.kendalltau(pr, our)  # tau-b: corrects for the tied fail rows
    return Agreement(rows, pr, our, float(rho), float(rho_p), float(tau), float(tau_p))


def agreements(stats, experiment: str) -> list[tuple]:
    """``(column, Agreement)`` per column of an experiment's table (one with column None if it has none),
    over the rows that we ran and the paper reported (a number or "fail")."""
    reported = [p == "fail" or (isinstance(p, (int, float)) and math.isfinite(p)) for p in stats["paper"]]
    ran = [n > 0 and (f * 2 > n or (o is not None and not isnan(o)))
           for n, f, o in zip(stats["seeds"], stats["failed"], stats["ours"])]
    s = stats[(stats["experiment"] == experiment).to_numpy() & np.array(reported, bool) & np.array(ran, bool)]
    out = []
    columns = [c for c in dict.fromkeys(s["column"]) if isinstance(c, str)] or [None]
    for column in columns:
        sub = s if column is None else s[s["column"] == column]
        failed = list(sub["failed"] * 2 > sub["seeds"])
        a = rank_agreement(list(sub["variant"]), list(sub["paper"]),
                           [0.0 if f else float(v) for v, f in zip(sub["ours"], failed)], failed)
        if a is not None:
            out.append((column, a))
    return out
