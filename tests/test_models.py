import subprocess
import sys

import pytest
import torch
import torchvision

from ablation import ConfigError, build_model, count_flops, count_params, list_shortcuts
from ablation.nets.archs import arch_spec
from ablation.nets.resnet import ORDERS, ResidualUnit

# small members of each family: CIFAR basic (6n+2), CIFAR bottleneck (9n+2), ImageNet basic and bottleneck
FAMILIES = [("resnet8", 4), ("resnet11b", 2), ("resnet18", 2), ("resnet50", 1)]
SHAPE_ARGS = {"scale": {"lam_s": 0.5, "lam_f": 0.5}, "exclusive-gate": {"b": -1.0},
              "shortcut-gate": {"b": -1.0}, "dropout": {"p": 0.5}}


def _record_additions(model):
    """Hook every unit's shortcut: (x, F(x), y) shapes of each addition."""
    seen = []

    def hook(module, inputs, output):
        x, fx = inputs
        matched = module.match(x) if module.match is not None else fx
        seen.append((module, tuple(matched.shape), tuple(fx.shape), tuple(output.shape)))

    handles = [u.shortcut.register_forward_hook(hook) for u in model.units()]
    return seen, handles


@pytest.mark.parametrize("arch,width", FAMILIES)
@pytest.mark.parametrize("order", list(ORDERS))
@pytest.mark.parametrize("shortcut", ["identity", "zero-pad", "projection", "projection-all", "scale",
                                      "exclusive-gate", "shortcut-gate", "dropout", "plain"])
def test_every_shortcut_order_family_builds_and_backprops(shortcut, order, arch, width):
    torch.manual_seed(0)
    model = build_model(arch, shortcut, order, num_classes=7, width=width, **SHAPE_ARGS.get(shortcut, {}))
    seen, handles = _record_additions(model)
    x = torch.randn(2, 3, 32, 32)
    out = model(x)
    assert out.shape == (2, 7)
    units = model.units()
    assert len(seen) == len(units) == sum(arch_spec(arch).units)
    transitions = 0
    for unit, (module, matched, fx, y) in zip(units, seen):
        assert module is unit.shortcut
        assert matched == fx == y, f"{shortcut}/{order}: shortcut {matched} vs branch {fx}"
        assert y[1] == unit.out_channels
        transitions += unit.stride == 2
    assert transitions == len(arch_spec(arch).units) - 1  # each stage after the first halves the grid
    for h in handles:
        h.remove()
    out.sum().backward()
    grad = model.stem[0].weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_stage_transitions_double_channels_and_halve_grid():
    model = build_model("resnet14", width=8)
    x, shapes = torch.randn(1, 3, 32, 32), []
    x = model.stem(x)
    for stage in model.stages:
        x = stage(x)
        shapes.append(tuple(x.shape[1:]))
    assert shapes == [(8, 32, 32), (16, 16, 16), (32, 8, 8)]


@pytest.mark.parametrize("arch", ["resnet20", "resnet20b", "resnet18"])
def test_parameter_free_shortcuts(arch):
    plain = count_params(build_model(arch, "plain", match="projection"))
    for name in ("identity", "zero-pad"):
        model = build_model(arch, name)
        assert sum(p.numel() for u in model.units() for p in u.shortcut.parameters()) == 0
        assert count_params(model) == plain
    # projection adds exactly one 1x1 conv + BN per shape-changing unit; option C adds one on every unit
    assert count_params(build_model(arch, "projection")) > plain
    assert count_params(build_model(arch, "projection-all")) > count_params(build_model(arch, "projection"))


def test_plain_adds_nothing_and_ignores_x():
    unit = build_model("resnet8", "plain").units()[1]
    x, fx = torch.randn(2, 16, 8, 8), torch.randn(2, 16, 8, 8)
    assert unit.shortcut(x, fx) is fx
    assert list(unit.shortcut.parameters()) == []


