"""The answers the length ladder's page (docs/findings/length-quick-intel-xeon.md) gives in words, checked
against the committed reference they are read from: if the data change, the words must be written again.

Each test is one sentence of the page. The numbers themselves are in the page's findings blocks, which
tests/test_headlines.py checks.
"""

import pytest

from ablation.reporting import ladder_claims as lc
from ablation.reporting import stats as st
from ablation.reporting.analysis import gate_dynamics
from ablation.reporting.headlines import FolderTables, folder

NAME = "length_ladder"
PAGE = "length-quick-intel-xeon"


@pytest.fixture(scope="module")
def ref():
    return FolderTables(folder(PAGE))


@pytest.fixture(scope="module")
def lengths(ref):
    return lc.axis_of(ref.experiment(NAME))["values"]


@pytest.fixture(scope="module")
def verdicts(ref):
    """Per claim (its words, as the experiment file says it), the tested result at each length."""
    out = {}
    for r in lc.effects(ref.manifest, ref.runs, NAME):
        out.setdefault(r["says"], {})[r["rung"]] = r
    return out


def claim(verdicts, starts: str) -> dict:
    found = [v for says, v in verdicts.items() if says.startswith(starts)]
    assert len(found) == 1, f"no one claim starts {starts!r}"
    return found[0]


def mean(ref, row: str, length, metric: str = "test") -> float:
    line = ref.stats[(ref.stats["experiment"] == NAME) & (ref.stats["variant"] == f"{row}@{length}")]
    assert len(line) == 1 and int(line["seeds"].iloc[0]) >= 3, f"{row}@{length} has no 3 seeds"
    return float(line[f"{metric}_mean"].iloc[0])


def test_every_row_has_three_seeds_at_every_length(ref, lengths):
    """"at least 3 seeds per row and length": the page answers on the whole ladder, not a part of it."""
    rows = set(lc.axis_of(ref.experiment(NAME))["rows"].values())
    for row in rows:
        for length in lengths:
            mean(ref, row, length)


def test_identity_is_lowest_by_mean_at_every_length_and_never_significantly(verdicts, lengths):
    """"Identity has the lowest mean test error of Table 1's rows at every length, but never significantly
    below every other row"; "shortcut-only gating with b = -6 stays next to it at every length"."""
    lowest = claim(verdicts, "the identity shortcut (original) has the lowest")
    for length in lengths:
        r = lowest[length]
        assert r["effect"] > 0, (length, r["detail"])
        assert r["verdict"] != st.HOLDS, length
        assert "closest: shortcut-gate-b-6" in r["detail"], (length, r["detail"])


def test_plain_and_lam_s_scaled_hold_from_the_middle_length_with_shrinking_gaps(verdicts, lengths):
    """"The claims that the plain net and the shortcut scaled by lam_s = 0.5 are worse hold from the middle
    length on, with gaps that shrink as every row improves"."""
    for starts in ("no shortcut", "constant scaling lam_s = 0.5, lam_f = 1"):
        c = claim(verdicts, starts)
        assert lc.holds_from({v: c[v]["verdict"] for v in lengths})["from"] == lengths[1], starts
        gaps = [c[v]["effect"] for v in lengths]
        assert gaps == sorted(gaps, reverse=True), (starts, gaps)


def test_the_smaller_gaps_hold_at_the_middle_length_and_close_in_at_the_longest(verdicts, lengths):
    """"both branches scaled by 0.5, the 1x1 conv shortcut, and shortcut-only gating with b = 0 against b = -6
    ... close in as well: each of these claims holds at the middle length and is no longer significant at the
    longest"."""
    middle, longest = lengths[1], lengths[-1]
    for starts in ("constant scaling lam_s = lam_f", "the 1x1 conv shortcut", "shortcut-only gating: b_g = -6 beats"):
        c = claim(verdicts, starts)
        gaps = [c[v]["effect"] for v in lengths]
        assert all(gap > 0 for gap in gaps) and gaps == sorted(gaps, reverse=True), (starts, gaps)
        assert c[middle]["verdict"] == st.HOLDS, starts
        assert c[longest]["verdict"] == st.NOT_SIGNIFICANT, starts


