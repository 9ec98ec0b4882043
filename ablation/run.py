"""Run a study: expand experiments into runs, train what is not finished, rebuild the report.

    python -m ablation.run --variants all                 # the headline study, quick preset
    python -m ablation.run --experiment activations --preset paper --seeds 5
    python -m ablation.run --variants original,shortcut-gate-b-6 --dry-run
    python -m ablation.run --plugin my_gates.py --variants my-gate
    python -m ablation.run --preset paper --variants all --backend ray --address auto --out /shared/paper

Each run lives in ``<out>/runs/<hash>/`` where the hash is that of its full config, so a
finished run (``summary.json`` present) is never trained twice and an interrupted one resumes
from its last checkpoint. Ctrl-C stops cleanly; the same command picks up where it stopped.
"""

from __future__ import annotations

import time

_STARTED = time.time()  # before the heavy imports, so that the logged wall time is the whole command's

if __name__ == "__main__":
    from .core.errors import interrupt_quietly_while_starting

    interrupt_quietly_while_starting()

import argparse
import os
import shlex
import sys

from .api import pipeline
from .core.errors import INTERRUPTED, ArgumentParser, run_main
from .study import catalogue
from .study.listing import print_grid, print_list
from .training.config import parse_settings
from .training.data import DATASETS


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m ablation.run", description=__doc__.split("\n\n")[0],
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", help="'all' (identity_mappings rows + plain/residual at a shallow and a deep "
                   "depth), or a comma list of variant names, experiment:variant, or shortcut names")
    p.add_argument("--experiment", help="an experiment name, or 'all'")
    p.add_argument("--preset", default="quick", help="scale of every run: quick (default; minutes on a laptop "
                   "CPU) or paper (the papers' scale, for GPUs); --list shows every preset")
    p.add_argument("--dataset", help=f"override the dataset of every run: {', '.join(DATASETS)}")
    p.add_argument("--depth", type=int, help="depth (6n+2) of the CIFAR basic nets of single-depth experiments")
    p.add_argument("--seeds", type=int, help="seeds per row (default: the preset's)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="training device (default: auto)")
    p.add_argument("--out", help="results folder (default: results/<preset>)")
    p.add_argument("--jobs", default="auto", help="runs trained at once, each in its own process on one thread; on "
                   "GPUs, runs at once per GPU, spread over every GPU (default: auto = one per CPU core on CPU, "
                   "1 per GPU)")
    p.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="local: processes on this machine (default); ray: every run a Ray task, on a cluster "
                   "or a local Ray instance (needs pip install -e '.[ray]')")
    p.add_argument("--address", help="with --backend ray: the cluster to join, 'auto' or HOST:PORT "
                   "(default: start a local Ray instance)")
    p.add_argument("--gpus-per-run", type=float, metavar="G", help="with --backend ray: GPUs each run holds; "
                   "0.25 packs four runs per GPU (default: 1 where the cluster has GPUs, else 0)")
    p.add_argument("--cpus-per-run", type=int, metavar="N", help="with --backend ray: CPU cores (and torch "
                   "threads) each run holds (default: 1)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="settings",
                   help="set a config key for every run, after the preset (repeatable; keys: "
                   "python -m ablation.train --help)")
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE_OR_FILE",
                   help="import a module or .py file that registers shortcuts (repeatable)")
    p.add_argument("--experiments", action="append", metavar="DIR", help="a folder of your own experiment files "
                   "and presets.toml, read beside the shipped ones (repeatable; default: ./experiments where there "
                   "is one)")
    p.add_argument("--list", action="store_true", help="list shortcuts, experiments and presets, then exit")
    p.add_argument("--dry-run", action="store_true", help="print the grid and its estimated cost; train nothing")
    p.add_argument("--force", action="store_true", help="retrain runs that already finished")
    p.add_argument("--quiet", action="store_true", help="print only errors and the final paths")
    return p


def main(argv=None, train_fn=None) -> int:
    # from the command line the clock started with the interpreter; a caller's starts here
    started = _STARTED if argv is None else time.time()
    args = build_parser().parse_args(argv)
    return run_main(lambda: _run_cli_resumable(args, train_fn, started))


def _run_cli_resumable(args, train_fn, started) -> int:
    try:
        return run_cli(args, train_fn=train_fn, started=started)
    except KeyboardInterrupt:  # before or after the runs (data, cluster start): nothing of theirs is lost
        print(f"interrupted. Run the same command again to resume:\n  {argv_line()}", file=sys.stderr)
        return INTERRUPTED


def run_cli(args, train_fn=None, started=None) -> int:
    """The study the options ask for, through the calls of :class:`ablation.Study` (:mod:`ablation.api.pipeline`)."""
    pipeline.load_plugins(args.plugin)
    pipeline.check_numbers(args.seeds, args.depth)
    jobs = pipeline.parse_jobs(args.jobs)
    check_backend_flags(args)
    settings = parse_settings(args.settings)
    if args.list:
        folders = catalogue.user_folders(args.experiments)
        print_list(catalogue.load_experiments(folders), catalogue.load_presets(folders))
        return 0
    plan = pipeline.plan(variants=args.variants, experiment=args.experiment, preset=args.preset, seeds=args.seeds,
                        dataset=args.dataset, depth=args.depth, device=args.device, out=args.out, settings=settings,
                        plugins=tuple(args.plugin), experiments=args.experiments)
    if not args.quiet:
        for note in plan.notes:
            print(f"note: {note}", file=sys.stderr)
    # one backend, sized for the runs that will train (those that cannot fit refused first, unless this is a dry
    # run); a cluster is joined here and checked to share the results folder before anything is written there
    with pipeline.open_backend(plan, args.backend, jobs, args.force, train_fn, args.address, args.gpus_per_run,
                              args.cpus_per_run, check_memory=not args.dry_run) as backend:
        if args.dry_run:
            print_grid(plan.runs, plan.results, backend, {(v.experiment, v.name): v for v in plan.rows},
                       plan.preset.name)
            return 0
        if args.backend == "ray" and not args.quiet:
            print(f"backend: {backend.describe()}", file=sys.stderr)
        result = pipeline.execute(plan, backend, command=argv_line(), started=started, train_fn=train_fn,
                                 force=args.force, quiet=args.quiet, jobs=jobs)
    out = plan.out
    if result["interrupted"]:
        print(f"interrupted: {result['done']} of {result['todo']} runs finished this time; each unfinished run "
              f"keeps its last checkpoint. Run the same command again to resume:\n  {argv_line()}",
              file=sys.stderr)
        return INTERRUPTED
    for line in result.get("plugin_problems", []):
        print(f"note: {line}", file=sys.stderr)
    if not args.quiet:
        busy = f", {result['busy']} being trained by another process" if result["busy"] else ""
        print(f"{len(plan.runs)} runs ({result['trained']} trained, {result['skipped']} already done, "
              f"{result['errors']} errors{busy}) in {result['wall_s']:.0f}s; report: {out / 'README.md'}")
    else:
        print(out / "README.md")
    return 1 if result["errors"] else 0


def check_backend_flags(args) -> None:
    """The backend's flags, each wrong combination one line."""
    pipeline.check_backend(args.backend, args.jobs, args.address, args.gpus_per_run, args.cpus_per_run)


def argv_line() -> str:
    return "python -m ablation.run " + " ".join(shlex.quote(a) for a in sys.argv[1:])


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # `... --list | head`: the reader left, which is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
