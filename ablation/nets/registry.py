"""The shortcut registry: the mechanism that names every way a residual unit may carry x past its branch.

The designs themselves are elsewhere: the interface in :mod:`ablation.nets.shortcut_base`, the papers'
shortcuts in :mod:`ablation.nets.shortcuts`, the designs after 2016 in :mod:`ablation.nets.modern`; the
built-in ones register in one place, :mod:`ablation.nets` (its ``__init__``), when the package is imported.

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

from ..core.errors import ConfigError, unknown_choice
from ..core.names import check_name
from .shortcut_base import MATCHES, Shortcut, drop_projection_bn

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
