"""Statistics over seeds: per-row summaries, Welch's comparison of two rows, Holm's correction and the verdicts.

Rows. Each table row holds the final error of n seeds ``x_1..x_n``. We give the median, the mean
``m``, the sample std ``s`` (ddof = 1), the best seed (lowest error) and a 95% confidence interval
of the mean by the t distribution, ``m +- t_{0.975, n-1} s / sqrt(n)`` (n >= 2).

The papers' claims are tested with these statistics in :mod:`ablation.reporting.claim_tests`.

Rank agreement with the paper: :mod:`ablation.reporting.ranking`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from ..core.outcomes import DIVERGED, FAIL, FAILED, FINISHED, TEST_NOT_FINITE
from ..core.text import isnan
from .provenance import row_provenance

ALPHA = 0.05
CONFIDENCE = 0.95
CI_METHOD = "t"  # the confidence interval of a mean: t distribution on the seeds' std
TEST_NAME = "one-sided Welch's t-test"
HOLDS, NOT_SIGNIFICANT, CONTRADICTED = "holds", "not significant", "contradicted"
CANNOT, NOT_RUN = "cannot be tested", "not run"
VERDICTS = (HOLDS, NOT_SIGNIFICANT, CONTRADICTED, CANNOT, NOT_RUN)


# --- one row ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    """The seeds of one row: count, median, mean, std, best seed and the 95% t interval of the mean."""

    n: int
    median: float | None
    mean: float | None
    std: float | None
    ci_low: float | None
    ci_high: float | None
    best: float | None


def clean(values) -> list[float]:
    """The finite numbers of ``values`` (None and NaN dropped)."""
    out = []
    for v in values:
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(f):
            out.append(f)
    return out


def summarize(values) -> Summary:
    x = np.asarray(clean(values), dtype=float)
    n = len(x)
    if n == 0:
        return Summary(0, None, None, None, None, None, None)
    mean, median, best = float(x.mean()), float(np.median(x)), float(x.min())
    if n == 1:
        return Summary(1, median, mean, None, None, None, best)
    std = float(x.std(ddof=1))
    half = float(sps.t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * std / math.sqrt(n)
    return Summary(n, median, mean, std, mean - half, mean + half, best)


STAT_BESIDE_PROTOCOL = {"median": "median", "best": "best", "mean": "mean", "single": "median"}


def protocol_stat(protocol) -> str:
    """Our statistic that stands beside a paper's number reported as ``protocol``.

    Best of seeds beside a paper's best, mean beside a mean, median beside a median; a paper's
    single run beside our median (the typical single run); median where no protocol is stated.
    """
    return STAT_BESIDE_PROTOCOL.get(protocol if isinstance(protocol, str) else "median", "median")


# --- the rows of a results folder --------------------------------------------------------------

DONE = FINISHED  # a run that finished, failed or not; its final errors count (ablation.core.outcomes)


def fail_above(meta: dict, dataset) -> float | None:
    """The paper's "fail" threshold, which is a number about its own dataset: it applies only there."""
    if meta.get("fail_above") is None or (meta.get("dataset") and dataset != meta["dataset"]):
        return None
    return meta["fail_above"]


def is_fail(status, error, threshold) -> bool:
    if status in FAILED:
        return True
    return threshold is not None and error is not None and not isnan(error) and error > threshold


def samples(runs, experiment: str) -> dict[str, dict[str, list]]:
    """``{"test"|"train": {variant: final errors of its finished seeds}}`` for :func:`test_claims`."""
    done = runs[(runs["experiment"] == experiment) & runs["status"].isin(DONE)]
    return {metric: {v: clean(g[f"final_{metric}_error"]) for v, g in done.groupby("variant", sort=False)}
            for metric in ("test", "train")}


