"""The designs after 2016 (ablation/nets/modern.py, ablation/nets/norms.py): each one's defining property on a tiny net."""

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from ablation import ConfigError, build_model
from ablation.nets.archs import arch_spec
from ablation.nets import signal as sig
from ablation.nets.modern import (NF_GAMMA_RELU, Multiply, ScalarBias, ScalarScale, ScaledReLU, convs, layerscale_eps,
                                  survival_probability, unit_terms)
from ablation.nets.norms import WSConv2d, channel_stats
from ablation.nets.registry import load_plugin
from ablation.reporting import claim_tests
from ablation.reporting import stats as st
from ablation.reporting.init_identity import net_residual, unit_residuals
from ablation.study import expansion
from ablation.study import catalogue
from ablation.study import experiments as ex
from ablation.training import config as schema
from ablation.training.data import load_for
from ablation.training.loop import train
from ablation.training.step import build

PLUGIN = Path(__file__).parent / "plugins" / "tanh_rezero.py"

UNIT_KEYS = ("shortcut", "shortcut_args", "order", "match", "norm")


def _row(name):
    """What a row of ablation/experiments/modern.toml sets of its net, as build_model's keywords."""
    cfg = catalogue.load_experiments()["modern"].variant(name).config
    unit = {k: cfg[k] for k in UNIT_KEYS if k in cfg}
    return {**{k: v for k, v in unit.items() if k != "shortcut_args"}, **unit.get("shortcut_args", {})}


# each design as its row in ablation/experiments/modern.toml runs it (besides the net's size)
DESIGNS = {"rezero-bn": _row("rezero-bn"), "rezero-nobn": _row("rezero-nobn"), "skipinit": _row("skipinit-nobn"),
           "fixup": _row("fixup-nobn"), "stochastic-depth": _row("stochastic-depth-bn"),
           "layerscale": _row("layerscale-bn"), "nf": _row("nf-ws")}
IDENTITY_AT_INIT = ("rezero-bn", "rezero-nobn", "skipinit", "fixup", "nf")
FAMILIES = [("resnet8", 4), ("resnet14", 4), ("resnet11b", 2), ("resnet18", 2)]


def _net(design, arch="resnet14", width=4, seed=0, **extra):
    torch.manual_seed(seed)
    return build_model(arch, width=width, **{**DESIGNS[design], **extra})


def _changes_shape(unit):
    return unit.stride != 1 or unit.in_channels != unit.out_channels


# --- identity at initialisation ----------------------------------------------------------------


@pytest.mark.parametrize("design", IDENTITY_AT_INIT)
@pytest.mark.parametrize("arch", ["resnet14", "resnet11b"])
def test_the_designs_that_start_as_the_identity_are_it_per_unit_at_init(design, arch):
    net = _net(design, arch).train()
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        h = net.stem(x)
        checked = 0
        for unit in net.units():
            terms = unit_terms(unit, h)
            assert torch.equal(terms["sum"], terms["shortcut"]), f"unit {unit.index}: F contributes at init"
            out = unit(h)
            if not _changes_shape(unit) and len(unit.pre) == 0:
                assert torch.equal(out, h), f"unit {unit.index} is not x -> x"  # exactly, not nearly
                checked += 1
            h = out
    assert checked >= len(net.units()) - 2 * len(arch_spec(arch).units)  # all but the transition units
    assert max(unit_residuals(net, x)) == 0.0


@pytest.mark.parametrize("design,extra", [("stochastic-depth", {}), ("layerscale", {}), ("nf", {"skip_gain": 1.0})])
def test_the_other_designs_and_he_s_unit_are_not_the_identity_at_init(design, extra):
    x = torch.randn(4, 3, 16, 16)
    for net in (_net(design, **extra), build_model("resnet14", width=4)):
        assert max(unit_residuals(net.train(), x)) > 1e-3


