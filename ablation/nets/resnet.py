"""The residual unit and the network: the modules every net of the package is made of.

A unit (He 2016, eq. 1-2) computes::

    y_l     = h(x_l) (+) F(x_l, W_l)      # the shortcut combines, see ablation.nets.shortcut_base
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

import torch
from torch import nn

from ..core.errors import unknown_choice
from .archs import EXPANSION, ArchSpec
from .norms import DEFAULT_NORM, adapt, conv_factory, pattern as norm_pattern
from .registry import create_shortcut

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
    (:class:`ablation.nets.shortcut_base.Shortcut`).
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
