"""Residual designs after He et al. 2016 that scale the branch rather than the shortcut.

Each is one line of algebra away from He 2016 Table 1's ``y = h(x) + F(x)``::

    y = h(x) + lam F(x)

with the branch multiplier ``lam`` a scalar or one value per channel, learnable or fixed, and what a
design adds besides (an init rule, scalar biases, a drop rule, a pre-multiplier) given through the
hooks every :class:`ablation.nets.shortcut_base.Shortcut` has: ``init_unit(unit)`` (the unit carries ``index``
l = 1..L and ``num_units`` L), ``init_net(net)`` and ``computes_branch()``. Each design is a registry
entry; which normalisation the net has is the config key ``norm`` (:mod:`ablation.nets.norms`).

Each design's defaults are its authors' reference code (cited per design below and, line by line, in
ablation/experiments/modern.toml); where the project keeps He 2016 Table 1's net instead, that is a
named parameter or config key, and the experiment file says which a row runs.

* ``rezero`` (Bachlechner et al. 2020, arXiv 2003.04887): ``lam = alpha``, one learnable scalar per
  unit, init 0. The authors' CIFAR ResNets (tbachlechner/Fixup, cifar/models/rezero_resnet_cifar.py;
  tbachlechner/ReZero-examples, the ReZNet notebook) put the ReLU inside the branch and nothing after
  the sum, ``y = x + alpha relu(BN(W_2 relu(BN(W_1 x))))``: the order ``relu-before-add``, so that each
  unit is x -> x at init. Under He 2016's ``original`` order it is ``relu(x + alpha F)`` instead.
* ``skipinit`` (De and Smith 2020, arXiv 2002.10444): the same ``alpha`` (init 0) and a classifier
  that starts at 0 (deepmind-research nfnets/skipinit_resnet.py: ``fc_init=jnp.zeros``, its
  ``skip_gain`` initialised with ``jnp.zeros``); that file's net is pre-activation without BN, with
  1x1 projections where shapes change, which the experiment file sets as config, and a first unit
  whose shortcut takes x itself (``first_preact``, :func:`keep_first_shortcut_raw`).
* ``fixup`` (Zhang, Dauphin and Ma 2019, arXiv 1901.09321; hongyi-zhang/Fixup,
  cifar/models/fixup_resnet_cifar.py): a scalar bias before each convolution and each activation of
  F, a learnable scalar multiplier (init 1) then a scalar bias after its last convolution, so
  ``F(x) = s W_m(...(W_1 (x + a_1) + b_1)...) + b_m``; every convolution of F but the last starts
  at He's init times ``L^(-1/(2m-2))`` (m convolutions per branch, L units), the last at 0; the
  classifier's weight and bias start at 0, with a scalar bias before it and one after the stem's
  convolution. Where the unit changes shape its shortcut takes ``x + a_1`` (``shortcut_bias``). Its
  scalars are the parameter group ``scalars``, which the reference trains at a tenth of the rate
  (config key ``lr_groups``).
* ``stochastic-depth`` (Huang et al. 2016, arXiv 1603.09382, eq. 4 and Sec. 3): in training
  ``lam = b_l ~ Bernoulli(p_l)`` drawn once per mini-batch, and where ``b_l = 0`` F is not computed
  at all; ``p_l = 1 - (l / L)(1 - p_L)``, ``p_L = 0.5``; at test ``lam = p_l``.
* ``layerscale`` (Touvron et al. 2021, arXiv 2103.17239, Sec. 2): ``lam = diag(lambda)``, one
  learnable value per channel, init epsilon: 0.1 for up to 18 units, 1e-5 up to 24, 1e-6 beyond
  (the paper's rule for transformer blocks, applied to residual units here), unless ``eps`` is given.
* ``nf`` (Brock, De and Smith 2021, arXiv 2101.08692; deepmind-research nfnets/nf_resnet.py and
  base.py): ``x_{l+1} = h_l + alpha g f_l(x_l / beta_l)`` with ``alpha = 0.2``; ``beta_l`` the
  expected std of the unit's input, ``beta_l^2 = beta_{l-1}^2 + alpha^2``, reset to 1 after the first
  unit of every stage; ReLUs scaled by ``gamma`` = 1.7139588594436646 (base.py; 1 / std(relu(z)) for
  z ~ N(0, 1) is 1.7129) so that they keep unit variance; the classifier's weight starts at
  N(0, 0.01^2) and its bias at 0; with ``norm = "ws"``. ``g`` is a learnable scalar, ``skip_gain``,
  init 0 as nf_resnet.py (``skipinit_gain=jnp.zeros``), so each unit starts at ``x_{l+1} = h_l``;
  ``skip_gain = 1`` gives the growth of the paper's analysis (Sec. 4), ``Var(x_l) = beta_l^2``. As
  SkipInit, the first unit's shortcut takes x itself (``first_preact``).

:func:`unit_terms` gives a unit's terms one by one, for whoever reads the signal through a net.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F_
from torch import nn

from ..core.errors import ConfigError
from .shortcut_base import Shortcut
from .registry import register_shortcut


class BranchScale(Shortcut):
    """``y = h(x) + lam F(x)``: a shortcut that multiplies the branch, not x.

    A subclass calls :meth:`set_multiplier` (scalar or per channel, learnable or fixed); without it
    ``lam = 1``. The unit passes F through :meth:`branch_term` first, so ``forward`` gets ``lam F``, or
    ``None`` where :meth:`computes_branch` said no: then ``y = h(x)``.
    """

    def __init__(self, in_channels, out_channels, stride=1, match="zero-pad"):
        super().__init__(in_channels, out_channels, stride, match)
        self.out_channels = out_channels
        self.register_buffer("lam", None)

    def set_multiplier(self, init: float, per_channel: bool = False, learnable: bool = True) -> None:
        value = torch.full((self.out_channels, 1, 1) if per_channel else (), float(init))
        if learnable:
            self.lam = nn.Parameter(value)
        else:
            self.register_buffer("lam", value)

    def branch_term(self, fx):
        return fx if self.lam is None else self.lam * fx

    def forward(self, x, fx):
        h = self.match(x)
        if fx is None:  # a new tensor, as a sum would be: f after the addition may work in place on y
            return h.clone() if h is x else h
        return h + fx


class ScalarBias(nn.Module):
    """``x + b``, one learnable scalar, init 0 (Fixup's biases)."""

    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return x + self.bias


class ScalarScale(nn.Module):
    """``s x``, one learnable scalar, init 1 (Fixup's multiplier)."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x):
        return x * self.scale


class Multiply(nn.Module):
    """``c x`` with a fixed c (NF-ResNets' 1 / beta)."""

    def __init__(self, c: float):
        super().__init__()
        self.c = float(c)

    def forward(self, x):
        return x * self.c

    def extra_repr(self):
        return f"{self.c:.6g}"


# nfnets/base.py's constant for relu; the analytic 1 / std(relu(z)), z ~ N(0, 1), is sqrt(2 / (1 - 1/pi)) = 1.7129
NF_GAMMA_RELU = 1.7139588594436646


class ScaledReLU(nn.Module):
    """``gamma relu(x)``: the ReLU of NF-ResNets, scaled to keep a unit-Gaussian input's variance at 1."""

    def __init__(self, gamma: float = NF_GAMMA_RELU):
        super().__init__()
        self.gamma = float(gamma)

    def forward(self, x):
        return F_.relu(x) * self.gamma


def _check(name: str, key: str, value: float, ok: bool, want: str) -> None:
    if not ok:
        raise ConfigError(f"shortcut {name!r}: {key} must be {want}, got {value!r}")


def convs(module: nn.Module) -> list[nn.Conv2d]:
    """The convolutions of a branch, in order."""
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)]