def test_net_residual_of_a_run_config_tells_the_designs_apart():
    cfg = {**schema.DEFAULTS, "dataset": "synthetic", "arch": "resnet8", "width": 4, "seed": 3}
    assert net_residual({**cfg, "shortcut": "rezero", "norm": "none"}) == 0.0
    assert net_residual({**cfg, "shortcut": "identity"}) > 1e-3


# --- each design as its authors' code computes it (each test fails on the net its row ran before) -------------


@pytest.mark.parametrize("row", ["rezero-bn", "rezero-nobn"])
def test_a_rezero_unit_at_init_returns_exactly_its_input_with_nothing_after_the_sum(row):
    """rezero_resnet_cifar.py line 43: y = resweight * relu(F) + x, resweight = 0, nothing after the sum; so a unit
    returns x itself, its negative values too (a ReLU after the sum would zero them)."""
    net = _net(row, "resnet14").train()
    for unit in net.units():
        assert len(unit.post) == 0, f"unit {unit.index}: {unit.post} after the sum"
        x = torch.randn(4, unit.in_channels, 8, 8)
        assert (x < 0).any()
        with torch.no_grad():
            out = unit(x)
        if _changes_shape(unit):  # the zero-pad shortcut: x subsampled, zero channels added
            want = nn.functional.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 0, unit.out_channels - unit.in_channels))
            assert torch.equal(out, want)
        else:
            assert torch.equal(out, x), f"unit {unit.index} is not x -> x"


@pytest.mark.parametrize("row", ["skipinit", "nf"])
def test_the_first_unit_of_skipinit_and_nf_has_x_itself_as_its_shortcut(row):
    """nfnets' NFResBlock (skipinit_resnet.py lines 164-167, nf_resnet.py lines 181-184): shortcut = x unless the
    block changes shape; the first unit of a CIFAR net keeps it, so its shortcut is the raw x, not relu(x)."""
    net = _net(row, "resnet14").train()
    first = net.units()[0]
    assert not _changes_shape(first) and len(first.pre) == 0
    with torch.no_grad():
        h = net.stem(torch.randn(4, 3, 16, 16))
        assert (h < 0).any()
        assert torch.equal(unit_terms(first, h)["shortcut"], h)
    for unit in net.units()[1:]:  # every other unit as He 2016's pre-activation net: f^ shared where it projects
        assert (len(unit.pre) > 0) == _changes_shape(unit)


def test_nf_forward_variance_follows_beta_and_is_reset_at_every_transition():
    """nf_resnet.py: beta_l = 1 / expected_std, expected_std^2 reset to 1 after each stage's first block and grown
    by alpha^2 per block (lines 62-87), the shortcut x itself where the shape holds (lines 181-184).

    With skip_gain = 1 (the growth of the paper's analysis; at its default 0 nothing grows) the j-th unit of a
    stage (j = 0 at its first) outputs Var = 1 + (j + 1) alpha^2, whatever the stage before held: the variance is
    reset at every transition. The formula assumes Gaussian inputs on unbounded images; zero padding at the
    borders and the correlation between the inputs that a zero-mean (WS) filter sums take a few percent off each
    convolution (13% at most over 6 seeds of this net at 64x64), which a 25% tolerance holds. A stream carried
    across a transition would add (n - 1) alpha^2 = 0.5 there (40% of 1.25), and a first unit whose shortcut
    carries relu(x) carries its mean through the first stage (squared channel mean 0.45, Var 2.8 after the
    first transition on the net this row ran before).
    """
    alpha = 0.5
    torch.manual_seed(0)
    net = build_model("resnet20", width=16, **{**DESIGNS["nf"], "skip_gain": 1.0, "alpha": alpha})
    x, y = sig.gaussian_batch(16, (3, 64, 64), 10, 0)
    recs = sig.measure(net, x, y)
    j = 0
    for prev, r in zip([None, *recs], recs):
        j = 0 if prev is None or r["shape_change"] else j + 1
        want = 1 + (j + 1) * alpha ** 2
        assert r["out_var"] == pytest.approx(want, rel=0.25), (r["unit"], r["out_var"], want)
        assert r["out_sq_mean"] < 0.05, (r["unit"], r["out_sq_mean"])
        if prev is not None and r["shape_change"]:
            assert r["out_var"] < prev["out_var"] - (len(net.stages[0]) - 1) * alpha ** 2 / 2


