"""The fail verdict of a run: a non-finite loss, or an error still at chance late enough into the schedule.

The chance stop compares the training error (over the images since the last evaluation) and the test
error (over the evaluated images) with chance, ``p = 1 - 1/classes``: both at least
``100 p - 2 - 200 sqrt(p (1 - p) / n_test)`` points, two points plus two binomial standard deviations of
the test estimate. It fires only where both estimates rest on at least :data:`MIN_CHANCE_IMAGES` images:
on fewer, two standard deviations of a binomial estimate exceed 10 points (at p = 1/2, 100 images give
sd = 5 points), and on one image the threshold falls below zero, so that any run would "fail"
(``eval_subset=1``). Such a run goes on; a later evaluation on enough images (the last one is on the
whole test split) or the paper's rule decides.
"""

from __future__ import annotations

import math

from .schedule import Plan
from .step import LoopState

MIN_CHANCE_IMAGES = 100  # the least images on which an error estimate may end a run as "at chance"


def verdict(cfg, plan: Plan, s: LoopState, rec, classes, n_test, n_train=MIN_CHANCE_IMAGES):
    """Stop as ``fail`` on a non-finite loss, or on error still at chance late enough into the schedule.

    ``n_test`` and ``n_train``: the images the test and training errors of ``rec`` were measured on.
    """
    if rec["train_loss"] is None or rec["test_loss"] is None:
        s.status, s.reason = "fail", f"loss is not finite at iteration {s.it}"
        return
    frac = cfg["fail_chance_fraction"]
    if frac is None or s.it < frac * plan.total or min(n_test, n_train) < MIN_CHANCE_IMAGES:
        return
    p = 1 - 1 / classes
    # two points, plus two binomial standard deviations of the test estimate for small test sets
    at_chance = 100 * p - 2 - 200 * math.sqrt(p * (1 - p) / n_test)
    if rec["train_error"] >= at_chance and rec["test_error"] >= at_chance:
        s.status = "fail"
        s.reason = (f"error still at chance after {s.it} of {plan.total} iterations "
                    f"(train {rec['train_error']:.1f}%, test {rec['test_error']:.1f}%)")
