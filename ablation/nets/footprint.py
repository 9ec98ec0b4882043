"""What a network costs before it exists: parameters, forward FLOPs and activations, from its numbers.

A net of the catalogue repeats one unit: stage s holds a first unit (which may change shape) and
n_s - 1 copies of a second one. So a *skeleton* of the same net with at most two units per stage,
made on the meta device (shapes only, no memory), holds every kind of unit once; each total is
the skeleton's plus (n_s - 2) times its second unit of stage s. That takes milliseconds at any
depth (resnet600002 included) and counts exactly what :func:`ablation.nets.models.build_model`
would build, for every shortcut, order, norm and plugin whose unit does not grow with depth.

Activations are counted per image as the elements of every output the forward pass makes
(every leaf module's and every shortcut's; an in-place ReLU's costs nothing), the input included:
what autograd keeps for the backward pass is of that order (tests/test_footprint.py compares it
with what a real training step keeps, within a factor stated there).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, replace

import torch
from torch import nn

from ..core.errors import ConfigError
from .archs import arch_spec
from .resnet import ResNet
from .norms import DEFAULT_NORM


@dataclass(frozen=True)
class Footprint:
    """Per image, except ``params``: the net's size, its forward FLOPs and the activations it makes."""

    params: int
    flops: int  # forward FLOPs of one image (2 per multiply-add), as torch's FlopCounterMode counts them
    activations: int  # elements of the tensors one image's forward pass makes
    largest: int  # elements of the largest single tensor of one image (what evaluation holds at once)
    last_spatial: int  # H x W of the last feature map: BatchNorm there sees batch x this values per channel
    has_bn: bool


def footprint(arch: str, shortcut: str = "identity", order: str = "original", num_classes: int = 10,
              in_channels: int = 3, width: int | None = None, match: str = "zero-pad",
              image: tuple[int, int] = (32, 32), *, bottleneck_stride: str = "3x3", fc_bias_init: str = "uniform",
              norm: str = DEFAULT_NORM, **shortcut_args) -> Footprint:
    """The :class:`Footprint` of the net :func:`ablation.nets.models.build_model` makes from the same arguments
    (validated there first), on images of ``image`` = (H, W); ConfigError if the image is too small for it."""
    options = json.dumps([bottleneck_stride, fc_bias_init, norm, sorted(shortcut_args.items())], default=repr)
    return _cached(arch, shortcut, order, num_classes, in_channels, width, match, tuple(image), options)


@functools.lru_cache(maxsize=256)
def _cached(arch, shortcut, order, num_classes, in_channels, width, match, image, options) -> Footprint:
    bottleneck_stride, fc_bias_init, norm, args = json.loads(options)
    spec = arch_spec(arch)
    skeleton_spec = replace(spec, units=tuple(min(n, 2) for n in spec.units))
    with torch.device("meta"):
        net = ResNet(skeleton_spec, shortcut, order, num_classes, in_channels, width or spec.width, match,
                     dict(args), bottleneck_stride, fc_bias_init, norm)
    net.eval()  # every branch computed (a design that drops branches in training makes no more than this)
    names = {m: n for n, m in net.named_modules()}
    made: dict[str, int] = {}
    largest = [in_channels * image[0] * image[1]]

    def unit_of(name: str) -> str:
        parts = name.split(".")
        return ".".join(parts[:3]) if parts[0] == "stages" and len(parts) >= 3 else ""

    def count(module, inputs, out):
        if not torch.is_tensor(out) or getattr(module, "inplace", False):
            return
        n = out[0].numel()
        largest[0] = max(largest[0], n)
        key = unit_of(names[module])
        made[key] = made.get(key, 0) + n

    watched = [m for n, m in net.named_modules() if n and (not list(m.children()) or n.endswith(".shortcut"))]
    hooks = [m.register_forward_hook(count) for m in watched]
    last = []
    hooks.append(net.stages.register_forward_hook(lambda module, inputs, out: last.append(out.shape)))
    from torch.utils.flop_counter import FlopCounterMode

    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            net(torch.zeros(1, in_channels, *image, device="meta"))
    except RuntimeError as e:  # an image too small for the net's strides and pooling
        raise ConfigError(f"images of {image[0]}x{image[1]} do not fit {arch}: {str(e).splitlines()[0]}") from None
    finally:
        for h in hooks:
            h.remove()
    flops_of = {name.partition(".")[2]: sum(ops.values()) for name, ops in counter.get_flop_counts().items()}
    params = sum(p.numel() for p in net.parameters())
    flops = int(counter.get_total_flops())
    activations = in_channels * image[0] * image[1] + sum(made.values())
    for s, n in enumerate(spec.units):
        if n > 2:  # the skeleton's second unit of stage s stands for n - 1 units
            unit = f"stages.{s}.1"
            params += (n - 2) * sum(p.numel() for p in net.stages[s][1].parameters())
            flops += (n - 2) * flops_of.get(unit, 0)
            activations += (n - 2) * made.get(unit, 0)
    has_bn = any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    return Footprint(params, flops, activations, largest[0], last[0][2] * last[0][3], has_bn)
