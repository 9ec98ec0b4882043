"""The signal-ladder command: measure and draw the signal propagation of an experiment's rows at every depth.

    python -m ablation.signal_ladder OUT [--experiment modern] [--archs resnet20,resnet110] [--batch 16] [--plots-only]

The command line of :mod:`ablation.reporting.signal_ladder`, which says what is measured and written.
"""

from __future__ import annotations

if __name__ == "__main__":
    from .core.errors import interrupt_quietly_while_starting

    interrupt_quietly_while_starting()

import sys
from pathlib import Path

from .core.errors import ArgumentParser, ConfigError, run_main
from .reporting.signal_ladder import INITS, LADDER, LADDER_CSV, UNIT_KEYS, ladder_summary, read_ladder, run_ladder


def experiment_rows(experiment: str = "identity_mappings") -> tuple[str, list[tuple[str, dict]]]:
    """The experiment's title and, per row, (name, what the row sets of its unit: :data:`UNIT_KEYS`)."""
    from .core.errors import unknown_choice
    from .study.catalogue import load_experiments

    shipped = load_experiments()
    if experiment not in shipped:
        raise unknown_choice("experiment", experiment, sorted(shipped))
    exp = shipped[experiment]
    return exp.title, [(v.name, {k: v.config[k] for k in UNIT_KEYS if k in v.config}) for v in exp.variants]


def main(argv=None) -> int:
    ap = ArgumentParser(prog="python -m ablation.signal_ladder", description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="folder for signal_ladder.csv and the figures (made if absent)")
    ap.add_argument("--experiment", default="identity_mappings",
                    help="whose rows: a shipped experiment (default identity_mappings, He 2016 Table 1; "
                         "modern: the designs after 2016)")
    ap.add_argument("--archs", help=f"comma-separated subset of {', '.join(n[0] for n in LADDER)} (default all)")
    ap.add_argument("--inits", default=",".join(INITS),
                    help=f"comma-separated subset of {', '.join(INITS)} (default both; zero-branches only "
                         "where a row's branches hold BN)")
    ap.add_argument("--batch", type=int, default=16, help="Gaussian images per batch (default 16)")
    ap.add_argument("--seed", type=int, default=0,
                    help="seed of the weights, the batch and the backward's random direction (default 0)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--plots-only", action="store_true", help="draw the figures from the CSV, measure nothing")
    args = ap.parse_args(argv)
    return run_main(lambda: _ladder(args))


def _subset(what: str, text: str, known) -> list[str]:
    """The names of a comma-separated option, each one of ``known``, at least one."""
    from .core.errors import unknown_choice

    names = [n.strip() for n in text.split(",") if n.strip()]
    for n in names:
        if n not in known:
            raise unknown_choice(what, n, known)
    if not names:
        raise ConfigError(f"no {what} named in {text!r}")
    return names


def _ladder(args) -> int:
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is not a folder")
    archs = _subset("arch of the ladder", args.archs, [n[0] for n in LADDER]) if args.archs else None
    inits = _subset("init", args.inits, INITS)
    if args.batch < 2 or args.threads < 1:
        raise ConfigError(f"--batch needs >= 2 and --threads >= 1, got {args.batch} and {args.threads}")
    if args.plots_only:
        table = read_ladder(out / LADDER_CSV)
        if table is None:
            raise ConfigError(f"no {LADDER_CSV} with this version's columns in {out}; run without --plots-only first")
    else:
        import torch

        torch.set_num_threads(args.threads)  # see ablation.signal: one thread measured faster on a shared machine
        table = run_ladder(out, experiment_rows(args.experiment)[1], archs, args.batch, seed=args.seed, inits=inits)
    table = table[table["init"].isin(inits)]
    from .core.files import write_atomic
    from .reporting.signal_plots import plot_ladder

    summary = ladder_summary(table)
    write_atomic(out / "signal_ladder_summary.csv", summary.to_csv(index=False))
    for p in plot_ladder(table, out, f"rows of {args.experiment}"):
        print(p)
    print(out / LADDER_CSV)
    return 0


if __name__ == "__main__":
    sys.exit(main())
