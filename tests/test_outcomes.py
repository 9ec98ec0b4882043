"""How a run ends: only for what happened in training (outcome rule 2), and an older rule's outcome is trained again.

The shortcuts below break a net on purpose, in one mode only: the evaluation-mode net gives non-finite
outputs while training goes on (as BatchNorm's running statistics can after a large update at depth
110), or training itself produces a non-finite loss.
"""

from __future__ import annotations

import json

from ablation.core.layout import ResultsDir, RunDir
from ablation.core.outcomes import OUTCOME_RULE, outdated
from ablation.nets.shortcut_base import Shortcut
from ablation.nets.registry import register_shortcut
from ablation.training import loop as T

from conftest import tiny_args


@register_shortcut("test-eval-nan-once", formula="y = F(x) + x; NaN in evaluation mode at the first evaluation")
class EvalNanOnce(Shortcut):
    """Non-finite in evaluation mode until ``evals`` evaluations of the first unit have passed."""

    def __init__(self, in_channels, out_channels, stride=1, match="zero-pad", evals: int = 1):
        super().__init__(in_channels, out_channels, stride, match)
        self.evals_left = evals

    def forward(self, x, fx):
        y = fx + self.match(x)
        if not self.training and self.evals_left > 0:
            if fx.shape[0] > 1:  # a real evaluation batch (not the one-image FLOP count)
                self.evals_left -= 1
            return y * float("nan")
        return y


@register_shortcut("test-eval-nan-always", formula="y = F(x) + x; NaN in evaluation mode")
class EvalNanAlways(Shortcut):
    def forward(self, x, fx):
        y = fx + self.match(x)
        return y if self.training else y * float("nan")


@register_shortcut("test-train-nan", formula="y = F(x) + x; NaN in training from iteration 10")
class TrainNan(Shortcut):
    def __init__(self, in_channels, out_channels, stride=1, match="zero-pad"):
        super().__init__(in_channels, out_channels, stride, match)
        self.calls = 0

    def forward(self, x, fx):
        y = fx + self.match(x)
        if self.training:
            self.calls += 1
            if self.calls > 10:  # one call per training step: from the 11th on
                return y * float("inf")
        return y


def tiny(data_dir, **over):
    cfg = {"dataset": "synthetic", "data_dir": str(data_dir), "arch": "resnet8", "width": 4, "batch_size": 64,
           "steps": 30, "milestones": [], "evals": 5, "eval_batch_size": 256, "checkpoint_every": 1000,
           "quiet": True, "threads": 1, "grad_norm_points": [0.0], "fail_chance_fraction": None}
    return {**cfg, **over}


def history(run_dir):
    return [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]


def test_a_non_finite_test_loss_with_a_finite_training_loss_does_not_end_the_run(tmp_path):
    run = tmp_path / "run"
    summary = T.train(tiny(tmp_path / "data", shortcut="test-eval-nan-once", shortcut_args={"evals": 1}), run)
    hist = history(run)
    assert hist[0]["iteration"] == 1 and hist[0]["test_loss"] is None  # the first evaluation, after one update
    assert hist[0]["train_loss"] is not None and hist[0]["train_loss"] < 10
    assert summary["status"] == "ok" and summary["iterations"] == 30
    assert all(h["test_loss"] is not None for h in hist[1:])
    assert summary["test_loss_unstable_at"] == [1]
    assert summary["outcome_rule"] == OUTCOME_RULE


def test_a_non_finite_training_loss_ends_the_run_as_diverged(tmp_path):
    run = tmp_path / "run"
    summary = T.train(tiny(tmp_path / "data", shortcut="test-train-nan"), run)
    assert summary["status"] == "diverged"
    assert summary["reason"] == "training loss not finite by iteration 12"  # evaluations at 1, 6, 12, ...
    assert summary["iterations"] == 12


