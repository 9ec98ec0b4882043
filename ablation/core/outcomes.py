"""How a run ended, as its summary says: the statuses, which of them are finished results, and the rule that decided them.

A finished run's ``status`` is one of:

* ``ok``: it trained to the end of its schedule;
* ``fail``: stopped because its training and test errors were still at chance late enough into the
  schedule (the chance stop, :mod:`ablation.training.verdict`);
* ``diverged``: its training loss (or a weight) became non-finite, so training could not go on;
* ``test-not-finite``: it trained to the end, but its final evaluation gave a non-finite test loss:
  the net in evaluation mode (BatchNorm's running statistics) computes nothing usable, whatever the
  training loss was.

Each is a result: its final errors are counted (a stopped or diverged run at the error it had), and
each is marked apart in tables and figures. Besides these, the tables know ``error`` (the run raised),
``incomplete``, ``not run`` and ``outdated`` (below).

The rule that decides between them is versioned (:data:`OUTCOME_RULE`), and every summary written
records the rule it was decided under. Rule 1 ended a run as ``fail`` on a non-finite loss at any
evaluation point, the test loss included, so a run whose BatchNorm statistics gave a NaN test loss
after its first large update "failed" though it trained on. Rule 2 ends a run only for what happened
in training. A summary of rule 1 is still a result where rule 2 gives the same outcome for the same
training (:func:`outdated` says where it does not): rule 2 differs only where rule 1 stopped on a
non-finite loss, since every other rule-1 run had finite losses at all its evaluation points and the
chance stop is unchanged. Such an *outdated* run is not finished: the runner trains it again, and the
report does not count it.
"""

from __future__ import annotations

OK, FAIL, DIVERGED, TEST_NOT_FINITE = "ok", "fail", "diverged", "test-not-finite"
FINISHED = (OK, FAIL, DIVERGED, TEST_NOT_FINITE)  # a result: its final errors count
FAILED = (FAIL, DIVERGED, TEST_NOT_FINITE)  # a result that did not train to a usable net
OUTDATED = "outdated"

OUTCOME_RULE = 2  # the rule of :mod:`ablation.training.verdict`; raise it whenever the rule changes an outcome
_RULE_1_NON_FINITE = "loss is not finite"  # how rule 1 worded its stop on any non-finite loss


def outcome_rule(summary: dict) -> int:
    """The rule a summary was decided under; summaries written before rules were recorded are rule 1."""
    rule = summary.get("outcome_rule")
    try:
        return int(rule) if rule is not None and rule == rule else 1  # a table's missing cell reads as NaN
    except (TypeError, ValueError):
        return 1


def outdated(summary: dict) -> str | None:
    """Why a finished run's recorded outcome does not hold under :data:`OUTCOME_RULE`, or None where it does.

    ``summary``: a summary, or a line of a ``runs.csv`` (status, reason and outcome_rule).
    """
    if outcome_rule(summary) >= OUTCOME_RULE:
        return None
    if summary.get("status") == FAIL and str(summary.get("reason") or "").startswith(_RULE_1_NON_FINITE):
        return (f"ended under outcome rule 1 ({summary.get('reason')}), which stopped a run on a non-finite "
                f"test loss too; rule {OUTCOME_RULE} stops only on a non-finite training loss or weight")
    return None
