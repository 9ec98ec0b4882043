"""The papers' claims as tested statements: each claim's test, its effect and its verdict.

Claims. A claim compares rows of one experiment on the mean final error (test or training):

* ``lower = [a, b]``: "a ends lower than b". One-sided Welch's t-test (unequal variances)
  of H0: mu_a >= mu_b against H1: mu_a < mu_b, with
  ``t = (m_b - m_a) / se``, ``se = sqrt(s_a^2/n_a + s_b^2/n_b)`` and Welch-Satterthwaite
  degrees of freedom ``nu = se^4 / ((s_a^2/n_a)^2/(n_a-1) + (s_b^2/n_b)^2/(n_b-1))``.
  The effect is ``m_b - m_a`` (positive: as claimed) with its 95% interval ``+- t_{0.975,nu} se``.
* ``lowest = [t...]`` (``among`` a pool, default every row run): every target is lower than every
  other row of the pool. An intersection-union test (Berger 1982): the claim is the intersection
  of the pairwise claims, so its p-value is the largest pairwise one-sided p, with no correction
  within the claim. The effect shown is the closest pair (smallest lead over the runner-up).
* ``close = [a, b]`` with ``within = delta`` points: an equivalence test, two one-sided tests
  (TOST, Schuirmann 1987) of H0: |mu_a - mu_b| >= delta; p = max of the two one-sided Welch p-values
  of ``mu_a - mu_b < delta`` and ``mu_a - mu_b > -delta``.
* ``not_worse = [a, b]`` with ``within = delta`` points: a non-inferiority test, one-sided Welch's t
  of H0: mu_a - mu_b >= delta against H1: mu_a - mu_b < delta ("a is not worse than b by delta or
  more"). The effect is ``m_b - m_a`` with its 95% interval, as for ``lower``; the claim holds where
  that interval's lower end, one-sided, clears ``-delta``.
* ``identity_at_init = [rows]``: not a statistic but a check on each row's net as built, before any
  training (``samples["init"]``, :mod:`ablation.init_identity`): HOLDS when in every seed's net every
  unit's residual term ``y - h(x)`` is zero (up to ``IDENTITY_TOL`` of the signal), CONTRADICTED when
  one is not. It has no p-value and stays out of Holm's family.

Why Welch's t rather than an exact permutation test: with 5 seeds per row a permutation test of two
rows has 252 splits, so its smallest one-sided p is 1/252 ~ 0.004, and after Holm over the 9 claims of
one experiment (the smallest p is compared with 0.05/9 ~ 0.0056) only rows whose seeds do not
overlap at all could ever be declared; with 3 seeds (smallest p 1/20) nothing could. Welch's t
assumes roughly normal seed-to-seed noise; a row whose seeds sometimes fail (a bimodal sample) gets
a large std, which makes its tests conservative rather than wrong in the claim's favour.

Multiple claims. The p-values of the claims of one experiment are corrected together by Holm's
step-down method (Holm 1979): sorted ascending, ``p_(i)`` becomes
``max_{j <= i} min(1, (m - j + 1) p_(j))``, m the number of testable claims. The verdict is

* HOLDS: the claim's Holm-adjusted p < 0.05;
* CONTRADICTED: the opposite statement, tested the same way and Holm-corrected over the same
  family, has adjusted p < 0.05 (for ``lower``: a significantly higher than b; for ``lowest``: some
  row significantly lower than a target, Bonferroni over the pairs; for ``close``: the gap
  significantly larger than delta, Bonferroni over the two sides);
* NOT SIGNIFICANT: neither; the seeds cannot tell (the detail says whether the observed direction
  is the claimed one);
* CANNOT BE TESTED: a row of the claim has one seed, so there is no estimate of seed noise;
* NOT RUN: a row of the claim has no finished seed.

Each of the two families (claims, contradictions) keeps its family-wise error rate at 0.05.

The statistics of the rows and of two rows (Welch), Holm's correction and the verdicts' words are
:mod:`ablation.reporting.stats`.
"""

from __future__ import annotations

import numpy as np

from .stats import (ALPHA, CANNOT, CONTRADICTED, HOLDS, NOT_RUN, NOT_SIGNIFICANT, TEST_NAME, Welch, clean, format_p,
                    holm)


def claim_rows(claim: dict) -> list[str]:
    return [*(claim.get("lower") or []), *(claim.get("lowest") or []), *(claim.get("close") or []),
            *(claim.get("not_worse") or []), *(claim.get("identity_at_init") or [])]


