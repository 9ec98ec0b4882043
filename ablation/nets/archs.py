"""The architecture table: the names a network may have (torchvision's ImageNet nets, the CIFAR nets of
He 2015 and 2016, and any CIFAR depth ``resnet{6n+2}``), each to its kind, units per stage and width.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..core.errors import ConfigError

IMAGENET = {  # name -> (kind, units per stage), as torchvision
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet101": ("bottleneck", (3, 4, 23, 3)),
    "resnet152": ("bottleneck", (3, 8, 36, 3)),
}
CIFAR_BOTTLENECK = ("resnet164", "resnet1001")  # the pre-activation paper's names
NAMED_CIFAR = ("resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "resnet1202")
EXPANSION = {"basic": 1, "bottleneck": 4}


@dataclass(frozen=True)
class ArchSpec:
    name: str
    family: str  # "cifar" | "imagenet"
    kind: str  # "basic" | "bottleneck"
    units: tuple  # units per stage
    width: int  # default first-stage width

    @property
    def depth(self) -> int:
        return 2 + sum(self.units) * (3 if self.kind == "bottleneck" else 2)


def list_archs() -> list[str]:
    """The named architectures. Any ``resnet{6n+2}`` (basic) or ``resnet{9n+2}b`` (bottleneck) works too."""
    return [*NAMED_CIFAR, *CIFAR_BOTTLENECK, *IMAGENET]


def arch_spec(arch: str) -> ArchSpec:
    """Parse an architecture name; ImageNet names (resnet18/34/50/101/152) take precedence."""
    if arch in IMAGENET:
        kind, units = IMAGENET[arch]
        return ArchSpec(arch, "imagenet", kind, units, 64)
    m = re.fullmatch(r"resnet(\d+)(b?)", str(arch))
    valid = "; or any resnet{6n+2} (basic) / resnet{9n+2}b (bottleneck)"
    if not m:
        raise ConfigError(f"unknown arch {arch!r}; valid: {', '.join(list_archs())}{valid}")
    depth, bottleneck = int(m.group(1)), bool(m.group(2)) or arch in CIFAR_BOTTLENECK
    per, rule = (9, "9n+2") if bottleneck else (6, "6n+2")
    if depth < per + 2 or (depth - 2) % per:
        raise ConfigError(f"depth {depth} of {arch!r} is not {rule} with n >= 1 "
                          f"(e.g. {', '.join(str(per * n + 2) for n in (1, 2, 3, 9))})")
    n = (depth - 2) // per
    return ArchSpec(arch, "cifar", "bottleneck" if bottleneck else "basic", (n, n, n), 16)
