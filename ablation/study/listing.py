"""What ``--list`` and ``--dry-run`` print: the catalogue, and the grid with the paper's numbers and its cost."""

from __future__ import annotations

from ..core.layout import ResultsDir
from ..core.text import paper_cell
from .catalogue import origin
from .experiments import Run


def print_list(experiments: dict, presets: dict) -> None:
    """The shortcuts, the experiments with their rows and the presets, each experiment and preset with where it
    comes from (``shipped``, or the user's file: :func:`ablation.study.catalogue.origin`)."""
    from ..nets.registry import describe_shortcuts

    print("shortcuts (use in a [[variant]] as shortcut = NAME, shortcut_args = {...}):")
    for s in describe_shortcuts():
        params = ", ".join(f"{k}={v}" for k, v in s["params"].items())
        print(f"  {s['name']}{f'({params})' if params else ''}: {s['formula']}" + (f"  [{s['paper']}]" if s["paper"] else ""))
    print("\nexperiments (--experiment NAME; rows for --variants):")
    for e in experiments.values():
        print(f"  {e.name}: {e.title}  [{origin(e.path)}]")
        for v in e.variants:
            paper = "not reported" if v.paper is None else v.paper
            mark = " *" if v.name in e.in_all else ""
            print(f"    {v.name}{mark}: {v.label} (paper: {paper})")
    print("  (* = part of --variants all; [where each comes from]: shipped with the package, or your file)")
    print("\npresets (--preset NAME):")
    for p in presets.values():
        print(f"  {p.name}: {p.description} (seeds: {p.seeds})  [{origin(p.path)}]")


def grid_rows(runs: list[Run], results: ResultsDir, rows: dict | None = None) -> list[dict]:
    """One record per run: its row, seed, hash, net, cost, the paper's number with its source, its status
    (``done``, ``resume``, ``retrain`` where its recorded outcome is outdated, ``shared`` with an earlier run of
    the grid, or ``to train``) and ``train_flops``."""
    from . import cost

    est = cost.estimate([r.config for r in runs])
    rows = rows or {}
    papers = {key: paper_cell(v.paper, v.meta(), terminal=True) for key, v in rows.items()}
    seen, out = set(), []
    for r, e in zip(runs, est):
        run = results.run(r.hash)
        done, started = run.is_finished(), run.is_started()
        status = "done" if done else ("retrain" if run.outdated() else "resume" if started else
                                      "shared" if r.hash in seen else "to train")
        out.append({"experiment": r.experiment, "variant": r.variant, "seed": r.seed, "hash": r.hash,
                    "arch": r.config["arch"], "params": e["params"], "gflop": e["train_flops"] / 1e9,
                    "paper": papers.get((r.experiment, r.variant), ""), "status": status,
                    "train_flops": e["train_flops"], "memory": e["memory"]})
        if not done:
            seen.add(r.hash)
    return out


def grid_cost(runs: list[Run], records: list[dict], results: ResultsDir, backend) -> dict | None:
    """What the runs left to train cost on ``backend`` (:func:`ablation.study.cost.plan`, with the rate and
    where it came from, and the memory line: the biggest run's estimate against this machine's limit),
    or None where nothing is left."""
    from . import cost

    unique = {}
    for r, rec in zip(runs, records):
        if rec["status"] != "done":
            unique.setdefault(r.hash, (rec["train_flops"], r.config, rec["memory"]))
    if not unique:
        return None
    memory, fits = _memory(list(unique.values()))
    # the biggest run stands for all: it dominates the cost, and a small net runs below a big one's rate;
    # only one that fits is timed (building one that does not would take minutes, then fail)
    rate, source = (cost.run_rate(results, backend, max(fits, key=lambda u: u[0])[1]) if fits else
                    (cost.CPU_FLOPS_GUESS, {"source": "guess", "error": "no run to train fits this machine's memory"}))
    plan = cost.plan([u[0] for u in unique.values()], rate, backend.jobs, backend.gpus_per_run)
    return {**plan, "rate": rate, "rate_source": _rate_source(source), "backend": backend.describe(),
            "memory": memory}


