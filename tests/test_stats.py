"""Statistics on hand-made seeds where the answer is known."""

import math

import pandas as pd
import pytest
from scipy import stats as sps

from ablation.reporting import ranking
from ablation.reporting import claim_tests
from ablation.reporting import stats as st

LOW = [10.0, 10.2, 9.9, 10.1, 10.0]  # five seeds each, seed noise ~0.1 points
HIGH = [12.0, 12.3, 11.8, 12.1, 12.2]
NEAR = [10.3, 10.1, 10.4, 10.2, 10.0]
NOISY = [8.0, 13.0, 10.5, 7.5, 12.5]  # mean 10.3, std ~2.5


def test_summary_of_a_row():
    s = st.summarize([1, 2, 3, 4, 5, None, float("nan")])
    assert (s.n, s.median, s.mean, s.best) == (5, 3.0, 3.0, 1.0)
    assert s.std == pytest.approx(math.sqrt(2.5))
    # t(0.975, 4) = 2.7764 (any t table): 3 +- 2.7764 * sqrt(2.5) / sqrt(5)
    assert (s.ci_low, s.ci_high) == pytest.approx((3 - 1.96324, 3 + 1.96324), abs=1e-4)
    one = st.summarize([7.0])
    assert one.n == 1 and one.mean == 7.0 and one.std is None and one.ci_low is None
    assert st.summarize([]).n == 0


def test_welch_matches_scipy_and_handles_identical_seeds():
    w = st.Welch.of(LOW, HIGH)
    ref = sps.ttest_ind(LOW, HIGH, equal_var=False, alternative="less")
    assert w.p_below() == pytest.approx(ref.pvalue) and w.df == pytest.approx(ref.df)
    assert w.p_above() == pytest.approx(1 - ref.pvalue)
    lo, hi = w.ci()
    assert lo < w.d < hi < 0
    same = st.Welch.of([5.0, 5.0], [6.0, 6.0])  # no spread at all: the sign is certain
    assert same.p_below() == 0.0 and same.p_above() == 1.0


def test_holm_adjusts_in_step_down_order():
    # sorted: 0.005 * 4, 0.01 * 3, 0.03 * 2, then 0.04 * 1 is raised to the running maximum 0.06
    assert st.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert st.holm([]) == []


def verdicts(claims, rows, metric="test"):
    return [r["verdict"] for r in claim_tests.test_claims(claims, {metric: rows})]


def test_a_real_difference_holds_an_overlapping_one_does_not_a_reversed_one_is_contradicted():
    rows = {"a": LOW, "b": HIGH, "c": NOISY}
    claims = [{"says": "a < b", "lower": ["a", "b"]},  # 2 points apart, seed noise 0.2: significant
              {"says": "a < c", "lower": ["a", "c"]},  # 0.26 apart, c's noise 2.5: not significant
              {"says": "b < a", "lower": ["b", "a"]}]  # the reverse of the first: contradicted
    assert verdicts(claims, rows) == [st.HOLDS, st.NOT_SIGNIFICANT, st.CONTRADICTED]
    res = claim_tests.test_claims(claims, {"test": rows})
    assert res[0]["effect"] == pytest.approx(2.04) and res[0]["ci"][0] > 0
    assert res[2]["effect"] == pytest.approx(-2.04) and "the opposite by" in res[2]["detail"]
    assert "b - a = +2.04 points" in res[0]["detail"] and "n = 5 seeds per row" in res[0]["detail"]


def test_the_claims_of_an_experiment_are_corrected_together():
    # three claims, each with a one-sided p of about 0.02: each holds alone, none after Holm (3 x 0.02 > 0.05)
    a, b = [10.0, 11.0, 12.0], [12.0, 13.5, 14.0]
    p = st.Welch.of(b, a).p_above()
    assert 0.0167 < p < 0.05
    one = [{"says": "x", "lower": ["a", "b"]}]
    assert verdicts(one, {"a": a, "b": b}) == [st.HOLDS]
    three = [{"says": f"x{i}", "lower": [f"a{i}", f"b{i}"]} for i in range(3)]
    rows = {**{f"a{i}": a for i in range(3)}, **{f"b{i}": b for i in range(3)}}
    res = claim_tests.test_claims(three, {"test": rows})
    assert [r["verdict"] for r in res] == [st.NOT_SIGNIFICANT] * 3
    assert [r["p_holm"] for r in res] == pytest.approx([3 * p] * 3)
    # an untestable claim (one seed) does not count in the family
    mixed = [*one, {"says": "y", "lower": ["a", "solo"]}]
    assert verdicts(mixed, {"a": a, "b": b, "solo": [20.0]}) == [st.HOLDS, st.CANNOT]


def test_one_seed_cannot_be_tested_and_a_missing_row_is_not_run():
    claims = [{"says": "a < b", "lower": ["a", "b"]}, {"says": "a < z", "lower": ["a", "z"]}]
    res = claim_tests.test_claims(claims, {"test": {"a": [10.0], "b": [30.0]}})
    assert [r["verdict"] for r in res] == [st.CANNOT, st.NOT_RUN]
    assert "one seed of a, b" in res[0]["detail"] and res[1]["detail"] == "needs z"