def test_shortcut_formulas():
    torch.manual_seed(0)
    x, fx = torch.randn(2, 8, 4, 4), torch.randn(2, 8, 4, 4)

    def one(name, **args):
        return build_model("resnet8", name, width=8, **args).units()[0].shortcut

    assert torch.allclose(one("identity")(x, fx), fx + x)
    assert torch.allclose(one("scale", lam_s=0.5, lam_f=0.25)(x, fx), 0.25 * fx + 0.5 * x)
    # a strongly negative gate bias closes g: exclusive gating passes x, shortcut gating passes F + x
    assert torch.allclose(one("exclusive-gate", b=-60.0)(x, fx), x, atol=1e-5)
    assert torch.allclose(one("shortcut-gate", b=-60.0)(x, fx), fx + x, atol=1e-5)
    assert torch.allclose(one("exclusive-gate", b=60.0)(x, fx), fx, atol=1e-5)
    gate = one("shortcut-gate", b=-6.0)
    gate(x, fx)
    assert gate.gate_mean == pytest.approx(torch.sigmoid(gate.gate(x)).mean().item())
    assert gate.gate_mean < 0.05  # b = -6 starts the gate nearly closed: 1 - g lets x through
    drop = one("dropout", p=0.5)
    assert torch.equal(drop.eval()(x, fx), fx + x)
    kept = (drop.train()(torch.ones(64, 8, 4, 4), torch.zeros(64, 8, 4, 4)) != 0).float().mean()
    assert 0.4 < kept < 0.6


def test_zero_pad_subsamples_and_pads():
    unit = build_model("resnet8", "zero-pad", width=4).units()[1]  # 4 -> 8 channels, stride 2
    x = torch.arange(4 * 4 * 4, dtype=torch.float).reshape(1, 4, 4, 4)
    y = unit.shortcut.match(x)
    assert y.shape == (1, 8, 2, 2)
    assert torch.equal(y[:, :4], x[:, :, ::2, ::2]) and torch.count_nonzero(y[:, 4:]) == 0


def test_gate_bias_is_initialised_to_b():
    model = build_model("resnet8", "exclusive-gate", b=-6.0)
    for unit in model.units():
        assert torch.all(unit.shortcut.gate.bias == -6.0)


@pytest.mark.parametrize("order,first,post", [
    ("original", torch.nn.Conv2d, "ReLU"), ("bn-after-add", torch.nn.Conv2d, "BatchNorm2d,ReLU"),
    ("relu-before-add", torch.nn.Conv2d, ""), ("relu-preact", torch.nn.ReLU, ""),
    ("full-preact", torch.nn.BatchNorm2d, ""),
])
def test_unit_orders_place_bn_and_relu(order, first, post):
    unit = ResidualUnit(16, 16, order=order)
    assert isinstance(unit.residual[0], first)
    assert ",".join(type(m).__name__ for m in unit.post) == post
    last = type(unit.residual[-1]).__name__
    assert last == {"original": "BatchNorm2d", "bn-after-add": "Conv2d", "relu-before-add": "ReLU",
                    "relu-preact": "BatchNorm2d", "full-preact": "Conv2d"}[order]


def test_bottleneck_unit_layout():
    unit = ResidualUnit(64, 16, stride=2, kind="bottleneck", order="full-preact")
    convs = [m for m in unit.residual if isinstance(m, torch.nn.Conv2d)]
    assert [(c.kernel_size, c.stride, c.out_channels) for c in convs] == [
        ((1, 1), (1, 1), 16), ((3, 3), (2, 2), 16), ((1, 1), (1, 1), 64)]


@pytest.mark.parametrize("arch,paper_millions", [("resnet20", 0.27), ("resnet32", 0.46), ("resnet44", 0.66),
                                                 ("resnet56", 0.85), ("resnet110", 1.7)])
def test_cifar_parameter_counts_match_he_2015(arch, paper_millions):
    assert round(count_params(build_model(arch, "zero-pad")) / 1e6, 2 if paper_millions < 1 else 1) == paper_millions


def test_preact_bottleneck_parameter_counts_are_the_reference_layouts():
    """resnet-pre-act.lua: conv1 alone, a shared BN-ReLU and a bare 1x1 projection where dimensions increase.

    Counted by hand from that file: 10,327,706 for ResNet-1001 (the paper prints "10.2M", which
    neither this nor the layout with a BN after conv1 and after each projection, 10,328,634,
    explains). The old layout had 928 more parameters: conv1's BN (2 x 16) and the projections'
    BNs (2 x (64 + 128 + 256)).
    """
    n164 = count_params(build_model("resnet164", order="full-preact", match="projection"))
    n1001 = count_params(build_model("resnet1001", order="full-preact", match="projection"))
    assert n1001 == 10_327_706
    assert n164 == 1_703_258 and round(n164 / 1e6, 1) == 1.7  # He 2016 Table 4: 1.7M
    # the stride's place changes no parameter count
    assert count_params(build_model("resnet1001", order="full-preact", match="projection",
                                    bottleneck_stride="1x1")) == n1001


