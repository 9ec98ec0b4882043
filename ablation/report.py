"""Tables, plots and findings from stored results; trains nothing.

    python -m ablation.report results/quick

reads ``<dir>/manifest.json`` (which run holds which row and seed) and each run's
``summary.json`` and ``history.jsonl`` under ``<dir>/runs/``; where a run folder is
absent (results committed without their run folders) it falls back to ``runs.csv`` and
``history.csv`` written by an earlier report. Writes ``runs.csv`` (one row per run and
seed), ``rows.csv`` (per table row: median, mean, std over seeds), ``history.csv``,
``tables/<experiment>.md``, ``plots/*.png|svg`` and ``README.md``.
"""

from __future__ import annotations

if __name__ == "__main__":
    from .errors import interrupt_quietly_while_starting

    interrupt_quietly_while_starting()

import json
import math
import sys
from pathlib import Path

from .errors import ArgumentParser, ConfigError, run_main
from .results import ResultsDir, RunDir, write_atomic

SUMMARY_FIELDS = ("status", "reason", "final_test_error", "best_test_error", "final_train_error", "params", "flops",
                  "iterations", "epochs", "time_s", "images_per_s", "device", "threads")
CONFIG_FIELDS = ("arch", "shortcut", "shortcut_args", "order", "width", "dataset", "image_size", "train_subset",
                 "batch_size", "steps", "schedule_unit", "optimizer", "lr")
HISTORY_FIELDS = ("iteration", "epoch", "lr", "train_loss", "train_error", "test_loss", "test_error", "wall_time")


# --- loading ----------------------------------------------------------------------------------


def load(out) -> tuple[dict, "pd.DataFrame", "pd.DataFrame"]:
    """(manifest, runs table, history table) for the results folder ``out``."""
    import pandas as pd

    results = ResultsDir(out)
    manifest = results.read_manifest()
    if not manifest["runs"]:
        raise ConfigError(f"{results.manifest} lists no runs; run python -m ablation.run --out {out} first")
    stored = {}  # runs.csv and history.csv of an earlier report, read only where a run folder is absent

    def stored_tables():
        if not stored:
            stored["runs"], stored["hist"] = _read_csv(results.runs_csv), _read_csv(results.history_csv)
        return stored["runs"], stored["hist"]

    rows, hist = [], []
    labels = {(e, r["variant"]): r for e, m in manifest["experiments"].items() for r in m["rows"]}
    by_hash = {}
    for entry in manifest["runs"].values():
        h = entry["hash"]
        if h not in by_hash:
            by_hash[h] = _run_record(results.run(h), h, stored_tables, hist)
        meta = labels.get((entry["experiment"], entry["variant"]), {})
        rows.append({"experiment": entry["experiment"], "variant": entry["variant"], "seed": entry["seed"],
                     "label": meta.get("label", entry["variant"]), "column": meta.get("column"),
                     "paper": meta.get("paper"), "hash": h, **by_hash[h]})
    runs = pd.DataFrame(rows)
    history = pd.DataFrame(hist, columns=["hash", *HISTORY_FIELDS]) if hist else pd.DataFrame(
        columns=["hash", *HISTORY_FIELDS])
    return manifest, runs, history


def _read_csv(path: Path):
    import pandas as pd

    if not path.is_file():
        return None
    try:
        table = pd.read_csv(path)
    except (ValueError, OSError, pd.errors.ParserError) as e:
        raise ConfigError(f"{path} is unreadable ({str(e).splitlines()[0]}); delete it to rebuild it from the "
                          f"run folders") from None
    if "hash" not in table.columns:
        raise ConfigError(f"{path} has no 'hash' column; delete it to rebuild it from the run folders")
    return table