def test_a_non_finite_final_evaluation_is_its_own_verdict(tmp_path):
    run = tmp_path / "run"
    summary = T.train(tiny(tmp_path / "data", shortcut="test-eval-nan-always"), run)
    assert summary["status"] == "test-not-finite" and summary["iterations"] == 30
    assert "final test loss is not finite" in summary["reason"]
    assert summary["test_loss_unstable_at"] == [h["iteration"] for h in history(run)]


def test_the_chance_stop_is_unchanged(tmp_path):
    summary = T.train(tiny(tmp_path / "data", lr=1e-12, fail_chance_fraction=0.1, evals=10, eval_batch_size=256),
                      tmp_path / "run")
    assert summary["status"] == "fail" and summary["reason"].startswith("error still at chance after")


def _rule_1(summary: dict, **over) -> dict:
    """``summary`` as outcome rule 1 would have written it."""
    old = {k: v for k, v in summary.items() if k not in ("outcome_rule", "test_loss_unstable_at")}
    return {**old, **over}


def test_only_an_outcome_that_the_new_rule_changes_is_outdated():
    stopped = {"status": "fail", "reason": "loss is not finite at iteration 1"}
    assert "outcome rule 1" in outdated(stopped)
    assert outdated({"status": "fail", "reason": "error still at chance after 150 of 500 iterations"}) is None
    assert outdated({"status": "ok", "reason": None}) is None
    assert outdated({**stopped, "outcome_rule": OUTCOME_RULE}) is None
    assert outdated({**stopped, "outcome_rule": float("nan")}) is not None  # a runs.csv cell without a value


def test_a_run_ended_by_the_old_rule_is_trained_again_from_the_start(tmp_path):
    cfg = tiny(tmp_path / "data", shortcut="test-eval-nan-once", shortcut_args={"evals": 1})
    run = tmp_path / "run"
    fresh = T.train(cfg, run)
    fresh_history = history(run)
    # what rule 1 left: a summary stopped at iteration 1 with the history of that stop
    (run / "history.jsonl").write_text(json.dumps(fresh_history[0]) + "\n")
    (run / "summary.json").write_text(json.dumps(_rule_1(fresh, status="fail", iterations=1,
                                                         reason="loss is not finite at iteration 1")))
    assert not RunDir(run).is_finished() and RunDir(run).outdated()
    again = T.train(cfg, run)
    assert again["status"] == "ok" and again["iterations"] == 30
    strip = lambda hs: [{k: v for k, v in h.items() if k not in ("wall_time", "images_per_s")} for h in hs]
    assert strip(history(run)) == strip(fresh_history)  # from the start, as the first training went


def test_the_runner_says_which_runs_it_trains_again_and_the_report_does_not_count_them(tmp_path, experiments_dir,
                                                                                      capsys):
    from ablation import run as R
    from ablation.reporting import report
    from ablation.reporting.tables import load_tables

    exp = experiments_dir()
    out = tmp_path / "out"
    args = ["--variants", "all", "--out", str(out), *tiny_args(exp), "--jobs", "1"]
    assert R.main(args) == 0
    results = ResultsDir(out)
    h = next(iter(json.loads(results.manifest.read_text())["runs"].values()))["hash"]
    summary = json.loads(results.run(h).summary.read_text())
    results.run(h).write_summary(_rule_1(summary, status="fail", reason="loss is not finite at iteration 1"))
    report.build(out)
    _, runs, _ = load_tables(out)
    row = runs[runs["hash"] == h].iloc[0]
    assert row["status"] == "outdated" and "outcome rule 1" in row["reason"]
    capsys.readouterr()
    assert R.main(["--dry-run", *args]) == 0
    assert "retrain" in capsys.readouterr().out
    assert R.main(args) == 0
    err = capsys.readouterr().err
    assert "training 1 finished run(s) again from the start" in err and "outcome rule 1" in err
    assert json.loads(results.run(h).summary.read_text())["outcome_rule"] == OUTCOME_RULE
