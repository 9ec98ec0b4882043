"""ablation: what should a residual network's shortcut be? He et al. 2015 and 2016, reproducible anywhere.

The names below are imported on first use, so that ``python -m ablation.run`` can take over Ctrl-C
before torch loads (an interrupt during start-up then exits 130 without a traceback).
"""

import importlib

from .core.errors import ConfigError

_LAZY = {
    "build_model": "nets.models", "count_flops": "nets.models", "count_params": "nets.models",
    "list_archs": "nets.archs",
    "Shortcut": "nets.shortcut_base", "describe_shortcuts": "nets.registry", "list_shortcuts": "nets.registry",
    "load_plugin": "nets.registry", "register_shortcut": "nets.registry",
    "Study": "api.study", "load": "api.results", "Results": "api.results",
}

__all__ = ["ConfigError", *sorted(_LAZY), "train"]
__version__ = "0.1.0"


def __getattr__(name):
    if name == "train":  # ablation.train(config, out): the module of python -m ablation.train, callable
        return importlib.import_module(".train", __name__)
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_LAZY, "train"])