def test_fixup_transition_shortcut_takes_x_plus_the_branch_first_bias():
    """fixup_resnet_cifar.py line 41: identity = downsample(x + self.bias1a), zero channels appended; x itself
    where the shape holds (line 32)."""
    net = _net("fixup", "resnet14")
    for unit in net.units():
        first_bias = unit.residual[0]
        assert isinstance(first_bias, ScalarBias)
        with torch.no_grad():
            first_bias.bias.fill_(0.7)
            x = torch.randn(2, unit.in_channels, 8, 8)
            h = unit_terms(unit, x)["shortcut"]
        if _changes_shape(unit):
            extra = unit.out_channels - unit.in_channels
            assert torch.equal(h, nn.functional.pad((x + 0.7)[:, :, ::2, ::2], (0, 0, 0, 0, 0, extra)))
        else:
            assert torch.equal(h, x)
    plain = build_model("resnet14", width=4, **{**DESIGNS["fixup"], "shortcut_bias": False})
    assert all(not u.shortcut._input_bias for u in plain.units())


def test_fixup_scalars_sit_in_their_own_parameter_group_at_a_tenth_of_the_rate_through_every_drop(tmp_path):
    """cifar_train.py lines 113-122: every parameter named 'bias' or 'scale' (the scalars and the classifier's
    bias) at base_lr / 10, the others at base_lr; adjust_learning_rate (lines 197-219) drops every group alike."""
    row = catalogue.load_experiments()["modern"].variant("fixup-nobn").config
    cfg = schema.validate_config({"dataset": "synthetic", "data_dir": str(tmp_path / "data"), "arch": "resnet8",
                                  "width": 4, "batch_size": 32, "steps": 4, "milestones": [2], "evals": 1, "lr": 0.1,
                                  "quiet": True, "threads": 1,
                                  **{k: row[k] for k in (*UNIT_KEYS, "lr_groups") if k in row}})
    torch.manual_seed(0)
    model, _, opt = build(cfg, load_for(cfg), torch.device("cpu"))
    assert len(opt.param_groups) == 2, "the scalars share the rate of the weights"
    rest, scalars = opt.param_groups
    want = {id(p) for m in model.modules() if isinstance(m, (ScalarBias, ScalarScale)) for p in m.parameters()}
    assert {id(p) for p in scalars["params"]} == want | {id(model.fc.bias)}
    assert {id(p) for p in rest["params"]} == {id(p) for p in model.parameters()} - want - {id(model.fc.bias)}
    assert (rest["lr"], scalars["lr"]) == pytest.approx((0.1, 0.01))
    train(cfg, tmp_path / "run")  # two steps at 0.1, two after the drop at 2
    ck = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert [g["lr"] for g in ck["optimizer"]["param_groups"]] == pytest.approx([0.01, 0.001])


def test_lr_groups_are_checked_against_the_design_and_stay_out_of_the_hash_when_empty():
    base = {"dataset": "synthetic", "arch": "resnet8"}
    cfg = schema.validate_config(base)
    assert cfg["lr_groups"] == {} and "lr_groups" not in schema.identity(cfg)
    assert expansion.config_hash(cfg) == expansion.config_hash({k: v for k, v in cfg.items() if k != "lr_groups"})
    with pytest.raises(ConfigError, match="shortcut 'identity' names no parameter group 'scalars' .its groups: none"):
        schema.validate_config({**base, "lr_groups": {"scalars": 0.1}})
    with pytest.raises(ConfigError, match="names no parameter group 'biases' .its groups: scalars"):
        schema.validate_config({**base, "shortcut": "fixup", "norm": "none", "lr_groups": {"biases": 0.1}})
    for bad in (0, -1.0, "x", True, math.inf):
        with pytest.raises(ConfigError, match="multiplier of 'scalars' must be a number > 0"):
            schema.validate_config({**base, "shortcut": "fixup", "norm": "none", "lr_groups": {"scalars": bad}})