def test_lowest_is_an_intersection_union_test():
    rows = {"a": LOW, "b": HIGH, "c": NEAR, "d": [5.0, 5.2, 5.1, 4.9, 5.0]}
    among = ["a", "b"]
    assert verdicts([{"says": "", "lowest": ["a"], "among": among}], rows) == [st.HOLDS]
    # c is only 0.16 above a: every pair must hold, and this one does not
    assert verdicts([{"says": "", "lowest": ["a"], "among": ["a", "b", "c"]}], rows) == [st.NOT_SIGNIFICANT]
    # d is far lower than a: the claim is contradicted
    res = claim_tests.test_claims([{"says": "", "lowest": ["a"]}], {"test": rows})
    assert res[0]["verdict"] == st.CONTRADICTED and "ranks 2 of 4" in res[0]["detail"]


def test_close_is_an_equivalence_test():
    rows = {"a": LOW, "c": NEAR, "b": HIGH, "n": NOISY}
    claims = [{"says": "", "close": ["a", "c"], "within": 1.0},  # 0.16 apart, tight: equivalent
              {"says": "", "close": ["a", "b"], "within": 1.0},  # 2 apart, tight: significantly not within 1
              {"says": "", "close": ["a", "n"], "within": 1.0}]  # too noisy to say
    assert verdicts(claims, rows) == [st.HOLDS, st.CONTRADICTED, st.NOT_SIGNIFICANT]
    assert verdicts([{"says": "", "close": ["a", "b"], "within": 3.0}], rows) == [st.HOLDS]


def test_training_error_claims_read_the_training_samples():
    claims = [{"says": "", "metric": "train", "lower": ["a", "b"]}]
    res = claim_tests.test_claims(claims, {"test": {"a": HIGH, "b": LOW}, "train": {"a": LOW, "b": HIGH}})
    assert res[0]["verdict"] == st.HOLDS and "training error" in res[0]["detail"]


def test_p_values_that_round_to_the_threshold_keep_a_third_digit():
    assert st.format_p(0.0504) == "= 0.0504" and st.format_p(0.012) == "= 0.012"
    assert st.format_p(0.0002) == "< 0.001"


def test_rank_agreement_ties_the_papers_fails_last():
    rows = ["a", "b", "c", "d", "e"]
    paper = [6.6, 7.0, 12.0, "fail", "fail"]
    same = ranking.rank_agreement(rows, paper, [10.0, 11.0, 14.0, 30.0, 90.0], [False] * 5)
    assert same.paper_rank == [1, 2, 3, 4.5, 4.5] and same.our_rank == [1, 2, 3, 4, 5]
    assert same.spearman > 0.9 and same.kendall > 0.8
    reverse = ranking.rank_agreement(rows, paper, [50.0, 40.0, 30.0, 20.0, 10.0], [False] * 5)
    assert reverse.spearman < -0.9
    failed = ranking.rank_agreement(rows, paper, [10.0, 11.0, 14.0, 0.0, 0.0], [False, False, False, True, True])
    assert failed.our_rank == [1, 2, 3, 4.5, 4.5] and failed.spearman == pytest.approx(1.0)
    assert ranking.rank_agreement(rows[:2], paper[:2], [1.0, 2.0], [False, False]) is None


def test_our_statistic_matches_the_papers_protocol():
    assert [st.protocol_stat(p) for p in ("median", "best", "mean", "single", None, float("nan"))] == \
        ["median", "best", "mean", "median", "median", "median"]
    manifest = {"experiments": {"e": {"name": "e", "rows": [
        {"variant": "a", "label": "A", "paper": 6.4, "protocol": "best"},
        {"variant": "b", "label": "B", "paper": 7.0}]}}}
    runs = pd.DataFrame([{"experiment": "e", "variant": v, "seed": i, "status": "ok", "final_test_error": e,
                          "final_train_error": e - 1, "best_test_error": e, "dataset": "x", "arch": "r",
                          "params": 1, "time_s": 1.0}
                         for v, errs in (("a", [7.0, 8.0, 9.5]), ("b", [7.0, 8.0, 9.5])) for i, e in enumerate(errs)])
    rows = st.row_stats(manifest, runs).set_index("variant")
    assert rows.loc["a", "stat"] == "best" and rows.loc["a", "ours"] == 7.0 and rows.loc["a", "train_best"] == 6.0
    assert rows.loc["b", "stat"] == "median" and rows.loc["b", "ours"] == 8.0
    assert rows.loc["b", "test_ci_low"] < rows.loc["b", "test_mean"] < rows.loc["b", "test_ci_high"]
    assert [a.spearman for _, a in ranking.agreements(rows.reset_index(), "e")] == []  # two rows: no ranking