def _run_record(run: RunDir, h: str, stored_tables, hist: list) -> dict:
    rec = {k: None for k in (*SUMMARY_FIELDS, *CONFIG_FIELDS)}
    cfg = run.read_config()  # unreadable: one line naming it (the row's config is unknown)
    error = run.read_error()
    if isinstance(cfg, dict):
        rec.update({k: cfg.get(k) for k in CONFIG_FIELDS})
        rec["shortcut_args"] = json.dumps(cfg.get("shortcut_args", {}), sort_keys=True)
        summary = run.read_summary()
        if summary is not None:  # an unreadable summary means the run has not finished
            rec.update({k: summary.get(k) for k in SUMMARY_FIELDS})
        elif error is not None:
            rec["status"], rec["reason"] = "error", error["reason"]
        else:
            rec["status"] = "incomplete" if run.is_started() else "not run"
        for r in run.read_history():
            hist.append({"hash": h, **{k: r.get(k) for k in HISTORY_FIELDS}})
        return rec
    if error is not None:  # it failed before it wrote its config (a dataset or model that would not build)
        rec["status"], rec["reason"] = "error", error["reason"]
        return rec
    stored_runs, stored_hist = stored_tables()
    if stored_runs is not None and (stored_runs["hash"] == h).any():
        old = stored_runs[stored_runs["hash"] == h].iloc[0].to_dict()
        rec.update({k: _nan_to_none(old.get(k)) for k in rec})
        if stored_hist is not None:
            for r in stored_hist[stored_hist["hash"] == h].to_dict("records"):
                hist.append({"hash": h, **{k: _nan_to_none(r.get(k)) for k in HISTORY_FIELDS}})
        return rec
    rec["status"] = "not run"
    return rec


def _nan_to_none(v):
    return None if isinstance(v, float) and math.isnan(v) else v


# --- statistics -------------------------------------------------------------------------------


def is_fail(status, error, fail_above) -> bool:
    if status == "fail":
        return True
    return fail_above is not None and error is not None and not isnan(error) and error > fail_above


def fail_above(meta: dict, dataset) -> float | None:
    """The paper's "fail" threshold, which is a number about its own dataset: it applies only there."""
    if meta.get("fail_above") is None or (meta.get("dataset") and dataset != meta["dataset"]):
        return None
    return meta["fail_above"]


def isnan(x) -> bool:
    return isinstance(x, float) and math.isnan(x)


def row_stats(manifest: dict, runs) -> "pd.DataFrame":
    """One line per table row: seeds run, failed seeds, median / mean / std of final test and train error."""
    import pandas as pd

    out = []
    for name, meta in manifest["experiments"].items():
        sub = runs[runs["experiment"] == name]
        for row in meta["rows"]:
            r = sub[sub["variant"] == row["variant"]]
            done = r[r["status"].isin(["ok", "fail"])]
            test = pd.to_numeric(done["final_test_error"], errors="coerce").dropna()
            train = pd.to_numeric(done["final_train_error"], errors="coerce").dropna()
            fails = sum(is_fail(s, e, fail_above(meta, d)) for s, e, d in
                        zip(done["status"], pd.to_numeric(done["final_test_error"], errors="coerce"), done["dataset"]))
            out.append({
                "experiment": name, "variant": row["variant"], "label": row["label"], "column": row.get("column"),
                "paper": row.get("paper"), "seeds": len(done), "failed": int(fails),
                "errors": int((r["status"] == "error").sum()),
                "diverged": int(done["reason"].astype(str).str.startswith(DIVERGED).sum()),
                "test_median": test.median() if len(test) else None, "test_mean": test.mean() if len(test) else None,
                "test_std": test.std(ddof=1) if len(test) > 1 else None,
                "train_median": train.median() if len(train) else None,
                "best_test_median": pd.to_numeric(done["best_test_error"], errors="coerce").median() if len(done) else None,
                "arch": ", ".join(dict.fromkeys(str(a) for a in r["arch"].dropna())),
                "params": r["params"].dropna().iloc[0] if r["params"].notna().any() else None,
                "time_s": pd.to_numeric(r["time_s"], errors="coerce").sum() if len(r) else None,
            })
    return pd.DataFrame(out)


