"""Run a study: expand experiments into runs, train what is not finished, rebuild the report.

    python -m ablation.run --variants all                 # the headline study, quick preset
    python -m ablation.run --experiment activations --preset paper --seeds 5
    python -m ablation.run --variants original,shortcut-gate-b-6 --dry-run
    python -m ablation.run --plugin my_gates.py --variants my-gate

Each run lives in ``<out>/runs/<hash>/`` where the hash is that of its full config, so a
finished run (``summary.json`` present) is never trained twice and an interrupted one resumes
from its last checkpoint. Ctrl-C stops cleanly; the same command picks up where it stopped.
"""

from __future__ import annotations

import time

_STARTED = time.time()  # before the heavy imports, so that the logged wall time is the whole command's

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import signal
import sys
from pathlib import Path

from . import experiments as ex
from .errors import ConfigError, unknown_choice
from .files import write_atomic

# Measured with `--variants all --preset quick` on a 2-core CPU: two single-threaded runs at once
# beat one run on two threads (see results/quick/README.md), as small convolutions scale poorly
# across threads; on a GPU one run at a time keeps the device busy.
PER_JOB_THREADS = 1


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, as every other bad input
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m ablation.run", description=__doc__.split("\n\n")[0],
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", help="'all' (identity_mappings rows + plain/residual at a shallow and a deep "
                   "depth), or a comma list of variant names, experiment:variant, or shortcut names")
    p.add_argument("--experiment", help="an experiment name, or 'all'")
    p.add_argument("--preset", default="quick", help="scale of every run (default: quick)")
    p.add_argument("--dataset", help="override the dataset of every run")
    p.add_argument("--depth", type=int, help="depth (6n+2) of the CIFAR basic nets of single-depth experiments")
    p.add_argument("--seeds", type=int, help="seeds per row (default: the preset's)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="training device (default: auto)")
    p.add_argument("--out", help="results folder (default: results/<preset>)")
    p.add_argument("--jobs", default="auto", help="runs trained at once, each in its own process on one thread "
                   "(default: auto = one per CPU core on CPU, 1 on GPU)")
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
    try:
        return run_cli(args, train_fn=train_fn, started=started)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def run_cli(args, train_fn=None, started=None) -> int:
    from . import shortcuts

    for spec in args.plugin:
        shortcuts.load_plugin(spec)
    if args.seeds is not None and args.seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {args.seeds}")
    if args.depth is not None:
        ex.check_depth(args.depth)
    jobs = _parse_jobs(args.jobs)
    experiments = ex.load_experiments(args.experiments_dir)
    presets = ex.load_presets(args.experiments_dir)
    if args.list:
        print_list(experiments, presets)
        return 0
    if args.preset not in presets:
        raise unknown_choice("preset", args.preset, presets)
    preset = presets[args.preset]
    rows = ex.select(experiments, args.experiment, args.variants, shortcuts.list_shortcuts())
    overrides = {"dataset": args.dataset, "depth": args.depth, "device": args.device}
    sweeps = sorted({v.experiment for v in rows if ex.sweeps_depth(experiments[v.experiment])})
    if args.depth is not None and sweeps and not args.quiet:
        print(f"note: --depth {args.depth} leaves the depth sweep of {', '.join(sweeps)} as it is", file=sys.stderr)
    runs = ex.expand(experiments, rows, preset, args.seeds, overrides)
    out = Path(args.out or Path("results") / preset.name)
    if args.dry_run:
        print_grid(runs, out)
        return 0
    started = started or time.time()
    prepare_data(runs, quiet=args.quiet)
    write_manifest(out, preset, experiments, rows, runs)
    result = run_grid(runs, out, train_fn=train_fn, jobs=jobs, force=args.force, quiet=args.quiet,
                      plugins=args.plugin)
    if result["interrupted"]:
        log_invocation(out, argv_line(), time.time() - started, result, jobs)
        print(f"interrupted: {result['done']} of {result['todo']} runs finished this time; each unfinished run "
              f"keeps its last checkpoint. Run the same command again to resume:\n  {argv_line()}",
              file=sys.stderr)
        return 130
    from . import report

    report.build(out)
    wall = time.time() - started
    log_invocation(out, argv_line(), wall, result, jobs)
    report.refresh_readme(out)  # now with this invocation's wall time
    if not args.quiet:
        print(f"{len(runs)} runs ({result['trained']} trained, {result['skipped']} already done, "
              f"{result['errors']} errors) in {wall:.0f}s; report: {out / 'README.md'}")
    else:
        print(out / "README.md")
    return 1 if result["errors"] else 0


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


def auto_jobs(runs: list[ex.Run]) -> int:
    """One single-threaded run per core on CPU; one run at a time on a GPU."""
    import torch

    devices = {r.config.get("device", "auto") for r in runs}
    if "cuda" in devices or ("auto" in devices and torch.cuda.is_available()):
        return 1
    return max(1, min(os.cpu_count() or 1, len(runs)))


# --- listing ----------------------------------------------------------------------------------


def print_list(experiments: dict, presets: dict) -> None:
    from .shortcuts import describe_shortcuts

    print("shortcuts (use in a [[variant]] as shortcut = NAME, shortcut_args = {...}):")
    for s in describe_shortcuts():
        params = ", ".join(f"{k}={v}" for k, v in s["params"].items())
        print(f"  {s['name']}{f'({params})' if params else ''}: {s['formula']}" + (f"  [{s['paper']}]" if s["paper"] else ""))
    print("\nexperiments (--experiment NAME; rows for --variants):")
    for e in experiments.values():
        print(f"  {e.name}: {e.title}")
        for v in e.variants:
            paper = "not reported" if v.paper is None else v.paper
            mark = " *" if v.name in e.in_all else ""
            print(f"    {v.name}{mark}: {v.label} (paper: {paper})")
    print("  (* = part of --variants all)")
    print("\npresets (--preset NAME):")
    for p in presets.values():
        print(f"  {p.name}: {p.description} (seeds: {p.seeds})")


def estimate(runs: list[ex.Run]) -> list[dict]:
    """Per run: parameters, forward FLOPs per image, training FLOPs."""
    from . import data as datasets
    from .models import build_model, count_flops, count_params

    cache, rows = {}, []
    for r in runs:
        c = r.config
        classes, channels, size = datasets.DATASETS[c["dataset"]]
        size = c.get("image_size") or size
        key = (c["arch"], c["shortcut"], json.dumps(c["shortcut_args"], sort_keys=True), c["order"], c["width"],
               c["match"], classes, channels, size)
        if key not in cache:
            m = build_model(c["arch"], c["shortcut"], c["order"], classes, channels, c["width"], c["match"],
                            **c["shortcut_args"])
            cache[key] = (count_params(m), count_flops(m, (channels, size, size)))
        params, flops = cache[key]
        rows.append({"params": params, "flops": flops, "train_flops": ex.run_flops(c, flops)})
    return rows


def _throughput(out: Path) -> float | None:
    """FLOP/s achieved by finished runs in ``out`` (median), to turn FLOPs into time."""
    rates = []
    for f in (out / "runs").glob("*/summary.json"):
        try:
            s = json.loads(f.read_text())
            cfg = json.loads((f.parent / "config.json").read_text())
            if s.get("time_s") and s.get("flops"):
                rates.append(ex.run_flops(cfg, s["flops"]) / s["time_s"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return sorted(rates)[len(rates) // 2] if rates else None


CPU_FLOPS_GUESS = 2e9  # per process on one core of this kind of machine, when nothing is measured yet


def print_grid(runs: list[ex.Run], out: Path) -> None:
    est = estimate(runs)
    unique = {}
    print(f"{'experiment':18} {'variant':24} {'seed':>4}  {'hash':12}  {'arch':10} {'params':>9} "
          f"{'GFLOP':>9}  status")
    for r, e in zip(runs, est):
        done = (out / "runs" / r.hash / "summary.json").exists()
        started = (out / "runs" / r.hash / "checkpoint.pt").exists()
        status = "done" if done else ("resume" if started else ("shared" if r.hash in unique else "to train"))
        print(f"{r.experiment:18} {r.variant:24} {r.seed:>4}  {r.hash}  {r.config['arch']:10} {e['params']:>9,} "
              f"{e['train_flops'] / 1e9:>9.1f}  {status}")
        if not done:
            unique.setdefault(r.hash, e["train_flops"])
    total = sum(unique.values())
    rate = _throughput(out)
    basis = "measured on finished runs here" if rate else "a guess: no finished run to measure"
    rate = rate or CPU_FLOPS_GUESS
    print(f"\n{len(runs)} rows, {len({r.hash for r in runs})} distinct runs, {len(unique)} to train: "
          f"{total / 1e12:.2f} TFLOP, about {total / rate / 60:.1f} min of one process at "
          f"{rate / 1e9:.1f} GFLOP/s ({basis}); divide by --jobs for parallel runs")


def prepare_data(runs: list[ex.Run], quiet: bool = False) -> None:
    """Load every dataset the runs need once, before training.

    A missing dataset is then one line and exit 2 before anything trains, and parallel runs
    find the decoded, resized cache ready instead of each building it.
    """
    from . import data as datasets

    keys = {(r.config["dataset"], r.config["data_dir"], r.config["download"], r.config["image_size"],
             r.config["val_split"], r.config["train_subset"]) for r in runs}
    for key in sorted(keys, key=str):
        t0 = time.time()
        datasets.load(*key)
        if not quiet and time.time() - t0 > 2:
            print(f"prepared {key[0]} ({time.time() - t0:.0f}s)")


# --- bookkeeping ------------------------------------------------------------------------------


def write_manifest(out: Path, preset: ex.Preset, experiments: dict, rows, runs: list[ex.Run]) -> None:
    """Which run (hash) holds which row and seed, merged with earlier invocations into the same folder."""
    path = out / "manifest.json"
    manifest = json.loads(path.read_text()) if path.exists() else {"experiments": {}, "runs": {}}
    manifest["preset"] = preset.name
    manifest["preset_description"] = preset.description
    for name in {r.experiment for r in runs}:
        meta = experiments[name].meta()
        old = {row["variant"]: row for row in manifest["experiments"].get(name, {}).get("rows", [])}
        known = {row["variant"] for row in meta["rows"]}
        # rows added on the fly (a plugin's shortcut) are kept after the paper's rows
        meta["rows"] += [row for v, row in old.items() if v not in known]
        manifest["experiments"][name] = meta
    extra = {(v.experiment, v.name): v for v in rows}
    for r in runs:
        meta = manifest["experiments"][r.experiment]
        if r.variant not in {row["variant"] for row in meta["rows"]}:
            v = extra[(r.experiment, r.variant)]
            meta["rows"].append({"variant": v.name, "label": v.label, "column": v.column, "paper": v.paper,
                                 "source": v.source})
        manifest["runs"][r.key] = {"experiment": r.experiment, "variant": r.variant, "seed": r.seed, "hash": r.hash}
    write_atomic(path, json.dumps(manifest, indent=2, default=str))


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"
    return f"{cpu}, {os.cpu_count()} cores{gpu}; Python {platform.python_version()}, torch {torch.__version__}"


def log_invocation(out: Path, command: str, wall: float, result: dict, jobs) -> None:
    entry = {"command": command, "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
             "wall_s": round(wall, 1), "machine": machine(), "jobs": result.get("jobs", jobs),
             **{k: result[k] for k in ("trained", "skipped", "errors", "interrupted")}}
    with open(out / "invocations.jsonl", "a") as f:
        f.write(json.dumps(entry) + "\n")


# --- training ---------------------------------------------------------------------------------


def _init_worker(plugins) -> None:
    # Ctrl-C reaches the whole process group; the parent alone decides, and stops workers itself
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from . import shortcuts

    for spec in plugins:
        shortcuts.load_plugin(spec)


def _train_one(train_fn, cfg: dict, run_dir: str) -> dict:
    if train_fn is None:
        from .train import train as train_fn
    try:
        return train_fn(cfg, run_dir)
    except ConfigError as e:
        return {"status": "error", "reason": str(e)}
    except Exception as e:  # one broken run must not stop the study; its error goes in the table
        return {"status": "error", "reason": f"{type(e).__name__}: {e}"}


def run_grid(runs: list[ex.Run], out, train_fn=None, jobs: int | None = 1, force: bool = False,
             quiet: bool = False, plugins=()) -> dict:
    """Train every distinct run of ``runs`` not finished in ``out/runs``; returns counts.

    Runs sharing a hash (the same config reached from two experiments) train once.
    ``train_fn(cfg, run_dir) -> summary`` defaults to :func:`ablation.train.train`.
    """
    from tqdm import tqdm

    out = Path(out)
    distinct = {}
    for r in runs:
        distinct.setdefault(r.hash, r)
    todo, skipped = [], 0
    for h, r in distinct.items():
        run_dir = out / "runs" / h
        if force and (run_dir / "summary.json").exists():
            shutil.rmtree(run_dir)
        if (run_dir / "summary.json").exists():
            skipped += 1
        else:
            todo.append(r)
    jobs = jobs or auto_jobs(todo)
    jobs = max(1, min(jobs, len(todo) or 1))
    # longest first, so parallel jobs do not end waiting on one long run
    todo.sort(key=lambda r: -ex.images_seen(r.config) * _depth(r.config["arch"]))
    result = {"trained": 0, "skipped": skipped, "errors": 0, "interrupted": False, "done": 0, "todo": len(todo),
              "jobs": jobs}
    if not todo:
        return result
    bar = tqdm(total=len(todo), unit="run", desc="study", disable=quiet, dynamic_ncols=True)

    def finished(r: ex.Run, summary: dict | None, seconds: float):
        result["done"] += 1
        status = (summary or {}).get("status", "error")
        if status == "error":
            result["errors"] += 1
            tqdm.write(f"error in {r.key} ({r.hash}): {(summary or {}).get('reason')}", file=sys.stderr)
        else:
            result["trained"] += 1
            if not quiet:
                err = summary.get("final_test_error")
                err = f"{err:.2f}%" if isinstance(err, (int, float)) else "n/a"
                took = summary.get("time_s") or seconds  # the trainer's own clock excludes time queued
                tqdm.write(f"{r.experiment}:{r.variant} seed {r.seed} [{r.hash}]: {status}, final test error "
                           f"{err} ({took:.0f}s)")
        bar.update()

    threads = PER_JOB_THREADS if jobs > 1 else None
    configs = {r.hash: {**r.config, "quiet": True, "threads": threads or r.config.get("threads")} for r in todo}
    try:
        if jobs == 1:
            for r in todo:
                t0 = time.time()
                finished(r, _train_one(train_fn, configs[r.hash], str(out / "runs" / r.hash)), time.time() - t0)
        else:
            _run_parallel(todo, configs, out, train_fn, jobs, plugins, finished)
    except KeyboardInterrupt:
        result["interrupted"] = True
    finally:
        bar.close()
    return result


def _run_parallel(todo, configs, out, train_fn, jobs, plugins, finished) -> None:
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    # after Ctrl-C the workers are terminated with the pool's queue semaphores still registered; the
    # tracker process then warns about them on exit, which is noise, not a leak that outlives us
    filters = [f for f in os.environ.get("PYTHONWARNINGS", "").split(",") if f]
    os.environ["PYTHONWARNINGS"] = ",".join([*filters, "ignore::UserWarning:multiprocessing.resource_tracker"])
    pool = ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                               initargs=(list(plugins),))
    started, pending = {}, {}
    try:
        for r in todo:
            f = pool.submit(_train_one, train_fn, configs[r.hash], str(out / "runs" / r.hash))
            pending[f] = r
            started[f] = time.time()
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                r = pending.pop(f)
                finished(r, f.result(), time.time() - started[f])
    except BaseException:
        # workers ignore SIGINT: stop them here; each loses at most the steps since its checkpoint
        procs = list(getattr(pool, "_processes", {}).values())
        for p in procs:
            p.terminate()
        for p in procs:
            p.join()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()


def _depth(arch: str) -> int:
    digits = "".join(ch for ch in arch if ch.isdigit())
    return int(digits) if digits else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # `... --list | head`: the reader left, which is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
