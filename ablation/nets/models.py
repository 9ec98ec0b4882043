"""One residual unit, one network builder.

A unit (He 2016, eq. 1-2) computes::

    y_l     = h(x_l) (+) F(x_l, W_l)      # the shortcut combines, see ablation.nets.shortcuts
    x_{l+1} = f(y_l)                      # f: what follows the addition

The *order* says where BN and ReLU sit inside F and in f (He 2016 Table 2 / Fig. 4).
The *kind* says what F's convolutions are: ``basic`` (3x3, 3x3) or ``bottleneck``
(1x1, 3x3, 1x1 with expansion 4). Every depth, order and shortcut is a parameter of
the same two classes; ``shortcut="plain"`` gives the plain twin of any residual net.

Pre-activation orders (``relu-preact``, ``full-preact``) start F with an activation
``f^`` (ReLU, or BN-ReLU). He 2016 (appendix) and its reference code
(KaimingHe/resnet-1k-layers, resnet-pre-act.lua) apply ``f^`` once *before* the split
where the first unit follows the stand-alone conv1 and where a unit changes shape, so
both paths see it::

    x' = f^(x);   y = h(x') + F'(x')      # F' is F without its leading f^

and every other unit keeps ``y = x + F(x)`` with ``f^`` inside F (eq. 9). The CIFAR stem
is then conv1 alone (plus the BN that follows every conv in ``relu-preact``), since its
activation is the first unit's ``f^``; projections of pre-activation units are bare 1x1
convolutions. The ImageNet-layout stem keeps conv-BN-ReLU-max-pool and its first unit
takes no ``f^`` (fb.resnet.torch, models/preresnet.lua: ``no_preact``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

from ..core.errors import ConfigError, unknown_choice
from .layers import conv2d
from .norms import DEFAULT_NORM, adapt, check_norm, conv_factory, pattern as norm_pattern
from .shortcuts import check_shortcut_args, create_shortcut, get_shortcut
from . import modern  # noqa: F401  (registers the designs after 2016 beside the papers' shortcuts)

# order -> (ops around each conv but the last, ops around the last conv, f after the addition)
ORDERS = {
    "original": ("conv bn relu", "conv bn", "relu"),
    "bn-after-add": ("conv bn relu", "conv", "bn relu"),
    "relu-before-add": ("conv bn relu", "conv bn relu", ""),
    "relu-preact": ("relu conv bn", "relu conv bn", ""),
    "full-preact": ("bn relu conv", "bn relu conv", ""),
}
# what the network adds after the last unit: pre-activation units leave the stream un-activated
HEADS = {"relu-preact": "relu", "full-preact": "bn relu"}
# the convolution of a bottleneck unit that carries its stride
BOTTLENECK_STRIDES = ("3x3", "1x1")
# how the classifier's bias starts: torch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)), or zero
FC_BIAS_INITS = ("uniform", "zero")

IMAGENET = {  # name -> (kind, units per stage), as torchvision
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet101": ("bottleneck", (3, 4, 23, 3)),
    "resnet152": ("bottleneck", (3, 8, 36, 3)),
}
CIFAR_BOTTLENECK = ("resnet164", "resnet1001")  # the pre-activation paper's names
NAMED_CIFAR = ("resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "resnet1202")
EXPANSION = {"basic": 1, "bottleneck": 4}


@dataclass(frozen=True)
class ArchSpec:
    name: str
    family: str  # "cifar" | "imagenet"
    kind: str  # "basic" | "bottleneck"
    units: tuple  # units per stage
    width: int  # default first-stage width

    @property
    def depth(self) -> int:
        return 2 + sum(self.units) * (3 if self.kind == "bottleneck" else 2)


def list_archs() -> list[str]:
    """The named architectures. Any ``resnet{6n+2}`` (basic) or ``resnet{9n+2}b`` (bottleneck) works too."""
    return [*NAMED_CIFAR, *CIFAR_BOTTLENECK, *IMAGENET]


def arch_spec(arch: str) -> ArchSpec:
    """Parse an architecture name; ImageNet names (resnet18/34/50/101/152) take precedence."""
    if arch in IMAGENET:
        kind, units = IMAGENET[arch]
        return ArchSpec(arch, "imagenet", kind, units, 64)
    m = re.fullmatch(r"resnet(\d+)(b?)", str(arch))
    valid = "; or any resnet{6n+2} (basic) / resnet{9n+2}b (bottleneck)"
    if not m:
        raise ConfigError(f"unknown arch {arch!r}; valid: {', '.join(list_archs())}{valid}")
    depth, bottleneck = int(m.group(1)), bool(m.group(2)) or arch in CIFAR_BOTTLENECK
    per, rule = (9, "9n+2") if bottleneck else (6, "6n+2")
    if depth < per + 2 or (depth - 2) % per:
        raise ConfigError(f"depth {depth} of {arch!r} is not {rule} with n >= 1 "
                          f"(e.g. {', '.join(str(per * n + 2) for n in (1, 2, 3, 9))})")
    n = (depth - 2) // per
    return ArchSpec(arch, "cifar", "bottleneck" if bottleneck else "basic", (n, n, n), 16)


def preactivation(order: str) -> str:
    """The activation ``f^`` a pre-activation order puts before its first conv ('' for the others)."""
    return ORDERS[order][0].partition("conv")[0].strip()


def _ops(pattern: str, conv: nn.Module) -> list[nn.Module]:
    """Turn 'bn relu conv' into modules; a BN before the conv normalises its input channels."""
    mods, seen_conv = [], False
    for op in pattern.split():
        if op == "conv":
            mods.append(conv)
            seen_conv = True
        elif op == "bn":
            mods.append(nn.BatchNorm2d(conv.out_channels if seen_conv else conv.in_channels))
        else:
            # in place only where the input is not x itself, which the shortcut still needs
            mods.append(nn.ReLU(inplace=bool(mods)))
    return mods


def _act_ops(pattern: str, channels: int, inplace: bool = True) -> list[nn.Module]:
    """'bn relu' on ``channels``; ``inplace=False`` keeps a leading ReLU off its input tensor."""
    return [nn.BatchNorm2d(channels) if op == "bn" else nn.ReLU(inplace=inplace or i > 0)
            for i, op in enumerate(pattern.split())]


# where a pre-activation unit's leading activation goes: see ResidualUnit
PREACT_PLACES = ("branch", "shared", "stem")


class UnitTap(nn.Module):
    """Where an observer reads a unit's parts: ``tap(x', F, y)`` returns ``y`` unchanged.

    Every :class:`ResidualUnit` calls its ``tap`` once per forward with ``x'`` (the unit's input
    after any shared pre-activation), ``F`` (the residual branch's output as it enters the
    combination; None where a unit skips its branch) and ``y = h(x') (+) F``, before ``f``. A forward
    hook on ``unit.tap`` sees them as its ``args`` and must read them there (``f`` may then work in
    place on ``y``); the tap has no parameters, so state dicts and
    checkpoints are those of a unit without it. A unit that scales or drops its branch passes
    what it adds, so that observers (ablation.nets.signal) need not know how the unit computes.
    """

    def forward(self, x, fx, y):
        return y


class ResidualUnit(nn.Module):
    """``x_{l+1} = f(h(x') (+) F(x'))``, ``x' = pre(x)``, with F, f laid out by ``order`` and h by ``shortcut``.

    ``preact`` says where a pre-activation order's leading activation ``f^`` goes:
    ``branch`` (inside F: eq. 9, ``pre`` is the identity), ``shared`` (``pre = f^``, before the
    split, so h sees it too) or ``stem`` (already applied by the stem: neither ``pre`` nor F has
    it). Post-activation orders have no ``f^`` and ignore it. ``bottleneck_stride`` puts a
    bottleneck unit's stride on its ``3x3`` or on its first ``1x1`` convolution. ``norm``
    (:mod:`ablation.nets.norms`) removes the BNs (``none``) or also standardises the weights (``ws``).

    What a design needs to know of its unit is data on it: ``index`` (1..``num_units``, set by the
    network) and ``stage``; what it adds to the unit comes through its shortcut's hooks
    (:class:`ablation.nets.shortcuts.Shortcut`).
    """

    def __init__(self, in_channels: int, width: int, stride: int = 1, kind: str = "basic",
                 order: str = "original", shortcut: str = "identity", match: str = "zero-pad",
                 stage: int = 0, preact: str = "branch", bottleneck_stride: str = "3x3", norm: str = DEFAULT_NORM,
                 **shortcut_args):
        super().__init__()
        if preact not in PREACT_PLACES:
            raise unknown_choice("preact", preact, PREACT_PLACES)
        if bottleneck_stride not in BOTTLENECK_STRIDES:
            raise unknown_choice("bottleneck_stride", bottleneck_stride, BOTTLENECK_STRIDES)
        out_channels = width * EXPANSION[kind]
        if kind == "basic":
            shapes = [(in_channels, width, 3, stride), (width, width, 3, 1)]
        elif bottleneck_stride == "3x3":  # torchvision (ResNet v1.5), fb.resnet.torch models/resnet.lua
            shapes = [(in_channels, width, 1, 1), (width, width, 3, stride), (width, out_channels, 1, 1)]
        else:  # He 2015's Caffe models (ResNet-101-deploy.prototxt: res4a_branch2a) and resnet-pre-act.lua
            shapes = [(in_channels, width, 1, stride), (width, width, 3, 1), (width, out_channels, 1, 1)]
        each, last, post = (norm_pattern(p, norm) for p in ORDERS[order])
        lead = norm_pattern(preactivation(order), norm)
        pre = lead if preact == "shared" else ""
        conv_of = conv_factory(norm)
        mods = []
        for i, (cin, cout, k, s) in enumerate(shapes):
            conv = conv_of(cin, cout, k, stride=s, padding=k // 2)
            pattern = last if i == len(shapes) - 1 else each
            if i == 0 and lead and preact != "branch":  # f^ is applied outside F
                pattern = pattern.partition("conv")[1] + pattern.partition("conv")[2]
            mods += _ops(pattern, conv)
        # not in place on x: the caller may hold it (a hook, the previous unit's saved output)
        self.pre = nn.Sequential(*_act_ops(pre, in_channels, inplace=False))  # empty: the identity
        self.residual = nn.Sequential(*mods)  # F
        # a projection after a shared BN-ReLU is a bare W_s (resnet-pre-act.lua); post-activation: W_s then BN
        self.shortcut = create_shortcut(shortcut, in_channels, out_channels, stride, match,
                                        projection_bn=not lead, **shortcut_args)
        adapt(self.shortcut, norm)
        self.post = nn.Sequential(*_act_ops(post, out_channels))  # f
        self.stage, self.in_channels, self.out_channels, self.stride = stage, in_channels, out_channels, stride
        self.preact = preact if lead else None
        self.tap = UnitTap()
        self.index, self.num_units = 1, 1  # the network sets both

    def forward(self, x):
        x = self.pre(x)
        # a design may leave F out of this step (stochastic depth's closed gate): the shortcut gets None
        fx = self.shortcut.branch_term(self.residual(x)) if self.shortcut.computes_branch() else None
        y = self.shortcut(x, fx)
        return self.post(self.tap(x, fx, y))


class ResNet(nn.Module):
    """Stem, stages of :class:`ResidualUnit`, head. Built only through :func:`build_model`."""

    def __init__(self, spec: ArchSpec, shortcut: str, order: str, num_classes: int, in_channels: int,
                 width: int, match: str, shortcut_args: dict, bottleneck_stride: str = "3x3",
                 fc_bias_init: str = "uniform", norm: str = DEFAULT_NORM):
        super().__init__()
        self.spec, self.shortcut_name, self.order, self.norm = spec, shortcut, order, norm
        lead = preactivation(order)
        conv_of = conv_factory(norm)
        if spec.family == "imagenet":
            stem = [conv_of(in_channels, width, 7, stride=2, padding=3),
                    *([nn.BatchNorm2d(width)] if norm == "bn" else []),
                    nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2, padding=1)]
        else:
            # conv1 and what follows a conv in this order's units (He 2015 4.2: conv-BN-ReLU); for a
            # pre-activation order without f^, which the first unit applies before its split
            after = ORDERS[order][0].partition("conv")[2]
            stem = _ops(norm_pattern("conv " + after, norm), conv_of(in_channels, width, 3, padding=1))
        self.stem = nn.Sequential(*stem)
        channels, stages = width, []
        for i, n in enumerate(spec.units):
            stage_width = width * 2**i
            units = []
            for j in range(n):
                stride = 2 if i > 0 and j == 0 else 1
                out = stage_width * EXPANSION[spec.kind]
                first = i == 0 and j == 0
                if first and lead:
                    preact = "stem" if spec.family == "imagenet" else "shared"
                else:
                    preact = "shared" if lead and (stride != 1 or channels != out) else "branch"
                units.append(ResidualUnit(channels, stage_width, stride, spec.kind, order, shortcut, match, i,
                                          preact, bottleneck_stride, norm, **shortcut_args))
                channels = out
            stages.append(nn.Sequential(*units))
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(*_act_ops(norm_pattern(HEADS.get(order, ""), norm), channels))
        self.fc = nn.Linear(channels, num_classes)
        self._init_weights(fc_bias_init)
        units = self.units()
        for k, unit in enumerate(units, 1):
            unit.index, unit.num_units = k, len(units)
        # a design's own init rules (zero last conv, depth-scaled init, ...) run after the common init
        for unit in units:
            unit.shortcut.init_unit(unit)
        type(units[0].shortcut).init_net(self)

    def _init_weights(self, fc_bias_init: str):
        """He-normal convolutions (He 2015 ref. [13]), BN weight 1 bias 0; gate biases keep their b.

        The classifier keeps torch's U(-1/sqrt(fan_in), 1/sqrt(fan_in)) weights, as Torch7's
        nn.Linear; ``fc_bias_init="zero"`` starts its bias at 0 as both reference codes do
        (resnet-pre-act.lua and fb.resnet.torch models/resnet.lua: ``v.bias:zero()``).
        """
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if fc_bias_init == "zero":
            nn.init.zeros_(self.fc.bias)

    def units(self) -> list[ResidualUnit]:
        return [u for stage in self.stages for u in stage]

    def forward(self, x):
        x = self.head(self.stages(self.stem(x)))
        # global average pooling as a mean: AdaptiveAvgPool2d has no deterministic CUDA backward
        return self.fc(x.mean((2, 3)))


# the names build_model takes itself: a shortcut parameter of one of these names would reach it twice
BUILDER_KEYS = ("arch", "shortcut", "order", "num_classes", "in_channels", "width", "match", "bottleneck_stride",
                "fc_bias_init", "norm")


def check_builder_keys(shortcut_args: dict, where: str, instead, keys=BUILDER_KEYS) -> None:
    """ConfigError where ``shortcut_args`` names an option of the network itself (one of ``keys``);
    ``instead(key)`` says what to do."""
    for key in shortcut_args:
        if key in keys:
            raise ConfigError(f"{where} {key}={shortcut_args[key]!r}: {key} is an option of the network, not a "
                              f"parameter of the shortcut; {instead(key)}")


def parse_model_args(arch: str, order: str = "original", num_classes: int = 10, in_channels: int = 3,
                     width: int | None = None, *, bottleneck_stride: str = "3x3", fc_bias_init: str = "uniform",
                     norm: str = DEFAULT_NORM) -> ArchSpec:
    """The parsed arch, or ConfigError naming the first option of the network that names nothing.

    What :func:`build_model` reads of its own options before it builds; it creates nothing and draws nothing.
    """
    spec = arch_spec(arch)
    if order not in ORDERS:
        raise unknown_choice("order", order, ORDERS)
    if bottleneck_stride not in BOTTLENECK_STRIDES:
        raise unknown_choice("bottleneck_stride", bottleneck_stride, BOTTLENECK_STRIDES)
    if fc_bias_init not in FC_BIAS_INITS:
        raise unknown_choice("fc_bias_init", fc_bias_init, FC_BIAS_INITS)
    check_norm(norm)
    for key, value in (("width", width), ("num_classes", num_classes), ("in_channels", in_channels)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"{key} must be a whole number >= 1, got {value!r}")
    return spec


def check_model_args(arch: str, shortcut: str = "identity", order: str = "original", num_classes: int = 10,
                     in_channels: int = 3, width: int | None = None, match: str = "zero-pad", *,
                     bottleneck_stride: str = "3x3", fc_bias_init: str = "uniform", norm: str = DEFAULT_NORM,
                     **shortcut_args) -> ArchSpec:
    """Validate everything :func:`build_model` takes without training; returns the parsed arch.

    The shortcut's own checks (lam >= 0, 0 <= p < 1, match) run on a throwaway instance, and a
    plugin's shortcut is also run once on a small input (cached per network), so that one that
    raises or returns the wrong shape is one line naming it, before anything trains.

    Both build modules, so both draw random numbers; they draw them from a fork of torch's generator
    (:func:`torch.random.fork_rng`), which is put back as it was. Validation runs wherever a config is
    read (the runner's plan, a worker before it trains, a report, a user's call), before or after some
    seed was set: with a forked generator, a net's initial weights cannot depend on what was validated
    before it, whatever the callers do. Validating before the seed would hold only as long as every
    caller keeps that order; the meta device cannot run the probe's forward pass, nor a plugin's
    constructor that computes on its tensors.
    """
    spec = parse_model_args(arch, order, num_classes, in_channels, width, bottleneck_stride=bottleneck_stride,
                            fc_bias_init=fc_bias_init, norm=norm)
    check_shortcut_args(shortcut, shortcut_args)
    entry = get_shortcut(shortcut)
    with torch.random.fork_rng(devices=[]):
        try:
            create_shortcut(shortcut, 1, 1, 1, match, **shortcut_args)
        except ConfigError:
            raise
        except Exception as e:  # a plugin's constructor that fails on its own arguments
            raise ConfigError(f"shortcut {shortcut!r}{entry.where} cannot be built: {type(e).__name__}: {e}") from None
        if entry.origin:
            _probe_plugin(spec, shortcut, order, num_classes, in_channels, width or spec.width, match, shortcut_args,
                          bottleneck_stride, fc_bias_init, norm)
    return spec


_PROBED: set = set()  # every argument of the nets whose plugin shortcut passed the probe (a speed cache only)


def _probe_plugin(spec: ArchSpec, shortcut, order, num_classes, in_channels, width, match, shortcut_args,
                  bottleneck_stride: str, fc_bias_init: str, norm: str = DEFAULT_NORM) -> None:
    """Build the net that will train once and run two 32x32 images through it, checking each unit's shortcut output.

    y = h(x) (+) F(x) must have the shape of the branch F(x), or the next unit receives a tensor
    it was not built for (or, worse, a broadcast one that trains silently). The net is the one
    :func:`build_model` makes from the same arguments, so every one of them is in the cache key.
    """
    entry = get_shortcut(shortcut)
    key = (spec.name, shortcut, entry.cls, order, num_classes, in_channels, width, match,
           repr(sorted(shortcut_args.items())), bottleneck_stride, fc_bias_init, norm)
    if key in _PROBED:
        return
    try:
        net = ResNet(spec, shortcut, order, num_classes, in_channels, width, match, shortcut_args, bottleneck_stride,
                     fc_bias_init, norm)
    except ConfigError:
        raise
    except Exception as e:
        raise ConfigError(f"shortcut {shortcut!r}{entry.where} cannot be built into {spec.name}: "
                          f"{type(e).__name__}: {e}") from None

    class Mismatch(Exception):
        pass

    def check(unit):
        def hook(module, args, out):
            fx = args[1]
            shape = tuple(getattr(out, "shape", ()))
            if not torch.is_tensor(out) or shape != tuple(fx.shape):
                raise Mismatch(f"shortcut {shortcut!r}{entry.where} returned shape {shape} where the branch F(x) has "
                               f"{tuple(fx.shape)} (stage {unit.stage}, {unit.in_channels} -> {unit.out_channels} "
                               f"channels, stride {unit.stride})")
        return hook

    handles = [u.shortcut.register_forward_hook(check(u)) for u in net.units()]
    try:
        with torch.no_grad():
            net.eval()(torch.zeros(2, in_channels, 32, 32))
    except Mismatch as e:
        raise ConfigError(str(e)) from None
    except Exception as e:
        raise ConfigError(f"shortcut {shortcut!r}{entry.where} fails in a forward pass of {spec.name}: "
                          f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
    finally:
        for h in handles:
            h.remove()
    _PROBED.add(key)


def build_model(arch: str, shortcut: str = "identity", order: str = "original", num_classes: int = 10,
                in_channels: int = 3, width: int | None = None, match: str = "zero-pad", *,
                bottleneck_stride: str = "3x3", fc_bias_init: str = "uniform", norm: str = DEFAULT_NORM,
                **shortcut_args) -> ResNet:
    """Build any network of the two papers.

    arch: ``resnet{6n+2}`` (CIFAR, basic units, widths w/2w/4w), ``resnet164`` /
    ``resnet1001`` / ``resnet{9n+2}b`` (CIFAR, bottleneck), ``resnet18/34/50/101/152``
    (ImageNet layout: 7x7 stem, max-pool, w/2w/4w/8w). shortcut: a registered name
    (see :func:`ablation.list_shortcuts`); ``plain`` gives the plain twin.
    order: one of :data:`ORDERS`. width: first-stage width (default 16 CIFAR, 64 ImageNet).
    match: what x becomes where a unit changes shape, ``zero-pad`` (option A) or
    ``projection`` (option B), for shortcuts that do not fix it themselves.
    bottleneck_stride: ``3x3`` (torchvision, fb.resnet.torch) or ``1x1`` (He 2015's Caffe
    models, resnet-pre-act.lua). fc_bias_init: ``uniform`` (torch's default) or ``zero``
    (both reference codes). norm: ``bn``, ``none`` or ``ws`` (:mod:`ablation.nets.norms`).
    shortcut_args: the shortcut's parameters, e.g. ``lam_s=0.5`` or ``b=-6``.

    It builds, and draws from torch's generator the net's weights and nothing else; an option that
    names nothing is one line (:func:`parse_model_args`), as is a shortcut parameter its constructor
    refuses. :func:`check_model_args` validates beside it (a plugin's probe), and :func:`seeded_model`
    is the net a seed draws, as every run trains it.
    """
    spec = parse_model_args(arch, order, num_classes, in_channels, width, bottleneck_stride=bottleneck_stride,
                            fc_bias_init=fc_bias_init, norm=norm)
    return ResNet(spec, shortcut, order, num_classes, in_channels, width or spec.width, match, shortcut_args,
                  bottleneck_stride, fc_bias_init, norm)


def draws_before_the_net(shortcut: str, match: str, shortcut_args: dict) -> None:
    """Draw from torch's generator what every stored run drew between its seed and its net: a 1-channel
    instance of its shortcut, built and dropped.

    Until validation moved beside the builder, :func:`build_model` validated its arguments itself, after
    the run's seed was set, on such a throwaway instance; a shortcut whose constructor draws (the gates'
    1x1 convolution, ``projection-all``'s ``W_s``, a plugin's parameters) drew before the net. Every
    stored run's initial weights, and the generator state its training went on from (the dropout
    shortcut's masks), follow these draws, and a run's hash names that net: the draws stay, so that the
    same hash keeps meaning the same net. Shortcuts that draw nothing here are not affected.
    """
    create_shortcut(shortcut, 1, 1, 1, match, **shortcut_args)


def seeded_model(seed: int, arch: str, shortcut: str = "identity", order: str = "original", num_classes: int = 10,
                 in_channels: int = 3, width: int | None = None, match: str = "zero-pad", **options) -> ResNet:
    """The net that ``seed`` draws, a function of its arguments and the seed alone: torch's generator seeded,
    :func:`draws_before_the_net`, then :func:`build_model`. What the trainer starts a run from
    (:func:`ablation.training.step.initial_model`) and what the signal commands measure."""
    keywords = ("bottleneck_stride", "fc_bias_init", "norm")
    net_options = {k: options.pop(k) for k in keywords if k in options}
    torch.manual_seed(seed)
    draws_before_the_net(shortcut, match, options)
    return build_model(arch, shortcut, order, num_classes, in_channels, width, match, **net_options, **options)


def count_params(model: nn.Module) -> int:
    """The number of parameters of ``model``, trainable or not."""
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, input_shape=(3, 32, 32)) -> int:
    """Forward FLOPs of one sample (2 per multiply-add), counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    param = next(model.parameters())
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, *input_shape, device=param.device, dtype=param.dtype))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())