# --- the designs --------------------------------------------------------------------------------


@register_shortcut("rezero", formula="y = h(x) + alpha F(x), alpha learnable, init 0",
                   paper="Bachlechner et al. 2020 (ReZero, arXiv 2003.04887)")
class ReZero(BranchScale):
    def __init__(self, in_channels, out_channels, stride=1, match="zero-pad", alpha: float = 0.0):
        super().__init__(in_channels, out_channels, stride, match)
        self.set_multiplier(alpha)


@register_shortcut("skipinit", formula="y = h(x) + alpha F(x), alpha learnable, init 0; classifier init 0",
                   paper="De & Smith 2020 (SkipInit, arXiv 2002.10444)")
class SkipInit(ReZero):
    """ReZero's multiplier; what differs is the classifier, zero at init, and where the first unit's ``f^`` goes
    (``first_preact``, :func:`keep_first_shortcut_raw`)."""

    def __init__(self, in_channels, out_channels, stride=1, match="zero-pad", alpha: float = 0.0,
                 first_preact: str = "branch"):
        super().__init__(in_channels, out_channels, stride, match, alpha)
        self.first_preact = _first_preact("skipinit", first_preact)

    @classmethod
    def init_net(cls, net) -> None:
        keep_first_shortcut_raw(net)
        nn.init.zeros_(net.fc.weight)  # skipinit_resnet.py: fc_init=jnp.zeros (haiku's bias starts at 0)
        nn.init.zeros_(net.fc.bias)


