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
from pathlib import Path

from .core.errors import INTERRUPTED, ArgumentParser, ConfigError, run_main, unknown_choice
from .core.layout import ResultsDir, check_folder
from .core.locks import folder_lock
from .study import experiments as ex
from .study.depth import check_depth
from .study.expansion import expand, sweeps_depth
from .study.grid import prepare_data, run_grid, to_train
from .study.invocation import log_invocation
from .study.listing import print_grid, print_list
from .study.manifest import manifest
from .study.pool import local_backend
from .study.rules import refuse_other_settings, refuse_study_keys
from .study.selection import select
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
    p.add_argument("--list", action="store_true", help="list shortcuts, experiments and presets, then exit")
    p.add_argument("--dry-run", action="store_true", help="print the grid and its estimated cost; train nothing")
    p.add_argument("--force", action="store_true", help="retrain runs that already finished")
    p.add_argument("--quiet", action="store_true", help="print only errors and the final paths")
    p.add_argument("--experiments-dir", default=None, help=argparse.SUPPRESS)
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
    from .nets import shortcuts

    for spec in args.plugin:
        shortcuts.load_plugin(spec)
    if args.seeds is not None and args.seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {args.seeds}")
    if args.depth is not None:
        check_depth(args.depth, "--depth")
    jobs = _parse_jobs(args.jobs)
    check_backend_flags(args)
    settings = parse_settings(args.settings)
    refuse_study_keys("--set", settings, "=")
    experiments = ex.load_experiments(args.experiments_dir)
    presets = ex.load_presets(args.experiments_dir)
    if args.list:
        print_list(experiments, presets)
        return 0
    if args.preset not in presets:
        raise unknown_choice("preset", args.preset, presets)
    preset = presets[args.preset]
    out = check_folder(Path("results") / preset.name if args.out is None else args.out, "results", "--out")
    results = ResultsDir(out)
    overrides = {"dataset": args.dataset, "depth": args.depth, "device": args.device}
    changed = {**{k: v for k, v in overrides.items() if v is not None}, **settings}
    # an unreadable manifest is one line now, not after the data loads
    refuse_other_settings(results.read_manifest(missing_ok=True), preset.name, changed, f"--out {out}")
    rows = select(experiments, args.experiment, args.variants, shortcuts.list_shortcuts(), preset.all_rows)
    sweeps = sorted({v.experiment for v in rows if sweeps_depth(experiments[v.experiment])})
    if args.depth is not None and sweeps and not args.quiet:
        print(f"note: --depth {args.depth} leaves the depth sweep of {', '.join(sweeps)} as it is", file=sys.stderr)
    notes = []
    runs = expand(experiments, rows, preset, args.seeds, overrides, settings=settings, notes=notes)
    if not args.quiet:
        for note in dict.fromkeys(notes):
            print(f"note: {note}", file=sys.stderr)
    todo = to_train(runs, results, args.force)
    if not args.dry_run and args.backend == "local":  # they train here: refuse what cannot fit, before the data loads
        check_memory(runs, todo)
    # one backend, sized for the runs that will train; a cluster is joined here and checked to share the
    # results folder before anything is written there
    with open_backend(args, jobs, todo, train_fn) as backend:
        if args.dry_run:
            print_grid(runs, results, backend, {(v.experiment, v.name): v for v in rows})
            return 0
        started = started or time.time()
        prepare_data(runs, quiet=args.quiet)
        backend.check_storage(out)
        if args.backend == "ray" and not args.quiet:
            print(f"backend: {backend.describe()}", file=sys.stderr)
        with folder_lock(out):  # another invocation may be merging its rows into the same manifest
            results.sweep()
            results.write_manifest(manifest(results.read_manifest(missing_ok=True), preset, experiments, rows, runs,
                                            changed))
        result = run_grid(runs, out, train_fn=train_fn, force=args.force, quiet=args.quiet, backend=backend)
    if result["interrupted"]:
        with folder_lock(out):
            log_invocation(results, argv_line(), time.time() - started, result, jobs)
        print(f"interrupted: {result['done']} of {result['todo']} runs finished this time; each unfinished run "
              f"keeps its last checkpoint. Run the same command again to resume:\n  {argv_line()}",
              file=sys.stderr)
        return INTERRUPTED
    from .reporting import report

    with folder_lock(out):
        report.build(out)
        wall = time.time() - started
        log_invocation(results, argv_line(), wall, result, jobs)
        report.refresh_readme(out)  # now with this invocation's wall time
    if not args.quiet:
        busy = f", {result['busy']} being trained by another process" if result["busy"] else ""
        print(f"{len(runs)} runs ({result['trained']} trained, {result['skipped']} already done, "
              f"{result['errors']} errors{busy}) in {wall:.0f}s; report: {out / 'README.md'}")
    else:
        print(out / "README.md")
    return 1 if result["errors"] else 0


def check_memory(runs, todo: list[dict]) -> None:
    """ConfigError naming the first run to train whose memory estimate exceeds this machine's."""
    from .training.feasibility import check_fits

    names = {id(r.config): r for r in runs}
    for cfg in todo:
        try:
            check_fits(cfg)
        except ConfigError as e:
            run = names.get(id(cfg))
            raise ConfigError(f"{run.experiment}:{run.variant}: {e}" if run else str(e)) from None


def check_backend_flags(args) -> None:
    """The backend's flags, each wrong combination one line."""
    if args.backend != "ray":
        given = [flag for flag, value in (("--address", args.address), ("--gpus-per-run", args.gpus_per_run),
                                          ("--cpus-per-run", args.cpus_per_run)) if value is not None]
        if given:
            raise ConfigError(f"{given[0]} applies to --backend ray only")
        return
    if args.jobs not in (None, "auto"):
        raise ConfigError("--jobs applies to --backend local; with --backend ray, --gpus-per-run and --cpus-per-run "
                          "set how many runs share a node")
    from .study.ray_backend import check_request, import_ray

    check_request(args.gpus_per_run, 1 if args.cpus_per_run is None else args.cpus_per_run)
    import_ray()  # before any data is loaded: without Ray, the install command is the one line


def open_backend(args, jobs, configs: list[dict], train_fn=None):
    """The backend the flags ask for, sized for ``configs`` (a context manager)."""
    if args.backend == "ray":
        from .study.ray_backend import RayBackend

        return RayBackend(args.address, args.gpus_per_run, args.cpus_per_run or 1, configs, args.plugin, train_fn)
    return local_backend(jobs, len(configs), configs, args.plugin, train_fn)


def argv_line() -> str:
    return "python -m ablation.run " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def _parse_jobs(value) -> int | None:
    if value in (None, "auto"):
        return None
    try:
        jobs = int(value)
    except ValueError:
        raise ConfigError(f"--jobs must be a whole number or 'auto', got {value!r}") from None
    if jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {jobs}")
    return jobs


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # `... --list | head`: the reader left, which is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
