"""``python -m ablation ARCH``: what a network of the catalogue holds, without training it."""

if __name__ == "__main__":
    from .core.errors import interrupt_quietly_while_starting

    interrupt_quietly_while_starting()

from .core.errors import ArgumentParser, ConfigError, run_main


def build_parser() -> ArgumentParser:
    ap = ArgumentParser(prog="python -m ablation",
                 description="Print the parameters and forward FLOPs of a network of the catalogue, without "
                             "training it. Example: python -m ablation resnet56 --shortcut exclusive-gate --arg b=-6")
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
    return ap


def main(argv=None) -> int:
    """``python -m ablation ARCH [--shortcut S] [--order O] [--arg k=v]``: parameters and FLOPs."""
    args = build_parser().parse_args(argv)
    return run_main(lambda: _describe(args))


def _describe(args) -> int:
    from .training.config import parse_overrides
    from .nets.models import build_model, count_flops, count_params
    from .nets.shortcuts import load_plugin

    for plugin in args.plugin:
        load_plugin(plugin)
    if any(v < 1 for v in args.image):
        raise ConfigError(f"--image needs three sizes >= 1 (channels, height, width), got {' '.join(map(str, args.image))}")
    kwargs = parse_overrides(args.arg, "--arg KEY=VALUE")
    model = build_model(args.arch, args.shortcut, args.order, args.classes, args.image[0], args.width,
                        args.match, **kwargs)
    try:
        flops = count_flops(model, tuple(args.image))
    except RuntimeError as e:  # an image too small for the net's strides and pooling
        raise ConfigError(f"--image {' '.join(map(str, args.image))} does not fit {args.arch}: "
                          f"{str(e).splitlines()[0]}") from None
    spec = model.spec
    print(f"{args.arch}: {spec.family} {spec.kind}, depth {spec.depth}, units per stage {list(spec.units)}, "
          f"shortcut {args.shortcut}, order {args.order}")
    print(f"parameters {count_params(model):,}   forward FLOPs/image {flops:,}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