def _memory(unique: list[tuple]) -> tuple[str, list[tuple]]:
    """The dry run's memory line (the biggest run's estimate against this machine's limit) and the runs that fit."""
    from ..training.feasibility import LIMIT_VAR, describe_need, gib, limit_for, memory_needed

    flops, cfg, need = max(unique, key=lambda u: u[2])
    limit, source = limit_for(cfg)
    words = describe_need(cfg, memory_needed(cfg))
    if limit is None:
        return f"{words}; no limit ({source})", unique
    over = [u for u in unique if u[2] > limit]
    verdict = (f"{len(over)} of {len(unique)} runs to train exceed the {gib(limit)} {source}: here they would be "
               f"refused (set {LIMIT_VAR} where they train)" if over else f"every run fits the {gib(limit)} {source}")
    return f"the biggest, {words}; {verdict}", [u for u in unique if u[2] <= limit]


def arch_map_line(runs: list[Run], preset: str) -> str | None:
    """What the preset's ``arch_map`` changed, ``quick runs resnet110 as resnet32 (15 runs), ...``; None where
    every run's net is the one its row names."""
    mapped = {}
    for r in runs:
        if r.arch_asked is not None:
            mapped.setdefault((r.arch_asked, r.config["arch"]), set()).add(r.hash)
    if not mapped:
        return None
    each = [f"{asked} as {arch} ({len(hashes)} run{'s' if len(hashes) != 1 else ''})"
            for (asked, arch), hashes in sorted(mapped.items(), key=lambda kv: _depth_order(kv[0][0]))]
    return f"{preset} runs {', '.join(each)}: the preset's arch_map, for its scale"


def _depth_order(arch: str) -> tuple:
    digits = "".join(c for c in arch if c.isdigit())
    return (int(digits) if digits else 0, arch)


def print_grid(runs: list[Run], results: ResultsDir, backend, rows: dict | None = None,
               preset: str | None = None) -> None:
    """One line per run (its row, seed, hash, net, cost, the paper's number with its source, status), the
    architectures the preset ``preset`` maps to smaller ones (:func:`arch_map_line`), then what the runs left to
    train cost on ``backend``."""
    records = grid_rows(runs, results, rows)
    width = max([len("paper (source)"), *(len(g["paper"]) for g in records)])
    print(f"{'experiment':18} {'variant':24} {'seed':>4}  {'hash':12}  {'arch':10} {'params':>11} "
          f"{'GFLOP':>9}  {'paper (source)':{width}}  status")
    for g in records:
        print(f"{g['experiment']:18} {g['variant']:24} {g['seed']:>4}  {g['hash']}  {g['arch']:10} {g['params']:>11,} "
              f"{g['gflop']:>9.1f}  {g['paper']:{width}}  {g['status']}")
    todo = {g["hash"]: g["train_flops"] for g in records if g["status"] != "done"}
    mapped = arch_map_line(runs, preset) if preset else None
    if mapped:
        print(f"\n{mapped}")
    print(f"\n{len(runs)} rows, {len({r.hash for r in runs})} distinct runs, {len(todo)} to train: "
          f"{sum(todo.values()) / 1e12:.2f} TFLOP")
    plan = grid_cost(runs, records, results, backend)
    if plan is None:
        return
    gpu = f", {plan['gpu_hours']:.2f} GPU-hours at {plan['gpus_per_run']:g} GPU per run" if plan["gpus_per_run"] else ""
    print(f"memory: {plan['memory']}")
    print(f"rate: {plan['rate'] / 1e9:.1f} GFLOP/s per run, {plan['rate_source']}")
    print(f"cost: {plan['run_hours']:.2f} run-hours{gpu}; about {_span(plan['wall_s'])} of wall time with "
          f"{plan['backend']}")
    for line in rung_costs(runs, records, rows or {}, plan["rate"]):
        print(line)


def rung_costs(runs: list[Run], records: list[dict], rows: dict, rate: float) -> list[str]:
    """One line per ladder of the grid: each rung's runs to train and their run-hours at ``rate`` FLOP/s."""
    by = {}
    for r, g in zip(runs, records):
        row = rows.get((r.experiment, r.variant))
        if row is None or row.rung is None or g["status"] == "done":
            continue
        rung = by.setdefault(r.experiment, {}).setdefault(row.column, {})
        rung[g["hash"]] = g["train_flops"]
    return [f"{name}: " + "; ".join(f"{rung} ({len(todo)} to train, {sum(todo.values()) / rate / 3600:.2f} "
                                    f"run-hours)" for rung, todo in rungs.items())
            for name, rungs in by.items()]


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