# --- Fixup's init rules ------------------------------------------------------------------------


@pytest.mark.parametrize("arch,m", [("resnet14", 2), ("resnet11b", 3)])
def test_fixup_scales_all_but_the_last_branch_conv_by_L_power_and_zeroes_the_last(arch, m):
    fixup = _net("fixup", arch, seed=5)
    torch.manual_seed(5)
    he = build_model(arch, "identity", width=4, norm="none")  # the same draws before Fixup's rules
    L = len(fixup.units())
    factor = L ** (-1.0 / (2 * m - 2))
    for uf, uh in zip(fixup.units(), he.units()):
        cf, ch = convs(uf.residual), convs(uh.residual)
        assert len(cf) == m
        for a, b in zip(cf[:-1], ch[:-1]):
            torch.testing.assert_close(a.weight, b.weight * factor)
        assert not cf[-1].weight.any()
        # a scalar bias before each conv and each activation; a multiplier then a bias at the end
        kinds = [type(mod).__name__ for mod in uf.residual]
        assert kinds[-2:] == ["ScalarScale", "ScalarBias"]
        for i, k in enumerate(kinds[:-2]):
            if k in ("Conv2d", "ReLU", "SubsampledConv2d"):
                assert kinds[i - 1] == "ScalarBias", kinds
    assert not fixup.fc.weight.any() and not fixup.fc.bias.any()
    assert not any(isinstance(mod, nn.BatchNorm2d) for mod in fixup.modules())


# --- stochastic depth --------------------------------------------------------------------------


def test_stochastic_depth_survival_follows_the_linear_rule_over_many_draws():
    net = _net("stochastic-depth", "resnet14").train()
    units = net.units()
    L = len(units)
    assert [u.shortcut.survival for u in units] == pytest.approx([1 - l / L * 0.5 for l in range(1, L + 1)])
    assert units[-1].shortcut.survival == pytest.approx(0.5)
    torch.manual_seed(0)
    draws = 4000
    for u in units:
        p = u.shortcut.survival
        kept = sum(u.shortcut.computes_branch() for _ in range(draws)) / draws
        assert abs(kept - p) < 4 * math.sqrt(p * (1 - p) / draws) + 1e-9, (u.index, kept, p)


def test_stochastic_depth_skips_the_closed_branch_and_is_deterministic_at_eval():
    net = _net("stochastic-depth", "resnet8", p_last=0.2)
    last = net.units()[-1]
    calls = []
    last.residual.register_forward_hook(lambda *a: calls.append(1))
    x = torch.randn(3, 3, 16, 16)
    torch.manual_seed(1)
    net.train()
    for _ in range(200):
        net(x)
    assert 0 < len(calls) < 200  # p_L = 0.2: the branch runs on a fifth of the steps, and only then
    net.eval()
    with torch.no_grad():
        a, b = net(x), net(x)
        assert torch.equal(a, b)
        h = net.stages[:-1](net.stem(x))
        h = net.stages[-1][:-1](h)
        t = unit_terms(last, h)
        torch.testing.assert_close(t["sum"], t["shortcut"] + 0.2 * t["branch"])  # x + p_L F(x) at test
    assert survival_probability(3, 3, 0.5) == 0.5 and survival_probability(0, 3, 0.5) == 1.0


# --- LayerScale --------------------------------------------------------------------------------


