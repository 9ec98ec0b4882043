"""Signal propagation (ablation.nets.signal and its commands): hand-made cases whose answers are known, on small nets."""

import math

import pandas as pd
import pytest
import torch

from ablation import signal as signal_cli
from ablation import signal_ladder as ladder_cli
from ablation.nets import signal as S
from ablation.nets.models import build_model
from ablation.reporting import signal_ladder as SL
from ablation.reporting.signal_runs import read_signal, signal_study


def measured(arch, shortcut="identity", order="original", zero=False, batch=16, size=16, seed=0, probe_seed=0, **args):
    torch.manual_seed(seed)
    model = build_model(arch, shortcut, order, 10, 3, 4, "zero-pad", **args)
    if zero:
        S.zero_branches(model)
    x, y = S.gaussian_batch(batch, (3, size, size), 10, seed)
    return S.measure(model, x, y, probe_seed=probe_seed)


def within_stage_factors(recs):
    """||dL/dx_l|| / ||dL/dx_{l+1}|| for consecutive units of one stage (no shape change in between)."""
    return [a["grad_norm"] / b["grad_norm"] for a, b in zip(recs, recs[1:]) if not a["transition"]]


@pytest.mark.parametrize("order", ["original", "full-preact"])
def test_zero_branches_constant_scaling_halves_the_backward_signal_per_unit(order):
    recs = measured("resnet26", "scale", order, zero=True, lam_s=0.5, lam_f=1.0)  # 4 units per stage
    factors = within_stage_factors(recs)
    assert len(factors) == (8 if order == "full-preact" else 9)  # the first pre-activation unit is a transition
    assert all(f == pytest.approx(0.5, rel=1e-5) for f in factors)
    assert all(r["branch_var"] == 0 and r["branch_sq_mean"] == 0 for r in recs)  # F = 0 everywhere


@pytest.mark.parametrize("order", ["original", "full-preact"])
def test_zero_branches_identity_keeps_the_backward_signal_constant(order):
    recs = measured("resnet26", "identity", order, zero=True)
    assert all(f == pytest.approx(1.0, rel=1e-5) for f in within_stage_factors(recs))
    # and so across the whole net: zero-padding moves the gradient, and ReLU's mask keeps it off the padding
    if order == "original":
        assert recs[0]["grad_norm"] == pytest.approx(recs[-1]["grad_norm"], rel=1e-5)


def test_at_the_standard_init_scaling_does_not_shrink_the_backward_signal():
    """With BN after every conv, the branches carry the gradient and lam^L is hidden (the figures' finding)."""
    scaled = within_stage_factors(measured("resnet26", "scale", lam_s=0.5, lam_f=1.0))
    assert min(scaled) > 0.5 * 1.5


def test_a_zero_branch_unit_passes_the_statistics_of_its_input():
    for order in ("original", "full-preact"):
        recs = measured("resnet26", "identity", order, zero=True)
        for prev, r in zip(recs, recs[1:]):
            if not r["transition"]:  # x_{l+1} = f(x_l + 0) = x_l: relu of a relu output, or nothing at all
                assert r["out_var"] == pytest.approx(prev["out_var"], rel=1e-6)
                assert r["out_sq_mean"] == pytest.approx(prev["out_sq_mean"], rel=1e-6)


def test_forward_variance_of_an_identity_preactivation_net_grows_about_linearly():
    """Brock et al. 2021, Sec. 3: x_{l+1} = x_l + F(x_l) with BN-ReLU-conv branches adds about one unit
    of variance per unit (each branch starts from a normalised input), so Var(x_l) ~ Var(x_0) + l."""
    torch.manual_seed(0)
    model = build_model("resnet110", "identity", "full-preact", 10, 3, 8)
    x, y = S.gaussian_batch(16, (3, 16, 16), 10, 0)
    recs = S.measure(model, x, y)
    stage = [r for r in recs if r["stage"] == 0]  # 18 units of one shape: no transition in between
    var = [r["out_var"] for r in stage]
    l = list(range(1, len(var) + 1))
    slope = _fit(l, var)
    residual = max(abs(v - (var[0] + slope * (i - 1))) for i, v in zip(l, var))
    assert 0.4 < slope < 2.5  # about one per unit (He-normal fan-out init: a little less than 1 in expectation)
    assert residual < 0.25 * (var[-1] - var[0])  # a line, not a curve bending away
    assert var[-1] > 8 * var[0]  # grows by an order of magnitude over 18 units
    assert all(b > a for a, b in zip(var, var[1:]))


