"""The command-line options that name one network, shared by every command that builds one.

``python -m ablation ARCH`` (what a net holds) and ``python -m ablation.signal ARCH`` (its signal
propagation) take the same ``ARCH --shortcut S --order O --match M --width W --classes K
--image C H W --arg key=value --plugin FILE``; this module adds them to a parser and builds the
net they describe, so that the two commands cannot drift apart.
"""

from __future__ import annotations

import argparse

from .core.errors import ConfigError


def add_model_options(ap: argparse.ArgumentParser) -> None:
    """The positional ARCH and the options of :func:`ablation.nets.models.build_model`, with their help."""
    ap.add_argument("arch", help="resnet{6n+2} (e.g. resnet20, resnet110), resnet164, resnet1001, resnet{9n+2}b, "
                                 "or resnet18/34/50/101/152 (ImageNet layout)")
    ap.add_argument("--shortcut", default="identity", help="a registered shortcut (python -m ablation.run --list); "
                                                           "default identity")
    ap.add_argument("--order", default="original", help="where BN and ReLU sit in the unit: original, "
                    "bn-after-add, relu-before-add, relu-preact, full-preact (default original)")
    ap.add_argument("--match", default="zero-pad", help="x where a unit changes shape: zero-pad (option A, "
                                                        "default) or projection (option B)")
    ap.add_argument("--width", type=int, help="first-stage width (default 16 for CIFAR nets, 64 for ImageNet ones)")
    ap.add_argument("--classes", type=int, default=10, help="output classes (default 10)")
    ap.add_argument("--image", type=int, nargs=3, default=(3, 32, 32), metavar=("C", "H", "W"),
                    help="input channels, height and width (default 3 32 32)")
    ap.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE",
                    help="a shortcut parameter, e.g. --arg b=-6 (repeatable)")
    ap.add_argument("--plugin", action="append", default=[], metavar="MODULE_OR_FILE",
                    help="a module or .py file that registers shortcuts (repeatable)")


def shortcut_args(args) -> dict:
    """The ``--arg key=value`` pairs as the shortcut's keyword arguments (plugins loaded first)."""
    from .training.config import parse_overrides
    from .nets.registry import load_plugin

    from .nets.models import check_builder_keys

    for plugin in args.plugin:
        load_plugin(plugin)
    kwargs = parse_overrides(args.arg, "--arg KEY=VALUE")
    # the options with a flag of their own; the keyword-only ones (norm, ...) may come through --arg
    flags = {"arch": "ARCH", "shortcut": "--shortcut", "order": "--order", "num_classes": "--classes",
             "in_channels": "--image", "width": "--width", "match": "--match"}
    check_builder_keys(kwargs, "--arg", lambda k: f"use {flags[k]}", tuple(flags))
    return kwargs


def model_options(args) -> dict:
    """The keyword arguments of :func:`ablation.nets.models.build_model` that the parsed options give."""
    if any(v < 1 for v in args.image):
        raise ConfigError(f"--image needs three sizes >= 1 (channels, height, width), got {' '.join(map(str, args.image))}")
    kwargs = shortcut_args(args)
    return {"arch": args.arch, "shortcut": args.shortcut, "order": args.order, "num_classes": args.classes,
            "in_channels": args.image[0], "width": args.width, "match": args.match, **kwargs}


def build_from_options(args, seed: int):
    """The network the parsed options describe, as ``seed`` draws it (checked first), or ConfigError naming the
    bad option."""
    from .nets.models import check_model_args, seeded_model

    options = model_options(args)
    check_model_args(**options)
    return seeded_model(seed, **options)
