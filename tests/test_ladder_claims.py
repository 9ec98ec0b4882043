"""Claims against a ladder's key on hand-made verdicts and a made-up depth ladder folder (no training)."""

import json

import pytest

from ablation.core.layout import ResultsDir
from ablation.reporting import ladder_claims as dc
from ablation.reporting import report
from ablation.reporting import stats as st
from ablation.reporting.tables import load_tables
from ablation.study.expansion import expand
from ablation.study.invocation import log_invocation
from ablation.study.manifest import manifest

H, NS, C = st.HOLDS, st.NOT_SIGNIFICANT, st.CONTRADICTED


@pytest.mark.parametrize("verdicts, start, text", [
    ({20: H, 32: H, 56: H, 110: H}, 20, "holds at every depth tested (20, 32, 56, 110)"),
    ({20: NS, 32: H, 56: NS, 110: H}, 110, "holds from depth 110 (tested at 20, 32, 56, 110)"),
    ({20: NS, 32: NS, 56: H, 110: H}, 56, "holds from depth 56"),
    ({20: H, 32: H, 56: H, 110: NS}, None, "never holds at the last depths: holds at 20, 32, 56 only"),
    ({20: C, 32: NS, 56: NS, 110: NS}, None,
     "never holds at this scale (tested at 20, 32, 56, 110); contradicted at 20"),
    ({20: st.NOT_RUN, 32: NS, 56: H, 110: H}, 56, "holds from depth 56 (tested at 32, 56, 110)"),
    ({20: NS, 32: H, 56: st.CANNOT, 110: H}, 32, "holds from depth 32 (tested at 20, 32, 110)"),
    ({20: st.NOT_RUN}, None, "not tested at any depth"),
])
def test_holds_from_the_shallowest_depth_after_which_it_always_holds(verdicts, start, text):
    h = dc.holds_from(verdicts)
    assert h["from"] == start
    assert text in dc.holds_from_text(h, "depth")


def test_crossing_the_fail_line():
    c = dc.crossing({20: 15.0, 32: 18.0, 56: 25.0, 110: 30.0}, 20.0)
    assert c["from"] == 56 and c["above_at"] == [56, 110]
    assert c["between"] == (32, 56)
    assert "crosses 20% between depth 32 and 56 and stays above" in dc.crossing_text(c, 20.0, "depth")
    c = dc.crossing({20: 25.0, 32: 15.0, 56: 22.0, 110: 30.0}, 20.0)  # above, below, then above for good
    assert (c["from"], c["above_at"]) == (56, [20, 56, 110])
    c = dc.crossing({20: 25.0, 32: 21.0}, 20.0)
    assert c["from"] == 20 and c["between"] is None and "above 20% at every depth run" in dc.crossing_text(c, 20.0)
    c = dc.crossing({20: 25.0, 32: 19.0}, 20.0)
    assert c["from"] is None and "never crosses the line for good (above at 20 only)" in dc.crossing_text(c, 20.0)
    assert dc.crossing({20: 20.0}, 20.0)["from"] is None  # on the line is not above it


def test_the_papers_effects_of_table_1(exps):
    im = exps["identity_mappings"]
    paper = {v.name: v.paper for v in im.variants}
    effects = {c.says: dc.paper_effect(c.__dict__, paper, im.fail_above) for c in im.claims}
    assert effects["constant scaling lam_s = lam_f = 0.5 is worse than identity"] == pytest.approx((12.35 - 6.61,
                                                                                                  False))
    assert effects["no shortcut (lam_s = 0) is worse than identity"] == pytest.approx((20.0 - 6.61, True))
    assert effects["exclusive gating: b_g = -6 beats b_g = 0"] == pytest.approx((20.0 - 8.70, True))
    assert effects["shortcut-only gating with b_g = -6 is close to identity (within 1 point)"] == pytest.approx(
        (6.91 - 6.61, False))
    # lowest: the lead of the best other row (shortcut-only gating b = -6) over identity
    assert effects["the identity shortcut (original) has the lowest test error of all shortcut types"] == \
        pytest.approx((6.91 - 6.61, False))


# (final test error) per ladder row and seed; the training error is the test error minus 2
NUMBERS = {
    "original@20": [10.0, 11.0, 12.0],
    "scale-0.5-0.5@20": [10.5, 11.5, 12.5],   # +0.5 over identity, seeds overlap: not significant
    "scale-0-1@20": [18.0, 19.0, 20.0],       # median 19: below the paper's 20% line
    "original@110": [10.0, 10.2, 10.4],
    "scale-0.5-0.5@110": [16.0, 16.2, 16.4],  # +6.0 exactly: holds
    "scale-0-1@110": [30.0, 31.0, 90.0],      # median 31: above the line; the third diverged
}


