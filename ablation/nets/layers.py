"""Convolutions built through one factory, so that a kernel known to misbehave is routed around once.

oneDNN 3.12 (inside torch 2.14.1) corrupts the heap on CPUs whose best ISA is AVX2 (AMD EPYC,
or any CPU under ``ONEDNN_MAX_CPU_ISA=AVX2``) in the backward pass of a 1x1 convolution with
stride 2 and fewer than 8 input channels, in channels_last: the process aborts ("double free or
corruption") or hangs. With 8 or more input channels, or in NCHW, the same convolution is
correct. Such convolutions (projection shortcuts and gates at a stage transition of a net
narrower than 8) are therefore computed as a subsampling and a 1x1 convolution of stride 1,
which is safe; their parameters and results are unchanged.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

_MIN_SAFE_CHANNELS = 8


class SubsampledConv2d(nn.Conv2d):
    """A 1x1 convolution with stride s computed, on the CPU, as x[:, :, ::s, ::s] then a 1x1 of stride 1.

    The same weights and the same numbers (each output is the same dot product over channels);
    only the faulty kernel is avoided. NCHW alone does not avoid it: a 1x1 weight is laid out
    both ways at once, and torch then still picks the channels_last kernel.
    """

    def forward(self, x):
        if x.device.type != "cpu":
            return super().forward(x)
        sh, sw = self.stride
        return F.conv2d(x[:, :, ::sh, ::sw], self.weight, self.bias)


def needs_workaround(in_channels: int, kernel_size: int, stride: int) -> bool:
    """Whether oneDNN's AVX2 kernel for this shape is the one that corrupts memory."""
    return kernel_size == 1 and stride > 1 and in_channels < _MIN_SAFE_CHANNELS


def conv2d(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
           bias: bool = False) -> nn.Conv2d:
    """``nn.Conv2d``, or :class:`SubsampledConv2d` for the shapes of :func:`needs_workaround`."""
    cls = SubsampledConv2d if needs_workaround(in_channels, kernel_size, stride) else nn.Conv2d
    return cls(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias)