def test_layerscale_lambda_is_one_learnable_value_per_channel_at_eps():
    net = _net("layerscale", "resnet14")
    for u in net.units():
        lam = u.shortcut.lam
        assert isinstance(lam, nn.Parameter) and lam.shape == (u.out_channels, 1, 1)
        assert torch.all(lam == 0.1)  # 6 units: the paper's epsilon up to depth 18
    deep = build_model("resnet110", "layerscale", width=2)  # 54 units
    assert torch.all(deep.units()[0].shortcut.lam == 1e-6)
    given = build_model("resnet8", "layerscale", width=4, eps=1e-3)
    assert torch.all(given.units()[1].shortcut.lam == 1e-3)
    assert (layerscale_eps(18), layerscale_eps(19), layerscale_eps(24), layerscale_eps(25)) == (0.1, 1e-5, 1e-5, 1e-6)
    with pytest.raises(ConfigError, match="eps must be"):
        build_model("resnet8", "layerscale", eps=-1.0)


# --- NF-ResNets --------------------------------------------------------------------------------


def test_scaled_weight_standardisation_gives_zero_mean_unit_variance_per_output_channel():
    torch.manual_seed(0)
    conv = WSConv2d(6, 5, 3, padding=1)
    with torch.no_grad():
        conv.weight.mul_(7.0).add_(torch.randn(5, 1, 1, 1) * 3)  # any scale and offset per channel
    mean, var = channel_stats(conv.standardized_weight())
    torch.testing.assert_close(mean, torch.zeros(5), atol=1e-6, rtol=0)
    torch.testing.assert_close(var, torch.ones(5), atol=1e-4, rtol=0)
    with torch.no_grad():
        conv.gain.fill_(2.0)
    assert channel_stats(conv.standardized_weight())[1] == pytest.approx(torch.full((5,), 4.0), abs=1e-3)
    raw_mean, raw_var = channel_stats(conv.weight)
    assert raw_mean.abs().max() > 0.1 and (raw_var - 1).abs().max() > 0.1  # the raw weights are neither


def test_nf_net_has_no_bn_ws_convs_scaled_relus_and_betas_of_the_expected_std():
    net = _net("nf", "resnet14")
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.ReLU)) for m in net.modules())
    conv_layers = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert conv_layers and all(isinstance(m, WSConv2d) for m in conv_layers)  # projections too
    assert all(m.gamma == pytest.approx(NF_GAMMA_RELU) for m in net.modules() if isinstance(m, ScaledReLU))
    assert NF_GAMMA_RELU == pytest.approx(1.7139588594436646)  # nfnets/base.py
    alpha, var, got, want = 0.2, 1.0, [], []
    for stage in net.stages:
        for j, u in enumerate(stage):
            mults = [m for m in [*u.pre, *u.residual] if isinstance(m, Multiply)]
            assert len(mults) == 1
            got.append(mults[0].c)
            want.append(1 / math.sqrt(var))
            var = (1.0 if j == 0 else var) + alpha ** 2  # nf_resnet.py lines 84-87: reset after a stage's first
    assert got == pytest.approx(want)
    assert got[1] == pytest.approx(1 / math.sqrt(1 + alpha ** 2)) and got[2] == pytest.approx(1 / math.sqrt(1 + 2 * alpha ** 2))
    assert net.fc.weight.std().item() == pytest.approx(0.01, rel=0.3) and not net.fc.bias.any()


def test_nf_units_keep_the_residual_stream_variance_near_one_plus_l_alpha_squared():
    torch.manual_seed(0)
    net = build_model("resnet20", "nf", "relu-preact", width=32, norm="ws", match="projection", skip_gain=1.0).eval()
    with torch.no_grad():
        h = net.stem(torch.randn(64, 3, 16, 16))
        h = h / h.std()  # the analysis assumes a unit-variance input to the first unit
        variances = []
        for u in net.stages[0]:
            h = u(h)
            variances.append(h.var().item())
    want = [1 + (k + 1) * 0.2 ** 2 for k in range(len(variances))]
    assert variances == pytest.approx(want, rel=0.25)