def _fit(x, y):
    mx, my = sum(x) / len(x), sum(y) / len(y)
    return sum((a - mx) * (b - my) for a, b in zip(x, y)) / sum((a - mx) ** 2 for a in x)


@pytest.mark.parametrize("row", ["skipinit-nobn", "fixup-nobn"])
def test_the_backward_without_the_head_sees_through_a_zero_classifier(row):
    """A classifier at zero makes dL/dx_l = 0 at every unit; dP/dx_l from a random direction at the last unit does
    not depend on it, and through units that start as the identity it passes unchanged within a stage."""
    unit = dict(ladder_cli.experiment_rows("modern")[1])[row]
    torch.manual_seed(0)
    model = build_model("resnet14", unit["shortcut"], unit.get("order", "original"), 10, 3, 4,
                        unit.get("match", "zero-pad"), norm=unit["norm"], **unit.get("shortcut_args", {}))
    x, y = S.gaussian_batch(8, (3, 16, 16), 10, 0)
    recs = S.measure(model, x, y)
    assert all(r["grad_norm"] == 0 for r in recs)
    assert all(0 < r["probe_grad_norm"] < math.inf for r in recs)
    factors = S.backward_factors(recs, "probe_grad_norm")
    assert len(factors) >= len(recs) - 3 and all(f == pytest.approx(1.0, rel=1e-5) for f in factors)
    assert math.isnan(S.backward_summary(recs)[0]) and S.backward_summary(recs, "probe_grad_norm")[1] > 0


@pytest.mark.parametrize("lam", [0.5, 1.0])
def test_with_zero_branches_both_backward_signals_scale_by_lam_per_unit(lam):
    """F = 0: dx_{l+1}/dx_l = lam exactly within a stage, whichever gradient comes down (He 2016 eq. 7)."""
    recs = measured("resnet26", "scale", zero=True, lam_s=lam, lam_f=1.0)
    for column in ("grad_norm", "probe_grad_norm"):
        assert all(f == pytest.approx(lam, rel=1e-5) for f in S.backward_factors(recs, column))


def test_the_random_direction_is_fixed_by_its_seed():
    a, b, c = (measured("resnet8", probe_seed=s) for s in (0, 0, 1))
    assert [r["probe_grad_norm"] for r in a] == [r["probe_grad_norm"] for r in b]
    assert [r["probe_grad_norm"] for r in a] != [r["probe_grad_norm"] for r in c]
    assert [r["grad_norm"] for r in a] == [r["grad_norm"] for r in c]  # the loss's gradient does not use it


def test_a_table_written_before_the_backward_without_the_head_reads_and_is_measured_again(tmp_path):
    rows = [("original", {"shortcut": "identity"})]
    table = SL.run_ladder(tmp_path, rows, ["resnet20"], batch=4, image=(3, 8, 8), quiet=True, inits=("standard",))
    table.drop(columns=list(S.ADDED_FIELDS)).to_csv(tmp_path / SL.LADDER_CSV, index=False)
    old = SL.read_ladder(tmp_path / SL.LADDER_CSV)
    assert old is not None and old["probe_grad_norm"].isna().all()
    assert SL.ladder_summary(old)["probe_factor_per_unit"].isna().all()
    again = SL.run_ladder(tmp_path, rows, ["resnet20"], batch=4, image=(3, 8, 8), quiet=True, inits=("standard",))
    assert len(again) == len(table) and again["probe_grad_norm"].notna().all()


def test_measure_leaves_the_weights_alone_and_gives_no_parameter_gradient():
    torch.manual_seed(0)
    model = build_model("resnet8", "scale", num_classes=10, width=4, lam_s=0.5)
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "num_batches" not in k}
    x, y = S.gaussian_batch(8, (3, 16, 16), 10, 0)
    recs = S.measure(model, x, y)
    assert len(recs) == 3 and all(math.isfinite(r["grad_norm"]) and r["grad_norm"] > 0 for r in recs)
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())
    assert all(p.grad is None for p in model.parameters())
    assert model.training  # the mode is restored
    assert not any(u._forward_hooks or u._forward_pre_hooks or u.tap._forward_hooks for u in model.units())


def test_the_tap_sees_the_branch_as_it_enters_the_sum():
    torch.manual_seed(0)
    model = build_model("resnet8", "identity", num_classes=10, width=4).eval()
    unit = model.units()[0]
    seen = {}
    # cloned inside the hook: f (an in-place ReLU here) works on y afterwards
    unit.tap.register_forward_hook(lambda m, args, out: seen.update(fx=args[1].clone(), y=out.clone()))
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        out = unit(x)
        assert torch.equal(seen["fx"], unit.residual(x))
        assert torch.equal(seen["y"], seen["fx"] + x)
        assert torch.equal(out, torch.relu(seen["y"]))


