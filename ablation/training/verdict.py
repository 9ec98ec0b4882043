"""How a run ends (:mod:`ablation.core.outcomes` names the statuses), decided at each evaluation point.

Outcome rule 2 (:data:`ablation.core.outcomes.OUTCOME_RULE`): a run ends for what happened in training.

* ``diverged``: the training loss over the last interval, or a weight, is not finite; no step after it
  can mean anything.
* A non-finite or huge test loss (above :data:`HUGE_TEST_LOSS`) is recorded, with its iteration (the
  history point's ``test_loss`` is null where it is not finite; the summary lists those iterations in
  ``test_loss_unstable_at``), and the run goes on: it is the net in evaluation mode, whose BatchNorm
  running statistics can be far off after a few large updates, not the training, that broke.
* ``test-not-finite``: the run trained to the end, but its final test loss is not finite.
* ``fail``: the chance stop. It compares the training error (over the images since the last evaluation)
  and the test error (over the evaluated images) with chance, ``p = 1 - 1/classes``: both at least
  ``100 p - 2 - 200 sqrt(p (1 - p) / n_test)`` points, two points plus two binomial standard deviations
  of the test estimate. It fires only where both estimates rest on at least :data:`MIN_CHANCE_IMAGES`
  images: on fewer, two standard deviations of a binomial estimate exceed 10 points (at p = 1/2, 100
  images give sd = 5 points), and on one image the threshold falls below zero, so that any run would
  "fail" (``eval_subset=1``). Such a run goes on; a later evaluation on enough images (the last one is
  on the whole test split) or the paper's rule decides.
"""

from __future__ import annotations

import math

from ..core.outcomes import DIVERGED, FAIL, TEST_NOT_FINITE
from .schedule import Schedule
from .step import LoopState

MIN_CHANCE_IMAGES = 100  # the least images on which an error estimate may end a run as "at chance"
# a test loss beyond any a classifier reaches by learning (chance is ln 10 = 2.3 nats for ten classes):
# logits of this size come from an evaluation-mode net whose BatchNorm statistics are far off
HUGE_TEST_LOSS = 1e6


def unstable_test_loss(rec: dict) -> bool:
    """A history point whose test loss is not finite (recorded as null) or huge."""
    return rec.get("test_loss") is None or rec["test_loss"] > HUGE_TEST_LOSS


def verdict(cfg, plan: Schedule, s: LoopState, rec, classes, n_test, n_train=MIN_CHANCE_IMAGES, weights_finite=True,
            final=False):
    """Stop as ``diverged`` on a non-finite training loss or weight, mark a final non-finite test loss as
    ``test-not-finite``, stop as ``fail`` on error still at chance late enough into the schedule.

    ``n_test`` and ``n_train``: the images the test and training errors of ``rec`` were measured on;
    ``weights_finite``: whether every weight of the net is finite; ``final``: the run's last point.
    """
    if rec["train_loss"] is None or not weights_finite:
        what = "training loss" if rec["train_loss"] is None else "a weight"
        s.status, s.reason = DIVERGED, f"{what} not finite by iteration {s.it}"
        return
    if final and rec["test_loss"] is None:
        s.status = TEST_NOT_FINITE
        s.reason = (f"the final test loss is not finite (training loss {rec['train_loss']:.3g}): the net in "
                    f"evaluation mode, with BatchNorm's running statistics, gives non-finite outputs")
        return
    frac = cfg["fail_chance_fraction"]
    if frac is None or s.it < frac * plan.total or min(n_test, n_train) < MIN_CHANCE_IMAGES:
        return
    p = 1 - 1 / classes
    # two points, plus two binomial standard deviations of the test estimate for small test sets
    at_chance = 100 * p - 2 - 200 * math.sqrt(p * (1 - p) / n_test)
    if rec["train_error"] >= at_chance and rec["test_error"] >= at_chance:
        s.status = FAIL
        s.reason = (f"error still at chance after {s.it} of {plan.total} iterations "
                    f"(train {rec['train_error']:.1f}%, test {rec['test_error']:.1f}%)")