def row_stats(manifest: dict, runs) -> "pd.DataFrame":
    """One line per table row: seeds run and failed, and the :class:`Summary` of test and training error.

    ``ours`` is the test-error statistic that matches the paper's protocol of the row
    (:func:`protocol_stat`); ``stat`` names it.
    """
    import pandas as pd

    out = []
    for name, meta in manifest["experiments"].items():
        sub = runs[runs["experiment"] == name]
        for row in meta["rows"]:
            r = sub[sub["variant"] == row["variant"]]
            done = r[r["status"].isin(DONE)]
            errors = pd.to_numeric(done["final_test_error"], errors="coerce")
            test, train = summarize(errors), summarize(done["final_train_error"])
            fails = sum(is_fail(s, e, fail_above(meta, d)) for s, e, d in zip(done["status"], errors, done["dataset"]))
            stat = protocol_stat(row.get("protocol"))
            rec = {"experiment": name, "variant": row["variant"], "label": row["label"], "column": row.get("column"),
                   "paper": row.get("paper"), "protocol": row.get("protocol"), "paper_mean": row.get("paper_mean"),
                   "paper_std": row.get("paper_std"), "seeds": len(done), "failed": int(fails),
                   "errors": int((r["status"] == "error").sum()),
                   # how the trainer ended them (ablation.core.outcomes): each kind of failure apart
                   "at_chance": int((done["status"] == FAIL).sum()), "diverged": int((done["status"] == DIVERGED).sum()),
                   "test_not_finite": int((done["status"] == TEST_NOT_FINITE).sum()),
                   "stat": stat, "ours": getattr(test, stat)}
            for prefix, s in (("test", test), ("train", train)):
                rec.update({f"{prefix}_{k}": getattr(s, k) for k in ("median", "mean", "std", "ci_low", "ci_high",
                                                                     "best")})
            rec.update({
                "best_test_median": summarize(done["best_test_error"]).median,
                "arch": ", ".join(dict.fromkeys(str(a) for a in r["arch"].dropna())),
                "params": r["params"].dropna().iloc[0] if r["params"].notna().any() else None,
                "time_s": pd.to_numeric(r["time_s"], errors="coerce").sum() if len(r) else None,
                **row_provenance(done)})
            out.append(rec)
    return pd.DataFrame(out)


# --- two rows ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Welch:
    """Welch's comparison of two samples: ``d = m_a - m_b``, its standard error and degrees of freedom."""

    d: float
    se: float
    df: float

    @classmethod
    def of(cls, a, b) -> "Welch":
        a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
        se = math.sqrt(va + vb)
        denom = va**2 / (len(a) - 1) + vb**2 / (len(b) - 1)
        df = se**4 / denom if denom > 0 else float(len(a) + len(b) - 2)
        return cls(float(a.mean() - b.mean()), se, df)

    def p_below(self, d0: float = 0.0) -> float:
        """One-sided p of H1: mu_a - mu_b < d0."""
        if self.se == 0:  # every seed of both rows gave the same number: the sign is certain
            return 0.0 if self.d < d0 else 1.0
        return float(sps.t.cdf((self.d - d0) / self.se, self.df))

    def p_above(self, d0: float = 0.0) -> float:
        """One-sided p of H1: mu_a - mu_b > d0."""
        if self.se == 0:
            return 0.0 if self.d > d0 else 1.0
        return float(sps.t.sf((self.d - d0) / self.se, self.df))

    def ci(self) -> tuple[float, float]:
        """95% interval of mu_a - mu_b."""
        half = float(sps.t.ppf(0.5 + CONFIDENCE / 2, self.df)) * self.se if self.se else 0.0
        return self.d - half, self.d + half


# --- claims: the correction over an experiment's claims, and their p in words ----------------------


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def format_p(p: float) -> str:
    """``= 0.012`` or ``< 0.001``: two significant digits, three where two would read as 0.05."""
    if p < 0.001:
        return "< 0.001"
    short = f"{p:.2g}"
    return f"= {p:.3g}" if float(short) == ALPHA else f"= {short}"  # 0.0504 is not shown as 0.05
