"""The depth of a CIFAR net of basic units, resnet{6n+2}: what ``--depth`` and a row's ``depth`` set."""

from __future__ import annotations

from ..core.errors import ConfigError
from ..nets.archs import arch_spec


def check_depth(depth: int, what: str = "depth") -> int:
    """``depth`` if it is 6n+2 with n >= 1 (a CIFAR net of basic units); ``what`` names it in the error."""
    if depth < 8 or (depth - 2) % 6:
        raise ConfigError(f"{what} {depth} is not 6n+2 with n >= 1 (e.g. 8, 14, 20, 32, 44, 56, 110)")
    return depth


def is_cifar_basic(arch: str) -> bool:
    """A CIFAR net of basic units, resnet{6n+2}: the nets whose depth --depth sets."""
    try:
        spec = arch_spec(arch)
    except ConfigError:
        return False
    return spec.family == "cifar" and spec.kind == "basic"
