"""The shortcut registry: every way a residual unit may carry x past its branch.

A residual unit computes ``x_{l+1} = f(y_l)`` with ``y_l`` the combination of the
residual branch ``F(x_l)`` and the shortcut ``h(x_l)``. A shortcut here is the
module that does the combining: it is called as ``shortcut(x, fx)`` and returns
``y``. That lets one interface express the plain sum (``F + x``), the scaled sum
(``lam_f F + lam_s x``), gates that weigh both (``g F + (1 - g) x``) and no skip
at all (``F``).

Register a new shortcut with one decorator, timm-style::

    from ablation import Shortcut, register_shortcut

    @register_shortcut("half-skip", formula="y = F(x) + 0.5 x", paper="(mine)")
    class HalfSkip(Shortcut):
        def forward(self, x, fx):
            return fx + 0.5 * self.match(x)

Its keyword arguments (after the four every shortcut gets) become parameters that
``describe_shortcuts()`` lists and ``build_model(..., **shortcut_args)`` sets.

An installed package registers its shortcuts without ``--plugin`` by naming the module that
holds them as an entry point of the group ``ablation.shortcuts`` (pyproject.toml)::

    [project.entry-points."ablation.shortcuts"]
    my-gates = "my_package.gates"
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F_
from torch import nn

from ..core.errors import ConfigError, unknown_choice
from ..core.names import check_name
from .layers import conv2d

MATCHES = ("zero-pad", "projection")
ENTRY_POINT_GROUP = "ablation.shortcuts"
_BASE_ARGS = ("in_channels", "out_channels", "stride", "match")


@dataclass(frozen=True)
class ShortcutEntry:
    name: str
    cls: type
    formula: str
    paper: str
    params: dict = field(default_factory=dict)  # name -> default
    origin: str = ""  # where a plugin's shortcut comes from (its file or module); empty for ours

    @property
    def where(self) -> str:
        """`` (plugin ORIGIN)`` for a plugin's shortcut, for messages; empty for the built-in ones."""
        return f" (plugin {self.origin})" if self.origin else ""


_REGISTRY: dict[str, ShortcutEntry] = {}
_UNAVAILABLE: dict[str, str] = {}  # name -> why a study's plugin that registers it could not be loaded


def register_shortcut(name: str, *, formula: str = "", paper: str = ""):
    """Class decorator adding a :class:`Shortcut` subclass to the registry under ``name``."""

    def decorate(cls):
        if not (isinstance(cls, type) and issubclass(cls, Shortcut)):
            raise TypeError(f"@register_shortcut({name!r}) needs a subclass of ablation.Shortcut")
        origin = _origin(cls)
        # the name becomes a variant, and so part of file names: safe, and said with the plugin's file
        check_name(name, "shortcut name", f"plugin {origin}" if origin else __name__)
        held = _REGISTRY.get(name)
        # the same class registering again (a module imported twice, a notebook cell run again) takes its place, as
        # does a plugin's class of the same name (a plugin file edited and loaded again); no other class takes a
        # built-in's name, whatever it is called: a run would train it under the built-in's hash
        same = held is not None and (held.cls.__module__, held.cls.__qualname__) == (cls.__module__, cls.__qualname__)
        if held is not None and not same and (not held.origin or held.cls.__qualname__ != cls.__qualname__):
            owner = f"{held.cls.__qualname__}{held.where or ' (built in)'}"
            raise ConfigError(f"shortcut {name!r} is already registered by {owner}; "
                              f"register {cls.__qualname__}{f' (plugin {origin})' if origin else ''} under another name")
        params = {}
        for p in list(inspect.signature(cls.__init__).parameters.values())[1:]:
            if p.name in _BASE_ARGS or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            if p.default is p.empty:
                raise TypeError(f"shortcut {name!r}: parameter {p.name!r} needs a default")
            params[p.name] = p.default
        _REGISTRY[name] = ShortcutEntry(name, cls, formula, paper, params, origin)
        _UNAVAILABLE.pop(name, None)
        cls.shortcut_name = name
        return cls

    return decorate


def _origin(cls) -> str:
    if cls.__module__ == __name__ or cls.__module__.startswith(f"{__name__.split('.')[0]}."):  # ours (nets.modern too)
        return ""
    module = sys.modules.get(cls.__module__)
    return getattr(module, "__file__", None) or cls.__module__


_entry_points_loaded = False