def test_resnet1202_counts_the_19_4m_of_he_2015_table_6():
    assert round(count_params(build_model("resnet1202", "zero-pad")) / 1e6, 1) == 19.4


def _shortcut_inputs(model):
    """For each unit: (the input the unit got, the x its shortcut saw, the x its residual branch saw)."""
    seen = []
    for unit in model.units():
        record = {}
        unit.register_forward_pre_hook(lambda m, args, r=record: r.__setitem__("unit", args[0].clone()))
        unit.shortcut.register_forward_pre_hook(lambda m, args, r=record: r.__setitem__("shortcut", args[0].clone()))
        unit.residual.register_forward_pre_hook(lambda m, args, r=record: r.__setitem__("residual", args[0].clone()))
        seen.append(record)
    return seen


@pytest.mark.parametrize("arch", ["resnet14", "resnet20b"])
def test_full_preact_applies_bn_relu_before_the_split_where_the_reference_does(arch):
    """He 2016 appendix, resnet-pre-act.lua: the first unit and every unit that changes shape share f^."""
    torch.manual_seed(0)
    model = build_model(arch, order="full-preact", match="projection", width=4).train()
    assert [type(m) for m in model.stem] == [torch.nn.Conv2d]  # conv1 alone: its activation is unit 1's
    seen = _shortcut_inputs(model)
    model(torch.randn(4, 3, 16, 16))
    for k, (unit, rec) in enumerate(zip(model.units(), seen)):
        shared = k == 0 or unit.stride != 1 or unit.in_channels != unit.out_channels
        assert unit.preact == ("shared" if shared else "branch")
        assert torch.equal(rec["shortcut"], rec["residual"])  # both paths see the same x'
        if shared:
            assert [type(m) for m in unit.pre] == [torch.nn.BatchNorm2d, torch.nn.ReLU]
            assert isinstance(unit.residual[0], torch.nn.Conv2d)
            assert (rec["shortcut"] >= 0).all() and not torch.equal(rec["shortcut"], rec["unit"])
            if unit.in_channels != unit.out_channels:  # a bare W_s, no BN after it
                assert isinstance(unit.shortcut.match, torch.nn.Conv2d)
        else:
            assert len(unit.pre) == 0 and isinstance(unit.residual[0], torch.nn.BatchNorm2d)
            assert torch.equal(rec["shortcut"], rec["unit"])  # the identity path stays clean


def test_relu_only_preact_keeps_bn_after_conv1_and_shares_the_relu():
    model = build_model("resnet14", order="relu-preact", width=4)
    assert [type(m) for m in model.stem] == [torch.nn.Conv2d, torch.nn.BatchNorm2d]
    first, second = model.units()[:2]
    assert [type(m) for m in first.pre] == [torch.nn.ReLU] and isinstance(first.residual[0], torch.nn.Conv2d)
    assert len(second.pre) == 0 and isinstance(second.residual[0], torch.nn.ReLU)


def test_post_activation_orders_keep_the_stem_and_the_projection_bn():
    model = build_model("resnet20b", order="original", match="projection", width=4)
    assert [type(m) for m in model.stem] == [torch.nn.Conv2d, torch.nn.BatchNorm2d, torch.nn.ReLU]
    assert all(len(u.pre) == 0 for u in model.units())
    first = model.units()[0]
    assert [type(m) for m in first.shortcut.match] == [torch.nn.Conv2d, torch.nn.BatchNorm2d]


def test_imagenet_preact_first_unit_takes_the_stems_activation():
    """fb.resnet.torch models/preresnet.lua: the first stage starts 'no_preact', the later ones 'both_preact'."""
    model = build_model("resnet18", order="full-preact", width=8)
    units = model.units()
    assert isinstance(model.stem[-1], torch.nn.MaxPool2d)
    assert units[0].preact == "stem" and len(units[0].pre) == 0 and isinstance(units[0].residual[0], torch.nn.Conv2d)
    assert units[2].stride == 2 and units[2].preact == "shared"