@pytest.mark.parametrize("norm", ["none", "ws"])
def test_norm_removes_every_batchnorm(norm):
    for order in ("original", "full-preact"):
        net = build_model("resnet11b", "projection", order, width=2, norm=norm)
        assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in build_model("resnet8", width=2).modules())


# --- every design at every transition ------------------------------------------------------------


@pytest.mark.parametrize("arch,width", FAMILIES)
@pytest.mark.parametrize("design", list(DESIGNS))
@pytest.mark.parametrize("match", ["zero-pad", "projection"])
def test_every_design_builds_and_backprops_with_matching_shapes_at_every_transition(design, arch, width, match):
    net = _net(design, arch, width, match=match)
    seen = []
    handles = [u.register_forward_hook(lambda mod, args, out: seen.append((mod, args[0].shape, out.shape)))
               for u in net.units()]
    x = torch.randn(2, 3, 32, 32)
    for mode in (True, False):
        seen.clear()
        out = net.train(mode)(x)
        assert out.shape == (2, 10) and torch.isfinite(out).all()
        transitions = 0
        for unit, xin, y in seen:
            n, c, hgt, wid = xin
            assert y == (n, unit.out_channels, (hgt - 1) // unit.stride + 1, (wid - 1) // unit.stride + 1)
            transitions += unit.stride == 2
        assert len(seen) == len(net.units()) and transitions == len(arch_spec(arch).units) - 1
    for h in handles:
        h.remove()
    net.train()(x).logsumexp(1).sum().backward()
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)


# --- config, claims, experiment file ---------------------------------------------------------------


def test_norm_enters_the_hash_only_when_not_bn():
    cfg = schema.validate_config({"dataset": "synthetic", "arch": "resnet8"})
    assert cfg["norm"] == "bn" and "norm" not in schema.identity(cfg)
    assert expansion.config_hash(cfg) == expansion.config_hash({k: v for k, v in cfg.items() if k != "norm"})
    assert expansion.config_hash({**cfg, "norm": "none"}) != expansion.config_hash(cfg)
    with pytest.raises(ConfigError, match="norm='batch' is not one of bn, none, ws"):
        schema.validate_config({"dataset": "synthetic", "norm": "batch"})


def test_not_worse_claim_is_a_one_sided_test_against_a_margin():
    claim = {"says": "a is not worse than b", "not_worse": ["a", "b"], "within": 1.0}
    close = {"test": {"a": [10.1, 10.3, 9.9, 10.2, 10.0], "b": [10.0, 10.2, 10.1, 9.8, 10.1]}}
    worse = {"test": {"a": [14.1, 14.3, 13.9, 14.2, 14.0], "b": [10.0, 10.2, 10.1, 9.8, 10.1]}}
    noisy = {"test": {"a": [8.0, 12.5, 10.0, 14.0, 9.0], "b": [10.0, 10.2, 10.1, 9.8, 10.1]}}
    assert claim_tests.test_claims([claim], close)[0]["verdict"] == st.HOLDS
    assert claim_tests.test_claims([claim], worse)[0]["verdict"] == st.CONTRADICTED
    assert claim_tests.test_claims([claim], noisy)[0]["verdict"] == st.NOT_SIGNIFICANT
    r = claim_tests.test_claims([claim], close)[0]
    assert r["effect"] == pytest.approx(-0.06) and "margin 1" in r["detail"]


def test_identity_at_init_claim_reads_the_built_nets_and_stays_out_of_holm():
    claim = {"says": "identity at init", "identity_at_init": ["a", "b"]}
    lower = {"says": "a lower", "lower": ["a", "b"]}
    samples = {"test": {"a": [1.0, 1.1, 0.9], "b": [5.0, 5.2, 4.9]}, "init": {"a": [0.0, 0.0], "b": [0.0, 0.0]}}
    out = claim_tests.test_claims([claim, lower], samples)
    assert out[0]["verdict"] == st.HOLDS and "p" not in out[0]
    assert out[1]["p_holm"] == out[1]["p"]  # one testable claim in the family
    bad = claim_tests.test_claims([claim], {"init": {"a": [0.0], "b": [0.0, 0.3]}})[0]
    assert bad["verdict"] == st.CONTRADICTED and "b" in bad["detail"]
    assert claim_tests.test_claims([claim], {"init": {"a": [0.0]}})[0]["verdict"] == st.NOT_RUN


