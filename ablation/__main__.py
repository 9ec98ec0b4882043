"""``python -m ablation ARCH``: what a network of the catalogue holds, without training it."""

if __name__ == "__main__":
    from .core.errors import interrupt_quietly_while_starting

    interrupt_quietly_while_starting()

from .core.errors import ArgumentParser, ConfigError, run_main
from .model_cli import add_model_options, model_options


def build_parser() -> ArgumentParser:
    ap = ArgumentParser(prog="python -m ablation",
                 description="Print the parameters and forward FLOPs of a network of the catalogue, without "
                             "training it. Example: python -m ablation resnet56 --shortcut exclusive-gate --arg b=-6")
    add_model_options(ap)
    return ap


def main(argv=None) -> int:
    """``python -m ablation ARCH [--shortcut S] [--order O] [--arg k=v]``: parameters and FLOPs."""
    args = build_parser().parse_args(argv)
    return run_main(lambda: _describe(args))


def _describe(args) -> int:
    """Counted from the net's numbers (:mod:`ablation.nets.footprint`): a net too big to build is still described."""
    from .nets.footprint import footprint
    from .nets.models import check_model_args

    options = model_options(args)
    spec = check_model_args(**options)
    try:
        fp = footprint(**options, image=tuple(args.image[1:]))
    except ConfigError as e:  # an image too small for the net's strides and pooling
        raise ConfigError(f"--image {' '.join(map(str, args.image))} does not fit {args.arch}: "
                          f"{str(e).partition(': ')[2]}") from None
    print(f"{args.arch}: {spec.family} {spec.kind}, depth {spec.depth}, units per stage {list(spec.units)}, "
          f"shortcut {args.shortcut}, order {args.order}")
    print(f"parameters {fp.params:,}   forward FLOPs/image {fp.flops:,}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