@register_shortcut("fixup", formula="y = h(x + a_1) + s W_m(...W_1(x + a_1) + b_1...) + b_m; W_m = 0, the others "
                   "scaled by L^(-1/(2m-2)); classifier 0", paper="Zhang, Dauphin & Ma 2019 (Fixup, arXiv 1901.09321)")
class Fixup(BranchScale):
    """Fixup's rules act on the branch and the net; the combination itself is ``h(x + a_1) + F(x)``.

    ``shortcut_bias``: where the unit changes shape, its shortcut takes ``x + a_1``, the branch's first
    bias (fixup_resnet_cifar.py: ``self.downsample(x + self.bias1a)``); false: x itself. Its scalars
    form the parameter group ``scalars`` (config key ``lr_groups``).
    """

    param_groups = {"scalars": "every scalar bias and multiplier, and the classifier's bias: what the reference's "
                               "cifar_train.py selects by the names 'bias' and 'scale' and trains at lr / 10"}

    def __init__(self, in_channels, out_channels, stride=1, match="zero-pad", shortcut_bias: bool = True):
        super().__init__(in_channels, out_channels, stride, match)
        _check("fixup", "shortcut_bias", shortcut_bias, isinstance(shortcut_bias, bool), "true or false")
        self.shortcut_bias = shortcut_bias
        self._input_bias = ()  # (the branch's first ScalarBias,) where the shortcut adds it; a tuple, not a submodule

    def init_unit(self, unit) -> None:
        layers = convs(unit.residual)
        m, depth = len(layers), unit.num_units
        with torch.no_grad():
            for conv in layers[:-1]:  # He's init already drawn: scaling it is drawing with the scaled std
                conv.weight.mul_(depth ** (-1.0 / (2 * m - 2)))
            layers[-1].weight.zero_()
        mods = []
        for mod in unit.residual:
            if isinstance(mod, (nn.Conv2d, nn.ReLU)):
                mods.append(ScalarBias())
            mods.append(mod)
        unit.residual = nn.Sequential(*mods, ScalarScale(), ScalarBias())
        if self.shortcut_bias and not isinstance(self.match, nn.Identity):
            self._input_bias = (next(m for m in mods if isinstance(m, ScalarBias)),)
            # a mark in the state dict: weights of a net whose shortcut took x alone (the same parameters) do
            # not load into this one, where they would compute another function
            self.register_buffer("adds_input_bias", torch.ones(()))

    def forward(self, x, fx):
        if self._input_bias:
            x = x + self._input_bias[0].bias
        return super().forward(x, fx)

    @classmethod
    def init_net(cls, net) -> None:
        stem = []
        for mod in net.stem:  # relu(conv1(x) + bias1)
            stem += [ScalarBias(), mod] if isinstance(mod, nn.ReLU) else [mod]
        net.stem = nn.Sequential(*stem)
        net.head.append(ScalarBias())  # fc(x + bias2): a scalar added before pooling is added after it
        nn.init.zeros_(net.fc.weight)
        nn.init.zeros_(net.fc.bias)

    @classmethod
    def group_parameters(cls, net, group: str) -> list:
        scalars = [p for m in net.modules() if isinstance(m, (ScalarBias, ScalarScale)) for p in m.parameters()]
        return [*scalars, net.fc.bias] if group == "scalars" else []


