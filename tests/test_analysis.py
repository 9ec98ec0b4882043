"""The lesion study on tiny nets, and the mechanisms read from histories."""

import json

import pandas as pd
import pytest
import torch
from torch import nn

from ablation.reporting import analysis as an
from ablation.core.errors import ConfigError
from ablation.nets.models import build_model
from ablation.core.layout import ResultsDir


def tiny(shortcut="identity", **args):
    torch.manual_seed(0)
    return build_model("resnet8", shortcut, num_classes=4, in_channels=3, width=4, **args).eval()


X = torch.rand(8, 3, 16, 16)


def test_removing_a_unit_of_a_plain_net_changes_its_output():
    model = tiny("plain")
    units = model.units()  # resnet8: one unit per stage; the last two change the shape
    assert [an.removable(u) for u in units] == [True, False, False]
    with torch.no_grad():
        before = model(X)
        with an.lesioned(model, [0]):
            after = model(X)
        again = model(X)
    assert not torch.allclose(before, after, atol=1e-4)
    assert torch.equal(before, again)  # the unit is back after the block
    with pytest.raises(ConfigError, match="cannot be removed"):
        with an.lesioned(model, [1]):
            pass


def test_removing_a_zero_initialised_residual_branch_changes_nothing():
    model = tiny("identity")
    for unit in model.units():  # original order: F ends in BN; a zero BN weight makes F(x) = 0
        last_bn = [m for m in unit.residual if isinstance(m, nn.BatchNorm2d)][-1]
        nn.init.zeros_(last_bn.weight)
    assert all(an.removable(u) and an.carries_x(u) for u in model.units())
    with torch.no_grad():
        before = model(X)
        with an.lesioned(model, range(3)):  # the shape-changing units too: zero-padding carries x
            after = model(X)
    assert torch.allclose(before, after, atol=1e-6)


def test_a_removed_unit_keeps_what_its_shortcut_carries():
    model = tiny("scale", lam_s=0.5, lam_f=1.0)
    unit = model.units()[0]
    x = torch.rand(2, 4, 16, 16)
    with torch.no_grad(), an.lesioned(model, [0]):
        assert torch.allclose(unit(x), torch.relu(0.5 * x))  # f(lam_s x + lam_f 0)
    no_path = tiny("scale", lam_s=0.0, lam_f=1.0)  # the paper's plain row: identity where shapes agree
    assert [an.carries_x(u) for u in no_path.units()] == [False, False, False]
    with torch.no_grad(), an.lesioned(no_path, [0]):
        assert torch.equal(no_path.units()[0](x), x)


def test_lesion_study_of_a_trained_run_is_computed_once_and_kept(trained, monkeypatch):
    results, runs = trained
    table, missing = an.lesion_study(results, runs, device="cpu")
    assert missing == {}
    single = table[table["kind"] == "single"]
    assert list(single["unit"]) == [0, 1, 2] and list(single["shape_change"]) == [False, True, True]
    assert single["test_error"].notna().all()
    rnd = table[table["kind"] == "random"]
    assert sorted(rnd["k"].unique()) == [1, 2, 3] and (rnd["k"] == 3).sum() == 1  # one way to remove all three
    assert all(len(r.split()) == k for r, k in zip(rnd["removed"], rnd["k"]))
    assert results.lesion_csv.is_file()

    def boom(*a, **k):
        raise AssertionError("recomputed")

    monkeypatch.setattr(an, "lesion_run", boom)
    again, _ = an.lesion_study(results, runs, device="cpu")  # same checkpoint: read from lesion.csv
    assert again["test_error"].tolist() == pytest.approx(table["test_error"].tolist(), nan_ok=True)
    ckpt = results.run("abc").checkpoint
    moved = ckpt.with_name("elsewhere.pt")
    ckpt.rename(moved)
    try:  # no weights any more: the stored results stay
        kept, missing = an.lesion_study(results, runs, device="cpu")
        assert len(kept) == len(table) and missing == {}
    finally:
        moved.rename(ckpt)


def test_lesion_study_says_why_it_is_missing(tmp_path):
    runs = pd.DataFrame([{"experiment": "e", "variant": "v", "seed": 0, "status": "ok", "hash": "nope"}])
    table, missing = an.lesion_study(ResultsDir(tmp_path), runs, device="cpu")
    assert table.empty and missing == {"no weights (no run folder, or no checkpoint.pt in it)": 1}


def test_grad_flow_and_gates_from_the_histories():
    runs = pd.DataFrame([{"experiment": "e", "variant": "g", "seed": s, "status": "ok", "hash": f"h{s}"}
                         for s in range(3)])
    history = pd.DataFrame([{"hash": f"h{s}", "iteration": it,
                             "grad_norms": json.dumps([1.0 * (s + 1), 0.1]) if it == 1 else None,
                             "gate_mean": json.dumps({"0": 0.01 * (s + 1), "1": 0.5})}
                            for s in range(3) for it in (1, 10)])
    flow = an.grad_flow(history, runs, "e")
    assert flow[flow["unit"] == 0]["norm"].tolist() == [2.0]  # median of 1, 2, 3 at the one recorded point
    gates = an.gate_dynamics(history, runs, "e")
    first = gates[(gates["stage"] == 0) & (gates["iteration"] == 1)].iloc[0]
    assert (first["mean"], first["min"], first["max"]) == pytest.approx((0.02, 0.01, 0.03))
    assert an.gate_dynamics(history.drop(columns="gate_mean"), runs, "e").empty


def test_unreadable_weights_are_a_note_not_a_crash(trained, tmp_path):
    import shutil

    results, runs = trained
    copy = ResultsDir(tmp_path / "copy")
    shutil.copytree(results.run("abc").path, copy.run("abc").path)
    copy.run("abc").checkpoint.write_text("half")
    table, missing = an.lesion_study(copy, runs, device="cpu")
    assert table.empty and list(missing.values()) == [1]
    assert list(missing)[0].startswith("unreadable weights in checkpoint.pt (")