def _num(x, digits=2) -> str:
    return "—" if x is None or isnan(x) else f"{x:.{digits}f}"


def ours_cell(s: dict) -> str:
    if not s["seeds"]:
        return "error" if s["errors"] else "not run"
    med = s["test_median"]
    failed_majority = s["failed"] * 2 > s["seeds"]
    text = f"fail ({_fail_number(s)})" if failed_majority else _num(med)
    if s["seeds"] > 1 and not failed_majority:
        text += f" [{_num(s['test_mean'])} ± {_num(s['test_std'])}]"
    if s["failed"] and not (failed_majority and s["seeds"] == 1):
        text += f" ({s['failed']}/{s['seeds']} failed)"
    return text


DIVERGED = "loss is not finite"  # how the trainer words a run stopped by a NaN or infinite loss


def _fail_number(s: dict, unit: str = "") -> str:
    """A failed row's median error, or "diverged" where most of its runs stopped on a non-finite loss
    (the error of a net whose weights are NaN is that of a constant guess, not a measurement)."""
    if s.get("diverged") and s["diverged"] * 2 > s["seeds"]:
        return "diverged"
    return _num(s["test_median"]) + unit


def paper_cell(p) -> str:
    if p is None or isnan(p):
        return "not reported"
    return "fail" if p == "fail" else f"{float(p):.2f}"