@register_shortcut("stochastic-depth", formula="train: y = h(x) + b_l F(x), b_l ~ Bernoulli(p_l) per batch; "
                   "test: y = h(x) + p_l F(x); p_l = 1 - (l/L)(1 - p_L)",
                   paper="Huang et al. 2016 (stochastic depth, arXiv 1603.09382)")
class StochasticDepth(BranchScale):
    def __init__(self, in_channels, out_channels, stride=1, match="zero-pad", p_last: float = 0.5):
        super().__init__(in_channels, out_channels, stride, match)
        _check("stochastic-depth", "p_last", p_last, 0 < p_last <= 1, "in (0, 1]")
        self.p_last = float(p_last)
        self.survival = 1.0

    def init_unit(self, unit) -> None:
        self.survival = survival_probability(unit.index, unit.num_units, self.p_last)

    def computes_branch(self) -> bool:
        # one draw per unit and mini-batch; a closed gate computes nothing (Huang et al., Sec. 3)
        return not self.training or bool(torch.rand(()) < self.survival)

    def branch_term(self, fx):
        return fx if self.training else self.survival * fx


def survival_probability(index: int, num_units: int, p_last: float) -> float:
    """Huang et al.'s linear decay rule, eq. 4: ``p_l = 1 - (l / L)(1 - p_L)``, l = 1..L."""
    return 1.0 - index / num_units * (1.0 - p_last)


@register_shortcut("layerscale", formula="y = h(x) + diag(lambda) F(x), lambda per channel, learnable, init eps",
                   paper="Touvron et al. 2021 (LayerScale, CaiT, arXiv 2103.17239)")
class LayerScale(BranchScale):
    def __init__(self, in_channels, out_channels, stride=1, match="zero-pad", eps: float = None):
        super().__init__(in_channels, out_channels, stride, match)
        ok = eps is None or (isinstance(eps, (int, float)) and not isinstance(eps, bool) and math.isfinite(eps)
                             and eps > 0)
        _check("layerscale", "eps", eps, ok, "a number > 0 (or absent: the paper's rule by depth)")
        self.eps = eps
        self.set_multiplier(1.0 if eps is None else eps, per_channel=True)

    def init_unit(self, unit) -> None:
        if self.eps is None:
            with torch.no_grad():
                self.lam.fill_(layerscale_eps(unit.num_units))


def layerscale_eps(depth: int) -> float:
    """Touvron et al. 2021, Sec. 2: epsilon 0.1 up to depth 18, 1e-5 up to 24, 1e-6 beyond."""
    return 0.1 if depth <= 18 else 1e-5 if depth <= 24 else 1e-6


@register_shortcut("nf", formula="y = h + alpha g f(x / beta), beta the expected std of x; gamma-scaled ReLU",
                   paper="Brock, De & Smith 2021 (NF-ResNet, arXiv 2101.08692)")