def test_modern_experiment_file_rows_claims_and_the_shared_identity_row():
    exps = catalogue.load_experiments()
    e, presets = exps["modern"], catalogue.load_presets()
    assert e.in_all == []  # --variants all (the quick study) is unchanged
    assert {v.name for v in e.variants} == {"identity-bn", "identity-nobn", "rezero-bn", "rezero-nobn",
                                            "skipinit-nobn", "fixup-nobn", "stochastic-depth-bn", "layerscale-bn",
                                            "nf-ws"}
    assert all("arXiv" in v.source or v.name == "identity-nobn" for v in e.variants)
    # every design row names the reference code it was read from; every paper number says what it is over
    assert all("reference" in v.source for v in e.variants if not v.name.startswith(("identity", "stochastic")))
    assert all(v.protocol for v in e.variants if v.paper is not None)
    sd = e.variant("stochastic-depth-bn")
    assert (sd.paper, sd.protocol) == (5.25, "single") and "Stochastic_Depth README.md line 38" in sd.source
    kinds = {next(k for k in ex.CLAIM_KINDS if getattr(c, k)) for c in e.claims}
    assert kinds == {"lower", "not_worse", "identity_at_init"}
    # the BN identity row is He 2016 Table 1's original row: the same run under every preset
    for preset in presets.values():
        a = expansion.expand(exps, [e.variant("identity-bn")], preset, seeds=1)[0]
        b = expansion.expand(exps, [exps["identity_mappings"].variant("original")], preset, seeds=1)[0]
        assert a.hash == b.hash


def test_existing_claims_keep_their_manifest_form():
    meta = catalogue.load_experiments()["identity_mappings"].meta()
    assert all(set(c) == {"says", "metric", "lower", "lowest", "among", "close", "within"} for c in meta["claims"])


# --- a plugin with the same hooks ----------------------------------------------------------------


def test_a_plugin_outside_the_package_defines_a_branch_scaling_design_with_the_hooks():
    load_plugin(str(PLUGIN))
    torch.manual_seed(0)
    net = build_model("resnet14", "tanh-rezero", width=4, c=0.5)  # built through the plugin probe too
    units = net.units()
    assert [u.shortcut.seen_index for u in units] == [(k, len(units)) for k in range(1, len(units) + 1)]
    assert not net.fc.bias.any()
    x = torch.randn(4, 3, 16, 16)
    assert max(unit_residuals(net.train(), x)) == 0.0  # tanh(0) = 0: the identity at init
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    loss = nn.functional.cross_entropy(net(x), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    assert all(u.shortcut.lam.grad.abs() > 0 for u in units)  # d tanh(a)/da = 1 at 0: each a learns
    opt.step()
    assert max(unit_residuals(net, x)) > 0


def test_weights_of_the_nets_the_changed_rows_ran_before_do_not_load_into_the_new_ones():
    """The report rebuilds a finished run's net from its config and loads its weights; a run of an earlier net
    (same config keys, other defaults) must fail to load rather than be read as the new net."""
    before = {"fixup": {"shortcut_bias": False}, "skipinit": {"first_preact": "shared"},
              "nf": {"first_preact": "shared", "skip_gain": 1.0}}
    for design, old in before.items():
        new = _net(design, "resnet14")
        with pytest.raises(RuntimeError):
            new.load_state_dict(_net(design, "resnet14", **old).state_dict())
        new.load_state_dict(_net(design, "resnet14", seed=1).state_dict())  # its own kind loads