@pytest.fixture
def ladder_folder(tmp_path, exps, presets):
    lad = exps["depth_ladder"]
    rows = [lad.variant(v) for v in NUMBERS]
    runs = expand(exps, rows, presets["quick"], seeds=3)
    out = tmp_path / "ladder"
    res = ResultsDir(out)
    res.write_manifest(manifest(None, presets["quick"], exps, rows, runs))
    for r in runs:
        test = NUMBERS[r.variant][r.seed]
        d = out / "runs" / r.hash
        d.mkdir(parents=True)
        (d / "config.json").write_text(json.dumps(r.config))
        hist = [{"iteration": i * 10, "epoch": i / 10, "lr": 0.1, "train_loss": 1.0,
                 "train_error": min(100.0, test + 30 - 10 * i), "test_loss": 1.0,
                 "test_error": min(100.0, test + 40 - 10 * i), "wall_time": float(i)} for i in range(5)]
        (d / "history.jsonl").write_text("".join(json.dumps(h) + "\n" for h in hist))
        diverged = test == 90.0
        (d / "summary.json").write_text(json.dumps({
            "status": "diverged" if diverged else "ok", "outcome_rule": 2,
            "reason": "training loss not finite by iteration 10" if diverged else None,
            "final_test_error": test, "best_test_error": test - 0.5,
            "final_train_error": test - 2, "params": 1234, "flops": 5678, "iterations": 40, "epochs": 1.0,
            "time_s": 2.0, "images_per_s": 50.0, "device": "cpu"}))
    log_invocation(res, "python -m ablation.run --experiment depth_ladder", 1.0,
                       {"trained": len(runs), "skipped": 0, "errors": 0, "interrupted": False, "jobs": 2}, 2)
    return out


def test_each_claim_is_tested_on_the_seeds_of_one_depth(ladder_folder):
    manifest, runs, _ = load_tables(ladder_folder)
    res = dc.effects(manifest, runs, "depth_ladder")
    axis = manifest["experiments"]["depth_ladder"]["axis"]
    i = next(k for k, c in enumerate(axis["claims"]) if c.get("lower") == ["original", "scale-0.5-0.5"])
    at = {r["rung"]: r for r in res if r["claim"] == i}
    assert at[20]["effect"] == pytest.approx(0.5) and at[20]["verdict"] == NS
    assert at[110]["effect"] == pytest.approx(6.0) and at[110]["verdict"] == H
    lo, hi = at[110]["ci"]
    assert lo < 6.0 < hi and hi - lo < 1.0  # std 0.2 in both rows: a narrow interval
    assert at[32]["verdict"] == at[56]["verdict"] == st.NOT_RUN
    # Holm over the claims of one depth, not of the whole ladder
    testable = [r for r in res if r["rung"] == 110 and "p" in r]
    assert len(testable) == 3  # the two `lower` claims of these rows, and `lowest` among the rows run
    holm = st.holm([r["p"] for r in testable])
    assert at[110]["p_holm"] == pytest.approx(holm[testable.index(at[110])])


def test_the_report_says_where_each_claim_holds_and_draws_the_depth_figures(ladder_folder):
    written = report.build(ladder_folder)
    text = (ladder_folder / "README.md").read_text()
    section = text.split("## Claims against depth")[1]
    row = next(l for l in section.splitlines() if l.startswith("| constant scaling lam_s = lam_f = 0.5"))
    assert "+0.50 [" in row and "NOT SIGNIFICANT" in row and "+6.00 [" in row and "HOLDS" in row
    assert "+5.74" in row and "holds from depth 110 (tested at 20, 110)" in row
    no_shortcut = next(l for l in section.splitlines() if l.startswith("| no shortcut"))
    assert "> +13.39" in no_shortcut
    # the paper's 20% line is about CIFAR-10's errors: on the quick preset's Fashion-MNIST it is not drawn
    assert "that line is not drawn on fashion-mnist" in section
    assert "- scale-0-1: 20: 19.0, 110: 31.0 (1/3 failed: 1 diverged)" in section
    assert "fail marks" not in text  # the ladder's fail rows are the section's, depth by depth
    for fig in dc.LADDER_FIGURES:
        assert any(p.endswith(f"plots/{fig}_depth_depth_ladder.png") for p in written["plots"]), fig
        assert f"(plots/{fig}_depth_depth_ladder.png)" in section
    # a column per depth in the ladder's table
    table = (ladder_folder / "tables/depth_ladder.md").read_text()
    assert "depth 20 (resnet20) ours" in table and "depth 110 (resnet110) ours" in table