def markdown_table(meta: dict, stats) -> str:
    """The experiment in the paper's layout: rows as printed, our median beside the paper's number."""
    s = stats[stats["experiment"] == meta["name"]]
    s = s[(s["seeds"] > 0) | (s["errors"] > 0)]
    if s.empty:
        return ""
    columns = [c for c in dict.fromkeys(s["column"]) if c is not None and not isnan(c)]
    if columns:
        labels = list(dict.fromkeys(s["label"]))
        # the nets as run may be smaller than the paper's: say which, per column or per row
        col_arch = {c: set(s[s["column"] == c]["arch"]) for c in columns}
        row_arch = {l: set(s[s["label"] == l]["arch"]) for l in labels}
        per_col = all(len(a) == 1 for a in col_arch.values())
        per_row = not per_col and all(len(a) == 1 for a in row_arch.values())
        head = [""]
        for c in columns:
            run_as = f" ({next(iter(col_arch[c]))})" if per_col else ""
            head += [f"{c}{run_as} ours", f"{c} ours (train)", f"{c} paper"]
        lines = [head]
        for label in labels:
            line = [f"{label} ({next(iter(row_arch[label]))})" if per_row else label]
            for c in columns:
                hit = s[(s["label"] == label) & (s["column"] == c)]
                if hit.empty:
                    line += ["", "", ""]
                else:
                    d = hit.iloc[0].to_dict()
                    line += [ours_cell(d), _num(d["train_median"]), paper_cell(d["paper"])]
            lines.append(line)
    else:
        lines = [["", "arch (as run)", "ours", "ours (train)", "paper", "seeds"]]
        for d in s.to_dict("records"):
            lines.append([d["label"], d["arch"], ours_cell(d), _num(d["train_median"]), paper_cell(d["paper"]),
                          str(d["seeds"])])
    widths = [max(len(str(r[i])) for r in lines) for i in range(len(lines[0]))]
    fmt = lambda r: "| " + " | ".join(str(x).ljust(w) for x, w in zip(r, widths)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([fmt(lines[0]), rule, *map(fmt, lines[1:])]) + "\n"


# --- findings ---------------------------------------------------------------------------------


def check_claims(meta: dict, stats) -> list[dict]:
    """Each of the paper's claims for this experiment: holds / does not hold / not run, with our numbers."""
    s = stats[(stats["experiment"] == meta["name"]) & (stats["seeds"] > 0)]
    value = {}
    for d in s.to_dict("records"):
        value[d["variant"]] = d
    results = []
    for c in meta.get("claims", []):
        col = "test_median" if c.get("metric", "test") == "test" else "train_median"
        what = "test" if col == "test_median" else "training"
        names = [n for n in [*(c.get("lower") or []), *(c.get("lowest") or []), *(c.get("close") or [])]]
        missing = [n for n in names if n not in value or value[n][col] is None or isnan(value[n][col])]
        if missing:
            results.append({"says": c["says"], "verdict": "not run", "detail": f"needs {', '.join(missing)}"})
            continue
        v = {n: value[n][col] for n in value if value[n][col] is not None and not isnan(value[n][col])}
        if c.get("lower"):
            a, b = c["lower"]
            ok = v[a] < v[b]
            detail = f"{a} {v[a]:.2f} vs {b} {v[b]:.2f} % {what} error ({v[b] - v[a]:+.2f} points)"
        elif c.get("lowest"):
            pool = [n for n in (c.get("among") or list(v)) if n in v]
            best = min(pool, key=lambda n: v[n])
            target = c["lowest"]
            ok = all(v[t] <= v[best] for t in target)
            rank = sorted(pool, key=lambda n: v[n])
            detail = (f"{', '.join(f'{t} {v[t]:.2f}' for t in target)}; best is {best} {v[best]:.2f} "
                      f"({what} error; {target[0]} ranks {rank.index(target[0]) + 1} of {len(pool)})")
        else:
            a, b = c["close"]
            gap = abs(v[a] - v[b])
            ok = gap <= c.get("within", 1.0)
            detail = f"{a} {v[a]:.2f} vs {b} {v[b]:.2f} % {what} error (gap {gap:.2f}, allowed {c.get('within', 1.0)})"
        seeds = min(value[n]["seeds"] for n in names)
        stds = [value[n]["test_std"] for n in names if value[n]["test_std"] is not None and not isnan(value[n]["test_std"])]
        if c.get("lower"):
            gap = abs(v[c["lower"][1]] - v[c["lower"][0]])
        elif c.get("lowest"):
            gap = abs(v[c["lowest"][0]] - v[best]) if not ok else min(
                [abs(v[n] - v[c["lowest"][0]]) for n in pool if n not in c["lowest"]] or [math.inf])
        else:
            gap = math.inf
        if stds and gap < max(stds):
            detail += f"; the gap is within one seed std ({max(stds):.2f})"
        elif seeds == 1 and gap < NOISE_POINTS:
            detail += f"; a gap under {NOISE_POINTS:g} point from one seed, not conclusive"
        results.append({"says": c["says"], "verdict": "holds" if ok else "does not hold", "detail": detail,
                        "seeds": seeds})
    return results


NOISE_POINTS = 1.0  # with one seed, gaps smaller than this (in points of error) are not read as findings


def fail_marks(meta: dict, stats) -> list[str]:
    """Where the paper printed "fail", did we fail too, and did we fail anywhere it did not?"""
    s = stats[(stats["experiment"] == meta["name"]) & (stats["seeds"] > 0)]
    lines = []
    for d in s.to_dict("records"):
        ours = d["failed"] * 2 > d["seeds"]
        paper = d["paper"] == "fail"
        if paper or ours:
            reported = d["paper"] is not None and not isnan(d["paper"])
            agree = ("as in the paper" if ours == paper else "unlike the paper") if reported else \
                "the paper reports no number for this row"
            lines.append(f"{d['label']}: paper {'fail' if paper else paper_cell(d['paper'])}, ours "
                         f"{'fail' if ours else 'no fail'} ({_fail_number(d, '%')}) — {agree}")
    return lines


# --- plots ------------------------------------------------------------------------------------


def build(out, quiet: bool = True) -> dict:
    """Rebuild every table, plot and the README of ``out``; returns the paths written."""
    out = Path(out)
    results = ResultsDir(out)
    manifest, runs, history = load(out)
    stats = row_stats(manifest, runs)
    write_atomic(results.runs_csv, runs.to_csv(index=False))
    write_atomic(results.rows_csv, stats.to_csv(index=False))
    write_atomic(results.history_csv, history.to_csv(index=False))
    written = {"tables": [], "plots": []}
    tables = {}
    for name, meta in manifest["experiments"].items():
        md = markdown_table(meta, stats)
        if md:
            tables[name] = md
            path = results.table(name)
            write_atomic(path, f"# {meta['title']}\n\n{md}")
            written["tables"].append(str(path))
    from .plots import plot_bars, plot_degradation, plot_depth, plot_shortcut_curves  # matplotlib only when drawing

    plots = results.plots
    if "degradation" in manifest["experiments"]:
        written["plots"] += plot_degradation(manifest, runs, history, plots)
        written["plots"] += plot_depth(manifest, runs, stats, plots)
    for name in manifest["experiments"]:
        written["plots"] += plot_bars(manifest, runs, stats, name, plots)
    if "identity_mappings" in manifest["experiments"]:
        written["plots"] += plot_shortcut_curves(manifest, runs, history, plots)
    write_atomic(results.readme, readme(out, manifest, runs, stats, tables, _plot_order(written["plots"])))
    written["readme"] = str(results.readme)
    if not quiet:
        for p in [*written["tables"], *written["plots"], written["readme"]]:
            print(p)
    return written


def refresh_readme(out) -> None:
    """Rewrite README.md alone (tables and findings again, no plots)."""
    results = ResultsDir(out)
    manifest, runs, _ = load(out)
    stats = row_stats(manifest, runs)
    tables = {n: t for n, m in manifest["experiments"].items() if (t := markdown_table(m, stats))}
    plots = sorted(str(p) for p in results.plots.glob("*.png")) if results.plots.is_dir() else []
    write_atomic(results.readme, readme(results.path, manifest, runs, stats, tables, _plot_order(plots)))


def _plot_order(paths: list[str]) -> list[str]:
    return sorted(paths, key=lambda p: (not Path(p).stem.startswith("degradation"), Path(p).stem))


def readme(out: Path, manifest, runs, stats, tables: dict, plots: list[str]) -> str:
    results = ResultsDir(out)
    inv = results.read_invocations()
    trained = [i for i in inv if i.get("trained")]
    lines = [f"# Results: preset `{manifest.get('preset')}`", ""]
    if manifest.get("preset_description"):
        lines += [manifest["preset_description"], ""]
    if manifest.get("overrides"):
        given = ", ".join(f"{k}={json.dumps(v)}" for k, v in manifest["overrides"].items())
        lines += [f"Set on the command line over the preset: {given}. Where the description above says "
                  "otherwise, these hold (the scale table below shows what ran).", ""]
    if trained:
        t = trained[-1]
        lines += ["## How these numbers were made", "",
                  f"- command: `{t['command']}`",
                  f"- machine: {t['machine']}",
                  f"- wall time: {t['wall_s']:.0f} s for the invocation that trained ({t['trained']} runs trained, "
                  f"{t['skipped']} already done, {t['jobs']} at once), finished {t['finished']}"]
        if len(trained) > 1:
            lines.append(f"- runs were trained over {len(trained)} invocations, {sum(i['wall_s'] for i in trained):.0f} s in all")
        last = inv[-1]
        if last is not trained[-1]:
            lines.append(f"- last invocation: `{last['command']}` trained {last['trained']} runs in {last['wall_s']:.1f} s")
        lines.append("")
    ok = runs[runs["status"].isin(["ok", "fail"])]
    if not ok.empty:
        lines += ["## Scale of the runs", "", "| experiment | arch (as run) | dataset | image size | width | schedule | batch |",
                  "|---|---|---|---|---|---|---|"]
        for name in manifest["experiments"]:
            sub = ok[ok["experiment"] == name]
            if sub.empty:
                continue
            d = sub.iloc[0]
            archs = ", ".join(dict.fromkeys(sub["arch"]))
            size = "native" if d["image_size"] is None or isnan(d["image_size"]) else int(d["image_size"])
            width = "default" if d["width"] is None or isnan(d["width"]) else int(d["width"])
            lines.append(f"| {name} | {archs} | {d['dataset']} | {size} | {width} | {_num(d['steps'], 0)} "
                         f"{d['schedule_unit']} | {_num(d['batch_size'], 0)} |")
        seeds = sorted(set(stats[stats["seeds"] > 0]["seeds"]))
        lines += ["", f"Seeds per row: {', '.join(map(str, seeds))}. Errors are final test / training errors "
                  "in %, median over seeds ([mean ± std] when there are several). The paper's numbers come from "
                  "its own, full-scale setup: compare orderings, not values.", ""]
    notes = results.read_notes()
    if notes:  # measurements made outside the runner, kept across rebuilds
        lines += ["## Notes", "", notes.strip(), ""]
    lines += ["## Tables", ""]
    for name, md in tables.items():
        meta = manifest["experiments"][name]
        lines += [f"### {meta['title']}", "", md]
        if meta.get("notes"):
            lines += [meta["notes"], ""]
    lines += ["## Findings", "",
              "Each of the papers' claims checked against our medians (computed, not edited):", ""]
    checked = {name: check_claims(meta, stats) for name, meta in manifest["experiments"].items() if name in tables}
    verdicts = [r["verdict"] for rs in checked.values() for r in rs]
    if verdicts:
        lines += [f"Claims checked: {len(verdicts)}; hold: {verdicts.count('holds')}; do not hold: "
                  f"{verdicts.count('does not hold')}; not checkable (rows not run): {verdicts.count('not run')}.", ""]
    any_claim = False
    for name, meta in manifest["experiments"].items():
        if name not in tables:
            continue
        results = checked[name]
        fails = fail_marks(meta, stats)
        if not results and not fails:
            continue
        any_claim = True
        lines += [f"**{name}**", ""]
        for r in results:
            lines.append(f"- {r['verdict'].upper()}: {r['says']} — {r['detail']}")
        for f in fails:
            lines.append(f"- fail marks: {f}")
        lines.append("")
    if not any_claim:
        lines += ["No claim could be checked: no finished runs.", ""]
    single = stats[(stats["seeds"] == 1)]
    if not single.empty:
        lines += ["With one seed per row there is no estimate of seed-to-seed noise; differences of a point "
                  "or less between rows should not be read as real.", ""]
    errors = runs[runs["status"] == "error"]
    if not errors.empty:
        lines += ["## Runs that raised an error", ""]
        lines += [f"- {r['experiment']}:{r['variant']} seed {r['seed']} ({r['hash']}): {r['reason']}"
                  for r in errors.to_dict("records")]
        lines.append("")
    pngs = [Path(p) for p in plots if p.endswith(".png")]
    if pngs:
        lines += ["## Plots", ""]
        lines += [f"![{p.stem}]({p.relative_to(out).as_posix()})" for p in pngs]
        lines.append("")
    lines += ["All tables and plots: `python -m ablation.report " + str(out) + "` (trains nothing). "
              "Every run: `runs.csv`; per row: `rows.csv`; curves: `history.csv`.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m ablation.report", description=__doc__.split("\n\n")[0])
    p.add_argument("dir", help="a results folder written by python -m ablation.run")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)

    def body():
        if not Path(args.dir).is_dir():
            raise ConfigError(f"{args.dir} is not a folder; give a results folder written by python -m ablation.run")
        build(args.dir, quiet=args.quiet)
        return 0

    return run_main(body)


if __name__ == "__main__":
    sys.exit(main())