IDENTITY_TOL = 1e-6  # largest |y - h(x)| / rms(h(x)) of a unit that counts as computing the identity


def check_identity(c: dict, got: dict) -> dict:
    """The verdict of an ``identity_at_init`` claim from each row's largest relative residual term per seed."""
    worst = {n: max(got[n]) for n in c["identity_at_init"]}
    bad = [n for n, v in worst.items() if not v <= IDENTITY_TOL]
    detail = ", ".join(f"{n} {v:.2g}" for n, v in worst.items())
    seeds = min(len(got[n]) for n in worst)
    what = (f"largest |y - h(x)| / rms(h(x)) over the units of each net as built, before training ({detail}; "
            f"{seeds} seed{'s' if seeds > 1 else ''} per row, tolerance {IDENTITY_TOL:g})")
    return {"kind": "identity_at_init", "verdict": CONTRADICTED if bad else HOLDS, "seeds": seeds,
            "detail": (f"not the identity: {', '.join(bad)}; " if bad else "every unit computes h(x) exactly; ") + what}


def test_claims(claims: list[dict], samples: dict[str, dict[str, list]]) -> list[dict]:
    """Every claim of one experiment tested and Holm-corrected together.

    ``samples[metric][variant]`` holds the final errors (in %) of the finished seeds of each row,
    ``metric`` being ``test`` or ``train``. Returns one dict per claim, in order: ``says``,
    ``verdict`` (one of :data:`VERDICTS`), ``detail`` (one line), and where tested ``p``,
    ``p_holm``, ``p_opposite``, ``p_opposite_holm``, ``effect``, ``ci``, ``seeds``.
    """
    out = []
    for c in claims:
        metric = "init" if c.get("identity_at_init") else c.get("metric", "test")
        got = {k: x for k, v in samples.get(metric, {}).items() if (x := clean(v))}
        res = {"says": c["says"], "metric": metric}
        missing = [n for n in claim_rows(c) if not got.get(n)]
        if missing:
            out.append({**res, "verdict": NOT_RUN, "detail": f"needs {', '.join(missing)}"})
            continue
        if c.get("settings_differ"):  # ablation.reporting.comparable: not a comparison of what the rows vary
            out.append({**res, "verdict": CANNOT, "detail": f"its rows ran under different settings: "
                        f"{', '.join(c['settings_differ'])} differ (keys the rows do not set themselves)"})
            continue
        if metric == "init":
            out.append({**res, **check_identity(c, got)})
            continue
        pool = _pool(c, got)
        single = [n for n in pool if len(got[n]) < 2]
        if single:
            means = ", ".join(f"{n} {np.mean(got[n]):.2f}" for n in pool)
            out.append({**res, "verdict": CANNOT, "seeds": min(len(got[n]) for n in pool),
                        "detail": f"one seed of {', '.join(single)}, no estimate of seed noise "
                                  f"({means} % {_what(metric)} error)"})
            continue
        kind = next(k for k in ("lower", "lowest", "close", "not_worse") if c.get(k))
        res.update(_TESTS[kind](c, got))
        res["seeds"] = min(len(got[n]) for n in pool)
        out.append(res)
    tested = [r for r in out if "p" in r]
    for key in ("p", "p_opposite"):
        for r, adj in zip(tested, holm([r[key] for r in tested])):
            r[f"{key}_holm"] = adj
    for r in tested:
        r["verdict"] = (HOLDS if r["p_holm"] < ALPHA else CONTRADICTED if r["p_opposite_holm"] < ALPHA
                        else NOT_SIGNIFICANT)
        if r["verdict"] == NOT_SIGNIFICANT and r["effect"] < 0 and r["kind"] not in ("close", "not_worse"):
            r["detail"] += "; observed direction opposite to the claim"
        if r["verdict"] == CONTRADICTED:
            r["detail"] += (f"; the opposite by {r['test']}: p {format_p(r['p_opposite'])}, Holm-adjusted p "
                            f"{format_p(r['p_opposite_holm'])} ({r['n']})")
        else:
            r["detail"] += f"; {r['test']}: p {format_p(r['p'])}, Holm-adjusted p {format_p(r['p_holm'])} ({r['n']})"
    return out


def _pool(c: dict, got: dict) -> list[str]:
    if c.get("lowest"):
        among = c.get("among") or list(got)
        return list(dict.fromkeys([*c["lowest"], *(n for n in among if n in got)]))
    return claim_rows(c)


def _what(metric: str) -> str:
    return "test" if metric == "test" else "training"




