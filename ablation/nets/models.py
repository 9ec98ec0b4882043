"""The network builder: what :func:`build_model` takes, checked before anything is built, and the net it builds.

The architectures are a table (:mod:`ablation.nets.archs`), the modules a net is made of are
:mod:`ablation.nets.resnet` (its docstring says what a unit computes for each order), and the shortcuts come
from the registry (:mod:`ablation.nets.registry`), where the built-in designs register in one place
(:mod:`ablation.nets`).
"""

from __future__ import annotations

import torch
from torch import nn

from ..core.errors import ConfigError, unknown_choice
from .archs import ArchSpec, arch_spec
from .norms import DEFAULT_NORM, check_norm
from .registry import check_shortcut_args, create_shortcut, get_shortcut
from .resnet import BOTTLENECK_STRIDES, FC_BIAS_INITS, ORDERS, ResNet


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