class NormFree(BranchScale):
    def __init__(self, in_channels, out_channels, stride=1, match="zero-pad", alpha: float = 0.2,
                 skip_gain: float = 0.0, first_preact: str = "branch"):
        super().__init__(in_channels, out_channels, stride, match)
        _check("nf", "alpha", alpha, alpha > 0, "> 0")
        self.alpha = float(alpha)
        self.first_preact = _first_preact("nf", first_preact)
        self.set_multiplier(skip_gain)

    def branch_term(self, fx):
        return self.alpha * self.lam * fx

    @classmethod
    def init_net(cls, net) -> None:
        _scale_relus(net)
        keep_first_shortcut_raw(net)
        var = 1.0
        for stage in net.stages:
            for j, unit in enumerate(stage):
                beta = math.sqrt(var)
                if len(unit.pre):  # the shortcut takes the pre-activated input: x / beta for both paths
                    unit.pre.append(Multiply(1 / beta))
                else:  # relu(x) / beta = relu(x / beta): the branch alone is scaled
                    unit.residual = nn.Sequential(Multiply(1 / beta), *unit.residual)
                # nf_resnet.py: expected_std is reset after each stage's first block, then grows by alpha^2
                var = (1.0 if j == 0 else var) + unit.shortcut.alpha ** 2
        nn.init.normal_(net.fc.weight, 0.0, 0.01)  # nf_resnet.py: RandomNormal(0.01, 0)
        nn.init.zeros_(net.fc.bias)


FIRST_PREACTS = ("branch", "shared")


def _first_preact(name: str, value: str) -> str:
    _check(name, "first_preact", value, value in FIRST_PREACTS, f"one of {', '.join(FIRST_PREACTS)}")
    return value


def keep_first_shortcut_raw(net) -> None:
    """Where the first unit's shortcut is to take x itself (``first_preact = "branch"``), move its shared ``f^``
    into F.

    The net shares a pre-activation order's ``f^`` between both paths of its first unit (He 2016,
    resnet-pre-act.lua; :class:`ablation.nets.resnet.ResidualUnit`). nfnets' blocks (nf_resnet.py and
    skipinit_resnet.py, ``NFResBlock.__call__``) share it only where the block projects, on a change of
    shape; elsewhere ``shortcut = x``. The first unit of a CIFAR net keeps its shape, so there the reference
    rule gives ``y = x + F(x)`` with ``f^`` inside F. ``first_preact = "shared"`` keeps He 2016's first unit.
    """
    unit = net.units()[0]
    keeps_shape = unit.stride == 1 and unit.in_channels == unit.out_channels
    if unit.preact == "shared" and keeps_shape and unit.shortcut.first_preact == "branch":
        unit.residual = nn.Sequential(*unit.pre, *unit.residual)  # pre's activations do not work in place
        unit.pre = nn.Sequential()
        unit.preact = "branch"


def _scale_relus(module: nn.Module) -> None:
    for name, child in list(module.named_children()):
        if isinstance(child, nn.ReLU):
            setattr(module, name, ScaledReLU())
        else:
            _scale_relus(child)


# --- reading a unit ----------------------------------------------------------------------------


def unit_terms(unit, x) -> dict:
    """One unit's terms on input ``x``, for reading the signal through a net:
    ``input`` x' = pre(x), ``branch`` F(x'), ``shortcut`` h(x') (the shortcut with F = 0), ``sum``
    y = shortcut(x', F(x')) and ``output`` f(y). Run in eval mode for a design that draws (stochastic
    depth, dropout): in training each call draws again."""
    x1 = unit.pre(x)
    fx = unit.residual(x1)
    y = unit.shortcut(x1, unit.shortcut.branch_term(fx))
    # f may work in place (the ReLU after the addition): it gets a copy, so that y stays y
    return {"input": x1, "branch": fx, "shortcut": unit.shortcut(x1, torch.zeros_like(fx)), "sum": y,
            "output": unit.post(y.clone())}