def test_channel_stats_by_hand():
    t = torch.zeros(2, 2, 1, 2)
    t[:, 0] = torch.tensor([[1.0, 3.0]])  # channel 0: mean 2, variance 1
    t[:, 1] = torch.tensor([[-1.0, -1.0]])  # channel 1: mean -1, variance 0
    sq_mean, var = S.channel_stats(t)
    assert sq_mean == pytest.approx((4 + 1) / 2)
    assert var == pytest.approx(0.5)


# --- command lines ----------------------------------------------------------------------------


def test_signal_command_prints_a_table_and_writes_csv_and_plot(tmp_path, capsys):
    csv, png = tmp_path / "s.csv", tmp_path / "s.png"
    code = signal_cli.main(["resnet20", "--shortcut", "scale", "--arg", "lam_s=0.5", "--zero-branches", "--width", "4",
                   "--batch", "8", "--image", "3", "16", "16", "--csv", str(csv), "--plot", str(png)])
    out = capsys.readouterr().out
    assert code == 0
    assert "transitions left out (geometric mean of 6): 0.5 (min 0.5, max 0.5)" in out
    table = pd.read_csv(csv)
    assert list(table.columns) == list(S.UNIT_SIGNAL_FIELDS) and len(table) == 9
    assert png.stat().st_size > 1000


@pytest.mark.parametrize("argv, message", [
    (["resnet21"], "not 6n+2"),
    (["resnet20", "--shortcut", "scal"], "did you mean 'scale'"),
    (["resnet20", "--shortcut", "scale", "--arg", "lam=0.5"], "no parameter 'lam'"),
    (["resnet20", "--arg", "nokey"], "expected --arg KEY=VALUE"),
    (["resnet20", "--batch", "1"], "--batch needs at least 2"),
    (["resnet20", "--plot", "x.pdf"], "ending in .png or .svg"),
    (["resnet20", "--order", "preact"], "unknown order"),
    (["resnet20", "--bogus"], "unrecognized arguments"),
])
def test_signal_command_refuses_bad_input_in_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) if "--bogus" in argv else _nothing():
        code = signal_cli.main(argv)
        assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("argv, message", [
    (["out", "--archs", "resnet21"], "unknown arch of the ladder"),
    (["out", "--plots-only"], "no signal_ladder.csv with"),
    (["out", "--batch", "1"], "--batch needs >= 2"),
    (["out", "--experiment", "table9"], "unknown experiment"),
    (["out", "--inits", "zero"], "unknown init"),
    (["out", "--inits", ","], "no init named"),
])
def test_ladder_command_refuses_bad_input_in_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert ladder_cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out" / SL.LADDER_CSV).exists()


def test_ladder_measures_each_net_once(tmp_path):
    rows = [("original", {"shortcut": "identity"}),
            ("scale-0.5-1", {"shortcut": "scale", "shortcut_args": {"lam_s": 0.5, "lam_f": 1.0}})]
    table = SL.run_ladder(tmp_path, rows, ["resnet20"], batch=4, image=(3, 8, 8), quiet=True)
    assert len(table) == 2 * 2 * 9  # two rows, two inits, nine units
    summary = SL.ladder_summary(table).set_index(["variant", "init"])
    assert summary.loc[("scale-0.5-1", "zero-branches"), "backward_factor_per_unit"] == pytest.approx(0.5, rel=1e-5)
    assert summary.loc[("original", "zero-branches"), "backward_factor_per_unit"] == pytest.approx(1.0, rel=1e-5)
    stamp = (tmp_path / SL.LADDER_CSV).stat().st_mtime_ns
    again = SL.run_ladder(tmp_path, rows, ["resnet20"], batch=4, image=(3, 8, 8), quiet=True)
    assert (tmp_path / SL.LADDER_CSV).stat().st_mtime_ns == stamp and len(again) == len(table)
    other = SL.run_ladder(tmp_path, rows, ["resnet20"], batch=6, image=(3, 8, 8), quiet=True)  # another batch: anew
    assert len(other) == len(table) and set(other["batch"]) == {6}