@pytest.mark.parametrize("where,strides", [("3x3", [1, 2, 1]), ("1x1", [2, 1, 1])])
def test_bottleneck_stride_goes_where_asked(where, strides):
    unit = ResidualUnit(64, 16, stride=2, kind="bottleneck", order="full-preact", bottleneck_stride=where)
    convs = [m for m in unit.residual if isinstance(m, torch.nn.Conv2d)]
    assert [c.stride[0] for c in convs] == strides and [c.kernel_size[0] for c in convs] == [1, 3, 1]
    assert unit(torch.randn(2, 64, 8, 8)).shape == (2, 64, 4, 4)


def test_fc_bias_starts_at_zero_only_when_asked():
    torch.manual_seed(0)
    uniform = build_model("resnet8", width=4).fc
    zero = build_model("resnet8", width=4, fc_bias_init="zero").fc
    assert torch.count_nonzero(uniform.bias) == 10 and torch.all(zero.bias == 0)
    bound = 1 / uniform.in_features ** 0.5  # torch's default, as Torch7's nn.Linear: U(-1/sqrt(fan_in), ...)
    assert zero.weight.abs().max() <= bound and zero.weight.abs().max() > bound / 2


@pytest.mark.parametrize("arch", ["resnet18", "resnet34", "resnet50"])
def test_imagenet_layout_matches_torchvision_exactly(arch):
    ours = build_model(arch, "projection", num_classes=1000)
    theirs = getattr(torchvision.models, arch)()
    assert count_params(ours) == count_params(theirs)
    assert sorted(p.shape for p in ours.parameters()) == sorted(p.shape for p in theirs.parameters())


def test_flops_of_resnet18_match_the_known_1_8_gmacs():
    flops = count_flops(build_model("resnet18", "projection", num_classes=1000), (3, 224, 224))
    assert 1.8e9 < flops / 2 < 1.83e9


def test_he_initialisation():
    torch.manual_seed(0)
    model = build_model("resnet56", width=32)
    conv = model.units()[10].residual[0]
    fan_out = conv.out_channels * 9
    assert conv.weight.std().item() == pytest.approx((2 / fan_out) ** 0.5, rel=0.05)
    bn = model.units()[10].residual[1]
    assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)


@pytest.mark.parametrize("kwargs,message", [
    (dict(arch="resnet21"), "not 6n+2"),
    (dict(arch="resnet12b"), "not 9n+2"),
    (dict(arch="vgg16"), "unknown arch"),
    (dict(arch="resnet20", shortcut="scal"), "did you mean 'scale'"),
    (dict(arch="resnet20", order="preact"), "unknown order"),
    (dict(arch="resnet20", width=0), "width"),
    (dict(arch="resnet20", shortcut="scale", lam_s=-1), "lam_s"),
    (dict(arch="resnet20", shortcut="dropout", p=1.0), "[0, 1)"),
    (dict(arch="resnet20", shortcut="dropout", q=0.1), "no parameter 'q'"),
    (dict(arch="resnet20", match="pad"), "unknown match"),
    (dict(arch="resnet20b", bottleneck_stride="2x2"), "unknown bottleneck_stride"),
    (dict(arch="resnet20", fc_bias_init="normal"), "unknown fc_bias_init"),
    (dict(arch="resnet20", shortcut="dropout", rescale=0), "rescale must be true or false"),
])
def test_bad_input_raises_one_clear_config_error(kwargs, message):
    with pytest.raises(ConfigError) as info:
        build_model(**kwargs)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_unknown_shortcut_lists_all_valid_names():
    with pytest.raises(ConfigError) as info:
        build_model("resnet20", "nope")
    assert all(name in str(info.value) for name in list_shortcuts())


def test_command_line_prints_one_line_for_bad_depth():
    bad = subprocess.run([sys.executable, "-m", "ablation", "resnet21"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "6n+2" in bad.stderr
    good = subprocess.run([sys.executable, "-m", "ablation", "resnet20", "--shortcut", "zero-pad"],
                          capture_output=True, text=True)
    assert good.returncode == 0 and "269,722" in good.stdout
