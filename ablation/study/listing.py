"""What ``--list`` and ``--dry-run`` print: the catalogue, and the grid with the paper's numbers and its cost."""

from __future__ import annotations

from ..core.layout import ResultsDir
from ..core.text import paper_cell
from .experiments import Run


def print_list(experiments: dict, presets: dict) -> None:
    from ..nets.shortcuts import describe_shortcuts

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


def print_grid(runs: list[Run], results: ResultsDir, backend, rows: dict | None = None) -> None:
    """One line per run (its row, seed, hash, net, cost, the paper's number with its source, status),
    then what the runs left to train cost on ``backend``."""
    from . import cost

    est = cost.estimate([r.config for r in runs])
    rows = rows or {}
    papers = {key: paper_cell(v.paper, v.meta(), terminal=True) for key, v in rows.items()}
    width = max([len("paper (source)"), *map(len, papers.values())])
    unique = {}
    print(f"{'experiment':18} {'variant':24} {'seed':>4}  {'hash':12}  {'arch':10} {'params':>11} "
          f"{'GFLOP':>9}  {'paper (source)':{width}}  status")
    for r, e in zip(runs, est):
        run = results.run(r.hash)
        done, started = run.is_finished(), run.is_started()
        status = "done" if done else ("resume" if started else ("shared" if r.hash in unique else "to train"))
        paper = papers.get((r.experiment, r.variant), "")
        print(f"{r.experiment:18} {r.variant:24} {r.seed:>4}  {r.hash}  {r.config['arch']:10} {e['params']:>11,} "
              f"{e['train_flops'] / 1e9:>9.1f}  {paper:{width}}  {status}")
        if not done:
            unique.setdefault(r.hash, (e["train_flops"], r.config, e["memory"]))
    total = sum(f for f, _, _ in unique.values())
    print(f"\n{len(runs)} rows, {len({r.hash for r in runs})} distinct runs, {len(unique)} to train: "
          f"{total / 1e12:.2f} TFLOP")
    if not unique:
        return
    fits = _print_memory(list(unique.values()))
    # the biggest run stands for all: it dominates the cost, and a small net runs below a big one's rate;
    # only one that fits is timed (building one that does not would take minutes, then fail)
    rate, source = (cost.run_rate(results, backend, max(fits, key=lambda u: u[0])[1]) if fits else
                    (cost.CPU_FLOPS_GUESS, {"source": "guess", "error": "no run to train fits this machine's memory"}))
    plan = cost.plan([u[0] for u in unique.values()], rate, backend.jobs, backend.gpus_per_run)
    gpu = f", {plan['gpu_hours']:.2f} GPU-hours at {plan['gpus_per_run']:g} GPU per run" if plan["gpus_per_run"] else ""
    print(f"rate: {rate / 1e9:.1f} GFLOP/s per run, {_rate_source(source)}")
    print(f"cost: {plan['run_hours']:.2f} run-hours{gpu}; about {_span(plan['wall_s'])} of wall time with "
          f"{backend.describe()}")


def _print_memory(unique: list[tuple]) -> list[tuple]:
    """The memory line of the dry run (the biggest run's estimate against this machine's limit);
    returns the runs that fit."""
    from ..training.feasibility import LIMIT_VAR, describe_need, gib, limit_for, memory_needed

    flops, cfg, need = max(unique, key=lambda u: u[2])
    limit, source = limit_for(cfg)
    words = describe_need(cfg, memory_needed(cfg))
    if limit is None:
        print(f"memory: {words}; no limit ({source})")
        return unique
    over = [u for u in unique if u[2] > limit]
    verdict = (f"{len(over)} of {len(unique)} runs to train exceed the {gib(limit)} {source}: here they would be "
               f"refused (set {LIMIT_VAR} where they train)" if over else f"every run fits the {gib(limit)} {source}")
    print(f"memory: the biggest, {words}; {verdict}")
    return [u for u in unique if u[2] <= limit]


def _rate_source(src: dict) -> str:
    if src["source"] == "finished":
        return f"measured on the {src['runs']} finished runs in {src['folder']}"
    if src["source"] == "timed":
        m = src
        return (f"timed just now: {m['steps']} training step{'s' if m['steps'] != 1 else ''} of {m['arch']} on "
                f"{m['device']}, {m['threads']} thread{'s' if m['threads'] != 1 else ''}, where a run trains "
                f"(no finished run to learn from)")
    return f"a guess: timing a step failed ({src['error']})"


def _span(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
