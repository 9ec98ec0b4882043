"""What normalises a residual net: BatchNorm, nothing, or scaled weight standardisation.

``norm = "bn"`` is He et al.'s net: a BN after (or, pre-activation, before) every convolution.
``norm = "none"`` removes every BN (stem, units, head, projections), as Fixup (Zhang, Dauphin and Ma
2019), SkipInit (De and Smith 2020) and ReZero without BN run. ``norm = "ws"`` removes every BN too,
and makes every convolution a scaled weight-standardised one (Brock, De and Smith 2021, arXiv
2101.08692, eq. 5; reference deepmind-research nfnets/base.py, ``WSConv2D``)::

    W^_ij = g_i (W_ij - mu_i) / (sigma_i sqrt(N))

with mu_i and sigma_i the mean and std of output channel i's N = fan-in weights, and g_i a learnable
gain that starts at 1; its bias starts at 0. Each output channel of W^ then has mean 0 and variance
g_i^2 / N, so sqrt(N) W^_i has variance g_i^2: a unit-variance input keeps unit variance through a
linear layer. NF-ResNets add their own activation scaling and residual scalars (:mod:`ablation.nets.modern`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..core.errors import unknown_choice
from .layers import conv2d, needs_workaround

NORMS = ("bn", "none", "ws")
DEFAULT_NORM = "bn"
WS_EPS = 1e-4  # floor of N * var, as nfnets/base.py standardize_weight


def check_norm(norm: str) -> str:
    if norm not in NORMS:
        raise unknown_choice("norm", norm, NORMS)
    return norm


def pattern(ops: str, norm: str) -> str:
    """An op pattern such as ``"bn relu conv"`` with its BNs removed unless ``norm`` is ``bn``."""
    if norm == "bn":
        return ops
    return " ".join(op for op in ops.split() if op != "bn")


class WSConv2d(nn.Conv2d):
    """A convolution whose weight is scaled-standardised per output channel before each use (module doc)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True):
        # the bias is always there, as WSConv2D's (it stands in for BN's shift)
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=True)
        self.gain = nn.Parameter(torch.ones(out_channels, 1, 1, 1))
        nn.init.zeros_(self.bias)

    def standardized_weight(self) -> torch.Tensor:
        w = self.weight
        fan_in = w[0].numel()
        mean = w.mean(dim=(1, 2, 3), keepdim=True)
        var = w.var(dim=(1, 2, 3), unbiased=False, keepdim=True)
        return self.gain * (w - mean) * torch.rsqrt(torch.clamp(var * fan_in, min=WS_EPS))

    def forward(self, x):
        weight, stride = self.standardized_weight(), self.stride
        if x.device.type == "cpu" and needs_workaround(self.in_channels, self.kernel_size[0], stride[0]):
            # the same faulty oneDNN kernel as in ablation.nets.layers: subsample, then stride 1
            x, stride = x[:, :, :: stride[0], :: stride[1]], 1
        return F.conv2d(x, weight, self.bias, stride, self.padding)


def conv_factory(norm: str):
    """The convolution constructor of a net under ``norm``: :func:`ablation.nets.layers.conv2d` unless ``ws``."""
    if norm != "ws":
        return conv2d

    def ws_conv(in_channels, out_channels, kernel_size, stride=1, padding=0, bias=False):
        return WSConv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding)

    return ws_conv


def adapt(module: nn.Module, norm: str) -> None:
    """Bring a module built for BN (a shortcut's projection, a gate) to ``norm``, in place.

    ``none`` and ``ws`` drop every BatchNorm inside it; ``ws`` also turns each plain convolution into a
    :class:`WSConv2d` of the same shape (NF-ResNets' projection shortcuts are WS convolutions too).
    """
    if norm == "bn":
        return
    for name, child in list(module.named_children()):
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, nn.Identity())
        elif norm == "ws" and isinstance(child, nn.Conv2d) and not isinstance(child, WSConv2d):
            k, s, p = child.kernel_size[0], child.stride[0], child.padding[0]
            ws = WSConv2d(child.in_channels, child.out_channels, k, s, p)
            if child.bias is not None:  # a gate's bias keeps its b
                ws.bias.data.copy_(child.bias.data)
            setattr(module, name, ws)
        else:
            adapt(child, norm)


def channel_stats(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, variance) of each output channel of a convolution weight, times sqrt(fan-in) for the variance's
    scale: for a :class:`WSConv2d` with gain 1 they are 0 and 1."""
    w = weight.detach().flatten(1) * math.sqrt(weight[0].numel())
    return w.mean(1), w.var(1, unbiased=False)
