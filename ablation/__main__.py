"""``python -m ablation ARCH``: what a network of the catalogue holds, without training it."""

import argparse
import sys

from .config import parse_overrides
from .errors import ConfigError
from .models import build_model, count_flops, count_params
from .shortcuts import load_plugin


def main(argv=None) -> int:
    """``python -m ablation ARCH [--shortcut S] [--order O] [--arg k=v]``: parameters and FLOPs."""
    ap = argparse.ArgumentParser(prog="python -m ablation", description=main.__doc__)
    ap.add_argument("arch")
    ap.add_argument("--shortcut", default="identity")
    ap.add_argument("--order", default="original")
    ap.add_argument("--match", default="zero-pad")
    ap.add_argument("--width", type=int)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--image", type=int, nargs=3, default=(3, 32, 32), metavar=("C", "H", "W"))
    ap.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE", help="shortcut parameter")
    ap.add_argument("--plugin", action="append", default=[], help="module or .py file registering shortcuts")
    args = ap.parse_args(argv)
    try:
        for plugin in args.plugin:
            load_plugin(plugin)
        kwargs = parse_overrides(args.arg, "--arg KEY=VALUE")
        model = build_model(args.arch, args.shortcut, args.order, args.classes, args.image[0], args.width,
                            args.match, **kwargs)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    spec = model.spec
    print(f"{args.arch}: {spec.family} {spec.kind}, depth {spec.depth}, units per stage {list(spec.units)}, "
          f"shortcut {args.shortcut}, order {args.order}")
    print(f"parameters {count_params(model):,}   forward FLOPs/image {count_flops(model, tuple(args.image)):,}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