def load_entry_points() -> None:
    """Import, once, every module that installed packages name under the ``ablation.shortcuts`` group."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except SystemExit as e:
            raise ConfigError(f"shortcut plugin {ep.name!r} ({ep.value}, entry point of {ENTRY_POINT_GROUP}) called "
                              f"sys.exit({e.code!r}) while it loaded; a plugin only registers shortcuts") from None
        except ConfigError:
            raise
        except Exception as e:
            raise ConfigError(f"shortcut plugin {ep.name!r} ({ep.value}, entry point of {ENTRY_POINT_GROUP}) failed "
                              f"to load: {type(e).__name__}: {e}") from None


def list_shortcuts() -> list[str]:
    """Names of every registered shortcut, in registration order."""
    load_entry_points()
    return list(_REGISTRY)


def describe_shortcuts() -> list[dict]:
    """One record per shortcut: name, parameters with defaults, formula, paper row."""
    load_entry_points()
    return [
        {"name": e.name, "params": dict(e.params), "formula": e.formula, "paper": e.paper}
        for e in _REGISTRY.values()
    ]


def get_shortcut(name: str) -> ShortcutEntry:
    if name not in _REGISTRY:
        load_entry_points()
    if name not in _REGISTRY:
        if name in _UNAVAILABLE:
            raise ConfigError(_UNAVAILABLE[name])
        raise unknown_choice("shortcut", name, _REGISTRY)
    return _REGISTRY[name]


def mark_unavailable(name: str, reason: str) -> None:
    """Until a plugin registers ``name``, asking for it is ConfigError(``reason``) rather than an unknown name:
    the shortcut of a study whose plugin is missing or changed (:mod:`ablation.nets.plugins`)."""
    if name not in _REGISTRY:
        _UNAVAILABLE[name] = reason


def check_shortcut_args(name: str, args: dict) -> None:
    """Raise ConfigError for arguments the shortcut ``name`` does not take, or of another type than its default."""
    entry = get_shortcut(name)
    for key, value in args.items():
        if key not in entry.params:
            takes = ", ".join(entry.params) or "no parameters"
            raise ConfigError(f"shortcut {name!r} has no parameter {key!r}; it takes: {takes}")
        default = entry.params[key]
        if isinstance(default, bool):
            ok, want = isinstance(value, bool), "true or false"
        elif isinstance(default, (int, float)):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            ok = ok and (isinstance(value, int) or isinstance(default, float))
            want = "a finite number" if isinstance(default, float) else "a whole number"
        elif isinstance(default, str):
            ok, want = isinstance(value, str), "a string"
        else:  # a default of None (or another type) says nothing about what the parameter takes
            ok, want = True, ""
        if not ok:
            raise ConfigError(f"shortcut {name!r}{entry.where}: {key} must be {want}, got {value!r}")


def create_shortcut(name: str, in_channels: int, out_channels: int, stride: int = 1,
                    match: str = "zero-pad", projection_bn: bool = True, **args) -> "Shortcut":
    """Instantiate the registered shortcut ``name`` for one unit.

    ``projection_bn=False`` makes every projection ``W_s x`` of it a bare 1x1 convolution: a
    pre-activation unit's projection follows the unit's shared BN-ReLU and has no BN of its own
    (resnet-1k-layers, resnet-pre-act.lua: ``shortcut:add(Convolution(...))`` alone;
    fb.resnet.torch, models/preresnet.lua, likewise).
    """
    check_shortcut_args(name, args)
    if match not in MATCHES:
        raise unknown_choice("match", match, MATCHES)
    shortcut = get_shortcut(name).cls(in_channels, out_channels, stride, match, **args)
    if not projection_bn:
        drop_projection_bn(shortcut)
    return shortcut


def load_plugin(spec: str) -> None:
    """Import a module (dotted name or path to a ``.py`` file) so that its shortcuts register."""
    path = Path(spec)
    try:
        if spec.endswith(".py"):
            if not path.is_file():
                raise ConfigError(f"plugin file {spec!r} not found")
            mod_name = f"ablation_plugin_{path.stem}"
            loader = importlib.util.spec_from_file_location(mod_name, path)
            module = importlib.util.module_from_spec(loader)
            sys.modules[mod_name] = module
            loader.loader.exec_module(module)
        else:
            importlib.import_module(spec)
    except ModuleNotFoundError as e:
        raise ConfigError(f"cannot import plugin {spec!r}: {e}") from None
    except SystemExit as e:  # else the command would end with the plugin's exit code, having done nothing
        raise ConfigError(f"plugin {spec!r} called sys.exit({e.code!r}) at import; a plugin only registers "
                          f"shortcuts") from None
    except ConfigError:
        raise
    except Exception as e:  # a syntax error or an exception at import: the plugin's fault, said in one line
        where = f" (line {e.lineno})" if isinstance(e, SyntaxError) and e.lineno else ""
        raise ConfigError(f"plugin {spec!r} failed to import{where}: {type(e).__name__}: {e}") from None


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
