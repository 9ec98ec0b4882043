"""ablation: what should a residual network's shortcut be? He et al. 2015 and 2016, reproducible anywhere."""

from .errors import ConfigError
from .models import build_model, count_flops, count_params, list_archs
from .shortcuts import Shortcut, describe_shortcuts, list_shortcuts, load_plugin, register_shortcut

__all__ = [
    "ConfigError", "Shortcut", "build_model", "count_flops", "count_params", "describe_shortcuts",
    "list_archs", "list_shortcuts", "load_plugin", "register_shortcut",
]
__version__ = "0.1.0"