def test_fixup_and_nf_close_on_identity_with_length(verdicts, lengths):
    """"Fixup and NF-ResNet ... start further behind identity with BN and close on it with length: at the longest
    length NF-ResNet's claim of matching a batch-normalised net holds, and Fixup's is no longer contradicted"."""
    nf, fixup = claim(verdicts, "NF-ResNet is not worse"), claim(verdicts, "Fixup without BN is not worse")
    for c in (nf, fixup):
        effects = [c[v]["effect"] for v in lengths]
        assert effects[0] < 0 and effects == sorted(effects), effects
        assert c[lengths[0]]["verdict"] != st.HOLDS
    assert nf[lengths[-1]]["verdict"] == st.HOLDS
    assert fixup[lengths[0]]["verdict"] == st.CONTRADICTED
    assert fixup[lengths[-1]]["verdict"] != st.CONTRADICTED


def test_every_row_but_the_dropout_shortcut_improves_with_length(ref, lengths):
    """"as every row improves": the test error of each row falls from one length to the next, but for the
    dropout shortcut, which stays at chance."""
    rows = set(lc.axis_of(ref.experiment(NAME))["rows"].values()) - {"dropout-0.5"}
    for row in rows:
        errors = [mean(ref, row, v) for v in lengths]
        assert errors == sorted(errors, reverse=True), (row, errors)
    assert all(mean(ref, "dropout-0.5", v) > 85 for v in lengths)


def test_the_gates_of_b_minus_6_open_further_with_length_and_stay_far_below_a_half(ref, lengths):
    """"at the longer lengths they level off higher, but in every stage they stay far below one half, where
    the gates of b = 0 sit throughout"."""
    g = gate_dynamics(ref.history, ref.runs, NAME)

    def last(row, length):
        part = g[g["variant"] == f"{row}@{length}"]
        part = part[part["iteration"] == part["iteration"].max()]
        return dict(zip(part["stage"], part["mean"]))

    for stage in (0, 1, 2):
        opened = [last("exclusive-gate-b-6", v)[stage] for v in lengths]
        assert opened == sorted(opened), (stage, opened)
        assert max(opened) < 0.25, (stage, opened)
    b0 = g[g["variant"].str.startswith("exclusive-gate-b0@")]
    assert b0["mean"].between(0.4, 0.6).all()


def test_exclusive_b_minus_6_never_beats_b0_and_its_deficit_shrinks(verdicts, lengths):
    """"Its deficit against b = 0 shrinks with length and is not significant at any length"."""
    c = claim(verdicts, "exclusive gating: b_g = -6 beats b_g = 0")
    effects = [c[v]["effect"] for v in lengths]
    assert all(e < 0 for e in effects) and effects == sorted(effects), effects
    assert all(c[v]["verdict"] == st.NOT_SIGNIFICANT for v in lengths)


def test_stochastic_depth_narrows_the_gap_and_still_fits_worse(ref, verdicts, lengths):
    """"Stochastic depth's test error falls behind identity's less at each longer length, and its training
    error stays above identity's at every length"; "does not hold at any length tested"."""
    c = claim(verdicts, "stochastic depth is not worse than identity")
    gaps = [mean(ref, "stochastic-depth-bn", v) - mean(ref, "identity-bn", v) for v in lengths]
    assert all(gap > 0 for gap in gaps) and gaps == sorted(gaps, reverse=True), gaps
    for v in lengths:
        assert mean(ref, "stochastic-depth-bn", v, "train") > mean(ref, "identity-bn", v, "train"), v
        assert c[v]["verdict"] != st.HOLDS, v