def _n(*samples) -> str:
    sizes = [len(x) for x in samples]
    return f"n = {sizes[0]} seeds per row" if len(set(sizes)) == 1 else f"n = {', '.join(map(str, sizes))} seeds"


def _effect(first: str, second: str, d: float, lo: float, hi: float) -> str:
    return f"{first} - {second} = {d:+.2f} points [95% CI {lo:+.2f}, {hi:+.2f}]"


def _test_lower(c, got) -> dict:
    a, b = c["lower"]
    w = Welch.of(got[b], got[a])  # d = m_b - m_a: positive as claimed
    lo, hi = w.ci()
    return {"kind": "lower", "test": TEST_NAME, "p": w.p_above(), "p_opposite": w.p_below(), "effect": w.d,
            "ci": (lo, hi), "n": _n(got[a], got[b]),
            "detail": f"{a} {np.mean(got[a]):.2f} vs {b} {np.mean(got[b]):.2f} % {_what(c.get('metric', 'test'))} "
                      f"error (means), {_effect(b, a, w.d, lo, hi)}"}


def _test_lowest(c, got) -> dict:
    targets = c["lowest"]
    others = [n for n in _pool(c, got) if n not in targets]
    if not others:
        return {"kind": "lowest", "test": "nothing to compare", "p": 1.0, "p_opposite": 1.0, "effect": 0.0,
                "ci": (0.0, 0.0), "n": _n(got[targets[0]]), "detail": "no other row was run"}
    pairs = [(t, o, Welch.of(got[o], got[t])) for t in targets for o in others]  # d = m_o - m_t
    t, o, w = min(pairs, key=lambda p: p[2].d)  # the closest competitor
    lo, hi = w.ci()
    p = max(x.p_above() for _, _, x in pairs)  # intersection-union: every pair must hold
    p_opp = min(1.0, len(pairs) * min(x.p_below() for _, _, x in pairs))  # any pair reversed, Bonferroni
    rank = sorted(_pool(c, got), key=lambda n: np.mean(got[n]))
    return {"kind": "lowest", "test": f"intersection-union of {len(pairs)} {TEST_NAME}s", "p": p,
            "p_opposite": p_opp, "effect": w.d, "ci": (lo, hi),
            "n": _n(*(got[n] for n in _pool(c, got))),
            "detail": f"{t} {np.mean(got[t]):.2f} % {_what(c.get('metric', 'test'))} error (mean), ranks "
                      f"{rank.index(t) + 1} of {len(rank)}; closest: {o} {np.mean(got[o]):.2f}, "
                      f"{_effect(o, t, w.d, lo, hi)}"}


def _test_close(c, got) -> dict:
    a, b = c["close"]
    delta = float(c.get("within", 1.0))
    w = Welch.of(got[a], got[b])  # d = m_a - m_b
    lo, hi = w.ci()
    p = max(w.p_below(delta), w.p_above(-delta))  # TOST: both bounds must be rejected
    p_opp = min(1.0, 2 * min(w.p_above(delta), w.p_below(-delta)))  # the gap exceeds delta on one side
    return {"kind": "close", "test": f"TOST (two {TEST_NAME}s, margin {delta:g})", "p": p, "p_opposite": p_opp,
            "effect": w.d, "ci": (lo, hi), "n": _n(got[a], got[b]),
            "detail": f"{a} {np.mean(got[a]):.2f} vs {b} {np.mean(got[b]):.2f} % "
                      f"{_what(c.get('metric', 'test'))} error (means), {_effect(a, b, w.d, lo, hi)}, "
                      f"margin +-{delta:g}"}


def _test_not_worse(c, got) -> dict:
    a, b = c["not_worse"]
    delta = float(c.get("within", 1.0))
    w = Welch.of(got[a], got[b])  # d = m_a - m_b
    lo, hi = w.ci()
    return {"kind": "not_worse", "test": f"{TEST_NAME} of non-inferiority, margin {delta:g}",
            "p": w.p_below(delta), "p_opposite": w.p_above(delta), "effect": -w.d, "ci": (-hi, -lo),
            "n": _n(got[a], got[b]),
            "detail": f"{a} {np.mean(got[a]):.2f} vs {b} {np.mean(got[b]):.2f} % {_what(c.get('metric', 'test'))} "
                      f"error (means), {_effect(b, a, -w.d, -hi, -lo)}, margin {delta:g}"}


_TESTS = {"lower": _test_lower, "lowest": _test_lowest, "close": _test_close, "not_worse": _test_not_worse}
