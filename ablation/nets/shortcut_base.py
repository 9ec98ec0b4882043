"""What every shortcut is: the :class:`Shortcut` base class, and how h(x) matches the branch's shape.

A residual unit computes ``x_{l+1} = f(y_l)`` with ``y_l`` the combination of the
residual branch ``F(x_l)`` and the shortcut ``h(x_l)``. A shortcut here is the
module that does the combining: it is called as ``shortcut(x, fx)`` and returns
``y``. That lets one interface express the plain sum (``F + x``), the scaled sum
(``lam_f F + lam_s x``), gates that weigh both (``g F + (1 - g) x``) and no skip
at all (``F``). Where the unit changes shape, ``self.match(x)`` brings x to the branch's
shape: zero-padding (He 2015 option A) or a projection (option B).
"""

from __future__ import annotations

import torch.nn.functional as F_
from torch import nn

from .layers import conv2d

MATCHES = ("zero-pad", "projection")


# --- shape matching: what h(x) is where the unit changes shape ---------------


class ZeroPad(nn.Module):
    """He 2015 option A: subsample by the stride, append zero channels. No parameters."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.extra, self.stride = out_channels - in_channels, stride

    def forward(self, x):
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F_.pad(x, (0, 0, 0, 0, 0, self.extra)) if self.extra else x


class ProjectionBN(nn.Sequential):
    """``W_s x`` followed by BN: the projection of a post-activation unit."""


def projection(in_channels: int, out_channels: int, stride: int, bn: bool = True) -> nn.Module:
    """He 2015 option B/C: ``W_s x`` as a 1x1 convolution, with BN after it where ``bn``.

    With BN as He 2015's released ImageNet models (KaimingHe/deep-residual-networks,
    prototxt/ResNet-101-deploy.prototxt: res4a_branch1, then bn4a_branch1), fb.resnet.torch
    (models/resnet.lua) and torchvision.
    """
    conv = conv2d(in_channels, out_channels, 1, stride=stride)
    return ProjectionBN(conv, nn.BatchNorm2d(out_channels)) if bn else conv


def drop_projection_bn(module: nn.Module) -> None:
    """Replace, in place, every :class:`ProjectionBN` inside ``module`` by its bare convolution."""
    for name, child in list(module.named_children()):
        if isinstance(child, ProjectionBN):
            setattr(module, name, child[0])
        else:
            drop_projection_bn(child)


def matcher(in_channels: int, out_channels: int, stride: int, match: str) -> nn.Module:
    """Identity where shapes agree; else zero-pad or projection as ``match`` says."""
    if in_channels == out_channels and stride == 1:
        return nn.Identity()
    if in_channels > out_channels:
        return projection(in_channels, out_channels, stride)  # zero-padding cannot shrink channels
    if match == "zero-pad":
        return ZeroPad(in_channels, out_channels, stride)
    return projection(in_channels, out_channels, stride)


class Shortcut(nn.Module):
    """Base class. ``self.match(x)`` is x brought to the branch's shape (option A or B)."""

    shortcut_name = "?"
    gate_mean = None  # gated shortcuts override this with the mean of g
    # parameter groups the design names, each with a learning rate of its own through the config key
    # lr_groups (Fixup's scalars): group name -> what it holds. :meth:`group_parameters` selects them
    param_groups: dict = {}

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, match: str = "zero-pad"):
        super().__init__()
        self.match = matcher(in_channels, out_channels, stride, match)

    def forward(self, x, fx):  # pragma: no cover - abstract
        """``y``, the combination of the unit's input ``x`` and its branch term ``fx`` (None where F was left out)."""
        raise NotImplementedError

    # Hooks through which a design adds to its unit and its net (ablation.nets.modern); each does nothing here.

    def computes_branch(self) -> bool:
        """Asked before every forward pass of the unit: False leaves F out, and ``forward`` gets ``fx=None``."""
        return True

    def branch_term(self, fx):
        """What the unit adds of its branch, ``lam F`` for a design that scales F; ``forward`` gets this as ``fx``.

        Computed once per pass by the unit, which also shows it to its tap; F itself here.
        """
        return fx

    def init_unit(self, unit) -> None:
        """Run once per unit after the network's common initialisation (the unit knows ``index``, ``num_units``)."""

    @classmethod
    def init_net(cls, net) -> None:
        """Run once per network, after every unit's :meth:`init_unit`."""

    @classmethod
    def group_parameters(cls, net, group: str) -> list:
        """The parameters of ``net`` in the design's group ``group``, one of :attr:`param_groups`."""
        return []

    def extra_repr(self):
        return self.shortcut_name
