"""The papers' shortcuts: He 2015's options A, B and C, He 2016 Table 1's scalings, gates, dropout, and no shortcut.

Each registers under its name with :func:`ablation.nets.registry.register_shortcut`, as a plugin's would;
:mod:`ablation.nets` imports this module and :mod:`ablation.nets.modern`, so that every built-in design is
registered wherever the package is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F_
from torch import nn

from ..core.errors import ConfigError
from .layers import conv2d
from .registry import register_shortcut
from .shortcut_base import Shortcut, projection


# --- the papers' variants -----------------------------------------------------


@register_shortcut("identity", formula="y = F(x) + x", paper="He 2016 Table 1: original (6.61)")
class Identity(Shortcut):
    """``y = F(x) + h(x)`` with h the shape-matched x; options A, B and C differ only in h."""

    def forward(self, x, fx):
        return fx + self.match(x)


@register_shortcut("zero-pad", formula="y = F(x) + [x, 0] (subsampled where shapes change)",
                   paper="He 2015 option A (ImageNet-34 top-1 25.03)")
class ZeroPadShortcut(Identity):
    def __init__(self, in_channels, out_channels, stride=1, match="zero-pad"):
        super().__init__(in_channels, out_channels, stride, "zero-pad")


@register_shortcut("projection", formula="y = F(x) + W_s x where shapes change, else + x",
                   paper="He 2015 option B (24.52)")
class Projection(Identity):
    def __init__(self, in_channels, out_channels, stride=1, match="projection"):
        super().__init__(in_channels, out_channels, stride, "projection")


@register_shortcut("projection-all", formula="y = F(x) + W_s x on every unit",
                   paper="He 2015 option C (24.19); He 2016 Table 1: 1x1 conv (12.22)")
class ProjectionAll(Identity):
    def __init__(self, in_channels, out_channels, stride=1, match="projection", bn: bool = True):
        super().__init__(in_channels, out_channels, stride, match)
        self.match = projection(in_channels, out_channels, stride, bn=bn)


@register_shortcut("scale", formula="y = lam_f F(x) + lam_s x",
                   paper="He 2016 Table 1: constant scaling (lam_s=0.5: fail; both 0.5: 12.35)")
class Scale(Shortcut):
    def __init__(self, in_channels, out_channels, stride=1, match="zero-pad",
                 lam_s: float = 0.5, lam_f: float = 1.0):
        super().__init__(in_channels, out_channels, stride, match)
        for key, lam in (("lam_s", lam_s), ("lam_f", lam_f)):
            if not lam >= 0:
                raise ConfigError(f"shortcut 'scale': {key} must be >= 0, got {lam}")
        self.lam_s, self.lam_f = float(lam_s), float(lam_f)

    def forward(self, x, fx):
        return self.lam_f * fx + self.lam_s * self.match(x)


class _Gate(Shortcut):
    """``g(x) = sigmoid(W_g x + b_g)`` from a 1x1 conv on the unit input, one gate per channel and pixel."""

    def __init__(self, in_channels, out_channels, stride=1, match="zero-pad", b: float = 0.0):
        super().__init__(in_channels, out_channels, stride, match)
        self.gate = conv2d(in_channels, out_channels, 1, stride=stride, bias=True)
        self.b = float(b)
        nn.init.constant_(self.gate.bias, self.b)
        self._gate_mean = None

    @property
    def gate_mean(self) -> float | None:
        """Mean of g over the last batch (read lazily: converting each step would sync the GPU)."""
        return None if self._gate_mean is None else float(self._gate_mean)

    def g(self, x):
        g = torch.sigmoid(self.gate(x))
        self._gate_mean = g.detach().mean()
        return g


@register_shortcut("exclusive-gate", formula="y = g(x) F(x) + (1 - g(x)) x, g = sigmoid(W_g x + b)",
                   paper="He 2016 Table 1: exclusive gating (b=0: fail, b=-6: 8.70, b=-7: 9.81)")
class ExclusiveGate(_Gate):
    def forward(self, x, fx):
        g = self.g(x)
        return g * fx + (1 - g) * self.match(x)


@register_shortcut("shortcut-gate", formula="y = F(x) + (1 - g(x)) x, g = sigmoid(W_g x + b)",
                   paper="He 2016 Table 1: shortcut-only gating (b=0: 12.86, b=-6: 6.91)")
class ShortcutGate(_Gate):
    def forward(self, x, fx):
        return fx + (1 - self.g(x)) * self.match(x)


@register_shortcut("dropout", formula="y = F(x) + m * x, m ~ Bernoulli(1 - p) per element; rescale: m / (1 - p)",
                   paper="He 2016 Table 1: dropout shortcut p=0.5 (fail)")
class Dropout(Shortcut):
    """Dropout on the shortcut's output (He 2016, Sec. 3.1, Fig. 2(f)), in one of two readings.

    He 2016: dropout "statistically imposes a scale of lambda with an expectation of 0.5 on the
    shortcut", i.e. ``h(x) = m x`` with ``E[m] = 1 - p``: the mask alone (``rescale=False``), and
    at evaluation the expectation ``(1 - p) x``. ``rescale=True`` is inverted dropout
    (``F.dropout``): kept values are divided by ``1 - p``, so ``E[h(x)] = x`` and evaluation
    passes ``x``. Torch7's and Caffe's dropout layers rescale by default (nn/Dropout.lua: ``v2``
    unless asked for v1, ``noise:div(1-p)``; Caffe dropout_layer.cpp: ``scale_ = 1 / (1 - threshold_)``),
    so which reading the authors ran is not certain (unverified); the paper's wording is
    ``rescale=False``.
    """

    def __init__(self, in_channels, out_channels, stride=1, match="zero-pad", p: float = 0.5,
                 rescale: bool = True):
        super().__init__(in_channels, out_channels, stride, match)
        if not 0 <= p < 1:
            raise ConfigError(f"shortcut 'dropout': p must be in [0, 1), got {p}")
        if not isinstance(rescale, bool):
            raise ConfigError(f"shortcut 'dropout': rescale must be true or false, got {rescale!r}")
        self.p, self.rescale = float(p), rescale

    def forward(self, x, fx):
        x = self.match(x)
        if self.rescale:
            return fx + F_.dropout(x, self.p, self.training)
        if not self.training:
            return fx + (1 - self.p) * x
        keep = torch.empty_like(x).bernoulli_(1 - self.p)
        return fx + keep * x


@register_shortcut("plain", formula="y = F(x)  (no shortcut: the plain net)",
                   paper="He 2015 plain nets; He 2016 Table 1: lam_s=0 (fail)")
class Plain(Shortcut):
    def __init__(self, in_channels, out_channels, stride=1, match="zero-pad"):
        super().__init__(in_channels, out_channels, stride, match)
        self.match = None  # the plain net has no path for x, so no parameters either

    def forward(self, x, fx):
        return fx
