"""The fail verdict of a run: a non-finite loss, or an error still at chance late enough into the schedule."""

from __future__ import annotations

import math

from .schedule import Plan
from .step import LoopState


def verdict(cfg, plan: Plan, s: LoopState, rec, classes, n_test):
    """Stop as ``fail`` on a non-finite loss, or on error still at chance late enough into the schedule."""
    if rec["train_loss"] is None or rec["test_loss"] is None:
        s.status, s.reason = "fail", f"loss is not finite at iteration {s.it}"
        return
    frac = cfg["fail_chance_fraction"]
    if frac is None or s.it < frac * plan.total:
        return
    p = 1 - 1 / classes
    # two points, plus two binomial standard deviations of the test estimate for small test sets
    at_chance = 100 * p - 2 - 200 * math.sqrt(p * (1 - p) / n_test)
    if rec["train_error"] >= at_chance and rec["test_error"] >= at_chance:
        s.status = "fail"
        s.reason = (f"error still at chance after {s.it} of {plan.total} iterations "
                    f"(train {rec['train_error']:.1f}%, test {rec['test_error']:.1f}%)")