def test_ladder_runs_each_row_on_its_own_unit(tmp_path):
    rows = [("rezero-nobn", {"shortcut": "rezero", "norm": "none"}),
            ("nf-ws", {"shortcut": "nf", "order": "relu-preact", "norm": "ws", "match": "projection"}),
            ("identity-bn", {"shortcut": "identity"})]
    table = SL.run_ladder(tmp_path, rows, ["resnet20"], batch=4, image=(3, 8, 8), quiet=True)
    runs = table.drop_duplicates(["variant", "init"]).set_index(["variant", "init"])
    # zero_branches sets a BN's gamma: only the row with BN in its branches is measured that way too
    assert sorted(runs.index) == [("identity-bn", "standard"), ("identity-bn", "zero-branches"),
                                  ("nf-ws", "standard"), ("rezero-nobn", "standard")]
    assert runs.loc[("nf-ws", "standard"), ["family", "order", "match", "norm"]].tolist() == \
        ["original", "relu-preact", "projection", "ws"]
    assert runs.loc[("rezero-nobn", "standard"), ["order", "match", "norm"]].tolist() == ["original", "zero-pad", "none"]
    summary = SL.ladder_summary(table).set_index(["variant", "init"])
    # alpha = 0: every unit passes dL/dx on unchanged within a stage; He's unit without BN does not
    assert summary.loc[("rezero-nobn", "standard"), "backward_factor_per_unit"] == pytest.approx(1.0, rel=1e-6)
    assert summary.loc[("identity-bn", "standard"), "backward_factor_per_unit"] != pytest.approx(1.0, rel=1e-3)


def test_experiment_rows_read_what_each_row_sets_of_its_unit():
    title, rows = ladder_cli.experiment_rows("modern")
    units = dict(rows)
    assert units["skipinit-nobn"] == {"shortcut": "skipinit", "shortcut_args": {"first_preact": "branch"},
                                      "order": "relu-preact", "norm": "none", "match": "projection"}
    assert units["stochastic-depth-bn"] == {"shortcut": "stochastic-depth", "shortcut_args": {"p_last": 0.5}}
    assert dict(ladder_cli.experiment_rows()[1])["scale-0.5-1"]["shortcut"] == "scale"


# --- the report's hook ------------------------------------------------------------------------


def test_signal_of_trained_runs_is_measured_once_and_kept(trained, monkeypatch):
    results, runs = trained
    runs = runs.assign(arch="resnet8")
    table, notes = signal_study(results, runs, "cpu")
    assert notes == {} and set(table["when"]) == {"init", "end"} and len(table) == 2 * 3
    init, end = (table[table["when"] == w]["grad_norm"].to_numpy() for w in ("init", "end"))
    assert not (init == end).all()  # the steps of training moved the weights
    calls = []
    monkeypatch.setattr("ablation.reporting.signal_runs.run_signal", lambda *a, **k: calls.append(a) or [])
    again, _ = signal_study(results, runs, "cpu")
    assert calls == [] and len(again) == len(table)  # cached in signal.csv
    assert read_signal(results) is not None
    from ablation.reporting.signal_plots import plot_runs

    paths = plot_runs(runs, again, "e", results.plots)
    assert any(p.endswith("signal_e.png") for p in paths)


def test_the_rescaled_backward_signal_is_the_true_gradient_norm():
    torch.manual_seed(0)
    model = build_model("resnet20", "scale", num_classes=10, width=4, lam_s=0.5)
    x, y = S.gaussian_batch(8, (3, 16, 16), 10, 0)
    recs = S.measure(model, x, y)
    inputs = []
    handles = [u.register_forward_pre_hook(lambda m, a: inputs.append(a[0]) or a[0].retain_grad())
               for u in model.units()]
    torch.nn.functional.cross_entropy(model.train()(x), y).backward()
    for h in handles:
        h.remove()
    direct = [float(t.grad.norm()) for t in inputs]
    assert [r["grad_norm"] for r in recs] == pytest.approx(direct, rel=1e-4)
    assert direct[0] > 5 * direct[-1]  # a case where the signal changes by more than rounding


def test_signal_of_a_run_measured_before_the_backward_without_the_head_is_measured_again(trained):
    results, runs = trained
    runs = runs.assign(arch="resnet8")
    table, _ = signal_study(results, runs, "cpu")
    table.drop(columns=list(S.ADDED_FIELDS)).to_csv(results.signal_csv, index=False)
    assert read_signal(results)["probe_grad_norm"].isna().all()  # an older signal.csv still reads
    again, notes = signal_study(results, runs, "cpu")  # its run's weights are there: measured again
    assert notes == {} and again["probe_grad_norm"].notna().all()
    assert read_signal(results)["probe_grad_norm"].notna().all()
