"""The signal command: print (or write as CSV) how one network propagates a batch, unit by unit.

    python -m ablation.signal resnet110 --shortcut scale --arg lam_s=0.5 [--zero-branches]

The command line of :mod:`ablation.nets.signal`, which says what is measured and how.
"""

from __future__ import annotations

if __name__ == "__main__":
    from .core.errors import interrupt_quietly_while_starting

    interrupt_quietly_while_starting()

import sys
import time

import torch

from .core.errors import ArgumentParser, ConfigError, run_main
from .nets.signal import UNIT_SIGNAL_FIELDS, gaussian_batch, measure, summary_lines, table_lines, zero_branches


def build_parser() -> ArgumentParser:
    from .model_cli import add_model_options

    ap = ArgumentParser(prog="python -m ablation.signal",
                        description="Signal propagation of a network at initialisation, per residual unit: forward "
                                    "channel statistics of each unit's output and branch (Brock et al. 2021), "
                                    "the backward ||dL/dx_l|| through the loss (He 2016 eq. 5) and ||dP/dx_l|| from "
                                    "a fixed random direction at the last unit (no head), from one batch of "
                                    "Gaussian images. "
                                    "Example: python -m ablation.signal resnet110 --shortcut scale --arg lam_s=0.5")
    add_model_options(ap)
    ap.add_argument("--zero-branches", action="store_true",
                    help="start every residual branch at zero (the last BN of F with gamma = 0)")
    ap.add_argument("--batch", type=int, default=32, help="images in the batch (default 32)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the weights, the images, the labels and the random "
                    "direction of the backward without the head (default 0)")
    ap.add_argument("--eval", action="store_true", help="BN on its running statistics (default: the batch's)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads on the CPU (default 1: faster than 2 on a shared 2-core machine)")
    ap.add_argument("--all", action="store_true", help="print every unit (default: about 20 rows)")
    ap.add_argument("--csv", metavar="PATH", help="also write every unit's record as CSV")
    ap.add_argument("--plot", metavar="PATH", help="also draw the curves (a .png or .svg file)")
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run_main(lambda: _signal(args))


def _signal(args) -> int:
    from .model_cli import build_from_options

    if args.batch < 2:
        raise ConfigError(f"--batch needs at least 2 images (a variance over the batch), got {args.batch}")
    for opt, path in (("--csv", args.csv), ("--plot", args.plot)):
        if path and (path.endswith("/") or (opt == "--plot" and not path.endswith((".png", ".svg")))):
            raise ConfigError(f"{opt} needs a file name{' ending in .png or .svg' if opt == '--plot' else ''}, "
                              f"got {path!r}")
    if args.threads < 1:
        raise ConfigError(f"--threads needs a whole number >= 1, got {args.threads}")
    # one thread: on the 2-core machine this was measured on, shared with other work, resnet110 took
    # 3.5 s on one thread and 37 s on two (these small convolutions gain little from a second thread)
    torch.set_num_threads(args.threads)
    check_fits(args)
    model = build_from_options(args, args.seed)
    if args.zero_branches:
        zero_branches(model)
    x, y = gaussian_batch(args.batch, tuple(args.image), args.classes, args.seed)
    start = time.perf_counter()
    try:
        recs = measure(model, x, y, train=not args.eval, probe_seed=args.seed)
    except RuntimeError as e:  # an image too small for the net's strides
        raise ConfigError(f"--image {' '.join(map(str, args.image))} does not fit {args.arch}: "
                          f"{str(e).splitlines()[0]}") from None
    seconds = time.perf_counter() - start
    what = ", ".join(f"{k}={v}" for k, v in (("shortcut", args.shortcut), ("order", args.order),
                                              ("match", args.match), *(a.split("=", 1) for a in args.arg)))
    print(f"{args.arch} ({what}){', zero-initialised branches' if args.zero_branches else ''}: "
          f"{len(recs)} units, batch {args.batch} of {'x'.join(map(str, args.image))} Gaussian images, "
          f"{'eval' if args.eval else 'train'}-mode BN, {seconds:.2f} s")
    print("\n".join(table_lines(recs, 1 if args.all else max(1, len(recs) // 20))))
    print("(* a transition: a unit that changes the shape, or applies a pre-activation before its split)")
    print("\n".join(summary_lines(recs)))
    if args.csv:
        import pandas as pd

        from .core.files import write_atomic

        write_atomic(args.csv, pd.DataFrame(recs, columns=list(UNIT_SIGNAL_FIELDS)).to_csv(index=False))
        print(f"wrote {args.csv}")
    if args.plot:
        from .reporting.signal_plots import plot_one

        plot_one(recs, args.plot, f"{args.arch}, {what}{', zero branches' if args.zero_branches else ''}")
        print(f"wrote {args.plot}")
    return 0


def check_fits(args) -> None:
    """ConfigError, before the net is built, where one pass of its batch exceeds this machine's memory: the estimate
    comes from the net's numbers (:mod:`ablation.nets.footprint`), as ``python -m ablation ARCH`` counts them."""
    from .model_cli import model_options
    from .nets.footprint import footprint
    from .nets.models import check_model_args
    from .training.feasibility import check_pass_fits

    options = model_options(args)
    check_model_args(**options)
    try:
        fp = footprint(**options, image=tuple(args.image[1:]))
    except ConfigError as e:  # an image too small for the net's strides and pooling
        raise ConfigError(f"--image {' '.join(map(str, args.image))} does not fit {args.arch}: "
                          f"{str(e).partition(': ')[2]}") from None
    check_pass_fits(fp, args.batch, args.arch)


if __name__ == "__main__":
    sys.exit(main())
