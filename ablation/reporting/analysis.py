"""Mechanisms behind the numbers, from trained runs and their histories; trains nothing.

* Lesion study (Veit, Wilber and Belongie 2016, "Residual Networks Behave Like Ensembles of
  Relatively Shallow Networks", Sec. 4): at test time, unit l of a trained net is removed, so that
  its output is what its shortcut carries alone,

      x_{l+1} = f(h(x_l) (+) 0)         (the residual branch F(x_l) replaced by zero)

  which for the identity shortcut of the original unit is ``relu(x_l) = x_l``. A unit whose
  shortcut carries nothing of x (the plain net, or constant scaling with lam_s = 0) becomes the
  identity ``x_{l+1} = x_l`` where its input and output shapes agree, and cannot be removed where
  they do not. We record the test error with each unit removed alone, and with k units removed at
  random for k = 1..N (``LESION_DRAWS`` fixed draws per k, the same draws for every net of the same
  shape). Veit et al. find residual nets degrade smoothly (except at units that change the shape)
  and plain nets collapse.
* Gradient flow: the per-unit gradient norms ``||dL/dW_l||`` the trainer records at a few points of
  the schedule (``grad_norm_points``), per unit index. With constant scaling ``x_{l+1} = lam_s x_l +
  F`` the shortcut path multiplies the gradient reaching unit l by ``lam_s^(L-l)`` (He 2016, Sec. 3:
  the unrolled gradient carries the product of the lambda_i), a straight line on a log scale. The
  recorded norms are of the weights' gradients; where BN follows a convolution they are also scaled
  by 1 / (the std of that convolution's output), so they show the product only in part.
* Gate dynamics: the mean gate ``g = sigmoid(W_g x + b_g)`` per stage over training for every gated
  row (He 2016 Sec. 3.1): exclusive gating with b_g = -6 starts at ``g ~ sigmoid(-6) ~ 0.0025``,
  i.e. with the residual branch almost shut.

The lesion study needs the final weights (``checkpoint.pt`` of a finished run, loaded with
``weights_only=True``) and the test images; its results are kept in ``lesion.csv`` so that results
committed without their run folders still draw it.
"""

from __future__ import annotations

import json
import sys
import types
import warnings
from contextlib import contextmanager

import numpy as np
import torch

from ..training.data import DataNotFound
from ..core.outcomes import FINISHED
from ..core.errors import ConfigError, OneLineError
from ..core.layout import ResultsDir, RunDir
from .tables import keep_table, read_table
from ..core.text import markdown_table, num

LESION_IMAGES = 1000  # a fixed class-stratified subset of the test split
LESION_DRAWS = 3  # random subsets per k
LESION_SEED = 0
LESION_FIELDS = ("hash", "stamp", "kind", "k", "draw", "unit", "stage", "shape_change", "removed", "test_error")


# --- removing units ---------------------------------------------------------------------------


def _out_shape(unit, x) -> tuple:
    n, _, h, w = x.shape
    s = unit.stride
    return n, unit.out_channels, (h - 1) // s + 1, (w - 1) // s + 1


def carries_x(unit) -> bool:
    """Whether the unit's shortcut passes anything of x: probed with F = 0 on a positive input."""
    probe = torch.ones(1, unit.in_channels, 4, 4, device=next(unit.parameters()).device)
    was = unit.training
    unit.eval()
    try:
        with torch.no_grad():
            h = unit.shortcut(probe, torch.zeros(_out_shape(unit, probe), device=probe.device))
    finally:
        unit.train(was)
    return bool(h.abs().sum() > 0)


def changes_shape(unit) -> bool:
    return unit.stride != 1 or unit.in_channels != unit.out_channels


def removable(unit) -> bool:
    """A unit can be removed unless it has no path for x and changes the shape."""
    return carries_x(unit) or not changes_shape(unit)


def _removed_forward(unit, through_shortcut: bool):
    def forward(self, x):
        if not through_shortcut:
            return x  # the plain unit as identity
        zero = torch.zeros(_out_shape(self, x), dtype=x.dtype, device=x.device)
        return self.post(self.shortcut(x, zero))

    return types.MethodType(forward, unit)


@contextmanager
def lesioned(model, indices):
    """Within the block, the units at ``indices`` (of ``model.units()``) are removed."""
    units = model.units()
    changed = []
    try:
        for i in indices:
            unit = units[i]
            through = carries_x(unit)
            if not through and changes_shape(unit):
                raise ConfigError(f"unit {i} has no shortcut path and changes the shape: it cannot be removed")
            unit.forward = _removed_forward(unit, through)  # an instance attribute shadows the method
            changed.append(unit)
        yield model
    finally:
        for unit in changed:
            del unit.forward


# --- the lesion study of one run --------------------------------------------------------------


def load_trained(run: RunDir, device="cpu", data_cache: dict | None = None):
    """(model with the run's final weights, test data) rebuilt from the run's config.json and checkpoint."""
    from ..training import data as datasets
    from ..training.config import DEFAULTS, stored
    from ..training.step import build

    cfg = run.read_config()
    if not isinstance(cfg, dict) or not run.is_finished() or not run.checkpoint.is_file():
        raise ConfigError("no finished run with weights in the run folder")
    cfg = {**DEFAULTS, **stored(cfg)}
    data_cfg = {**cfg, "download": False}  # the data a finished run trained on is where it was
    key = datasets.load_key(data_cfg)
    cache = {} if data_cache is None else data_cache
    if key not in cache:
        cache[key] = datasets.load_for(data_cfg).to(device)
    d = cache[key]
    model, _, _ = build({**cfg, "compile": False}, d, torch.device(device))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = torch.load(run.checkpoint, map_location=device, weights_only=True)["model"]
        model.load_state_dict(state)
    except Exception as e:  # a damaged file, or weights of another version of the net: say so, go on
        raise ConfigError(f"unreadable weights in checkpoint.pt ({type(e).__name__})") from None
    return model.eval(), d


def lesion_run(model, d, images: int = LESION_IMAGES, draws: int = LESION_DRAWS, seed: int = LESION_SEED,
               device="cpu") -> list[dict]:
    """Test error (%) intact, with each unit removed alone, and with k random units removed (k = 1..N)."""
    from ..training import data as datasets
    from ..training.step import evaluate

    idx = datasets.stratified(d.test_y.cpu(), min(images, len(d.test_y))).to(d.test_y.device)
    x, y = d.test_x[idx], d.test_y[idx]

    def error() -> float:
        return round(evaluate(model, x, y, d, 1000, torch.device(device), False)[1], 4)

    units = model.units()
    ok = [i for i, u in enumerate(units) if removable(u)]
    def rec(kind, k, draw=0, unit=-1, removed=(), err=None) -> dict:
        u = units[unit] if unit >= 0 else None
        return {"kind": kind, "k": k, "draw": draw, "unit": unit, "stage": -1 if u is None else u.stage,
                "shape_change": u is not None and changes_shape(u), "removed": " ".join(map(str, removed)),
                "test_error": err}

    out = [rec("intact", 0, err=error())]
    for i in range(len(units)):
        if i in ok:
            with lesioned(model, [i]):
                out.append(rec("single", 1, unit=i, removed=[i], err=error()))
        else:
            out.append(rec("single", 1, unit=i))  # cannot be removed: no error
    rng = np.random.default_rng(seed)  # the same draws for every net with the same removable units
    for k in range(1, len(ok) + 1):
        for draw in range(draws if k < len(ok) else 1):
            pick = sorted(int(i) for i in rng.choice(ok, size=k, replace=False))
            with lesioned(model, pick):
                out.append(rec("random", k, draw, removed=pick, err=error()))
    model.eval()
    return out


def checkpoint_stamp(run: RunDir) -> str:
    """Size and modification time of the run's checkpoint: a cached result of other weights is stale."""
    st = run.checkpoint.stat()
    return f"{st.st_size}-{st.st_mtime_ns}"


def lesion_study(results: ResultsDir, runs, device=None):
    """Lesion results of the lowest finished seed of every row, as a DataFrame, and why any are missing.

    Computed where a run's weights are present and not already in ``lesion.csv`` (for the same
    checkpoint); rows of ``lesion.csv`` whose run folder is absent are kept as they are.
    Returns ``(table, notes)``; ``notes`` says what could not be computed.
    """
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    threads = torch.get_num_threads()
    if device == "cpu":
        # these nets' small convolutions gain little from a second thread, and a shared machine makes
        # several threads wait on each other (measured: elementwise ops 4x slower on 2 threads than 1)
        torch.set_num_threads(1)
    try:
        return _lesion_study(results, runs, device)
    finally:
        torch.set_num_threads(threads)


def _lesion_study(results: ResultsDir, runs, device):
    import pandas as pd
    from tqdm import tqdm

    old = _read_lesion(results)
    done = runs[runs["status"].isin(FINISHED)].sort_values("seed", kind="stable")
    wanted = list(dict.fromkeys(done.drop_duplicates(["experiment", "variant"])["hash"]))
    kept, todo, notes = {}, [], {}
    for h in wanted:
        run = results.run(h)
        cached = old[old["hash"] == h] if old is not None else None
        if not run.checkpoint.is_file():
            if cached is not None and len(cached):
                kept[h] = cached
            else:
                notes.setdefault("no weights (no run folder, or no checkpoint.pt in it)", []).append(h)
        elif cached is not None and len(cached) and (cached["stamp"].astype(str) == checkpoint_stamp(run)).all():
            kept[h] = cached
        else:
            todo.append(h)
    data_cache = {}

    def table():
        frames = [kept[h] for h in wanted if h in kept]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(LESION_FIELDS))

    # a bar where someone watches, as the trainer's (the runner builds the report quietly, and this may take
    # minutes); lesion.csv after each run, so that Ctrl-C loses one run's study at most
    for h in tqdm(todo, desc="lesion study", unit="run", disable=not todo or not sys.stderr.isatty()):
        run = results.run(h)
        try:
            model, d = load_trained(run, device, data_cache)
        except DataNotFound:
            notes.setdefault("the test images are not on this machine", []).append(h)
            continue
        except OneLineError as e:  # an unfinished run, an unreadable config, or weights that do not load
            notes.setdefault(str(e), []).append(h)
            continue
        recs = lesion_run(model, d, device=device)
        kept[h] = pd.DataFrame([{"hash": h, "stamp": checkpoint_stamp(run), **r} for r in recs], columns=list(LESION_FIELDS))
        keep_table(results, results.lesion_csv, table())
    out = table()
    if kept and not todo and old is not None and len(old) != len(out):  # rows of runs no longer in the manifest
        keep_table(results, results.lesion_csv, out)
    return out, {why: len(hashes) for why, hashes in notes.items()}


def _read_lesion(results: ResultsDir):
    return read_table(results.lesion_csv, LESION_FIELDS, {"stamp": str, "removed": str})


# --- from the histories -----------------------------------------------------------------------


def _points(history, runs, experiment: str, field: str):
    """(variant, seed, iteration, parsed value) of every history line of ``experiment`` that has ``field``."""
    sub = runs[(runs["experiment"] == experiment) & runs["status"].isin(FINISHED)]
    if field not in history.columns or sub.empty:
        return []
    h = history[history["hash"].isin(sub["hash"]) & history[field].notna()]
    who = sub.drop_duplicates("hash").set_index("hash")
    out = []
    for rec in h.to_dict("records"):
        value = rec[field]
        value = json.loads(value) if isinstance(value, str) else value
        if value:
            for variant in sub[sub["hash"] == rec["hash"]]["variant"].unique():
                out.append((variant, int(who.loc[rec["hash"], "seed"]), int(rec["iteration"]), value))
    return out


def grad_flow(history, runs, experiment: str):
    """Per variant, recorded iteration and unit index: the median over seeds of ``||dL/dW_l||``."""
    import pandas as pd

    rows = [{"variant": v, "seed": s, "iteration": it, "unit": i, "norm": n}
            for v, s, it, norms in _points(history, runs, experiment, "grad_norms") for i, n in enumerate(norms)]
    if not rows:
        return pd.DataFrame(columns=["variant", "iteration", "unit", "norm"])
    t = pd.DataFrame(rows)
    return t.groupby(["variant", "iteration", "unit"], sort=False)["norm"].median().reset_index()


def gate_dynamics(history, runs, experiment: str):
    """Per gated variant, iteration and stage: the mean gate over seeds, with the seeds' min and max."""
    import pandas as pd

    rows = [{"variant": v, "seed": s, "iteration": it, "stage": int(stage), "gate": g}
            for v, s, it, gates in _points(history, runs, experiment, "gate_mean") for stage, g in gates.items()]
    if not rows:
        return pd.DataFrame(columns=["variant", "iteration", "stage", "mean", "min", "max"])
    t = pd.DataFrame(rows).groupby(["variant", "iteration", "stage"], sort=False)["gate"]
    return t.agg(["mean", "min", "max"]).reset_index()


# --- what the README says about them ----------------------------------------------------------


def lesion_rows(manifest: dict, runs, lesion):
    """The lesion table joined with the rows that use each run: experiment, variant, seed added."""
    import pandas as pd

    if lesion is None or lesion.empty:
        return pd.DataFrame(columns=["experiment", "variant", "seed", *LESION_FIELDS])
    done = runs[runs["status"].isin(FINISHED)].sort_values("seed", kind="stable")
    first = done.drop_duplicates(["experiment", "variant"])[["experiment", "variant", "seed", "hash"]]
    return first.merge(lesion, on="hash")


def mechanism_lines(manifest: dict, runs, history, lesion, missing: dict) -> list[str]:
    """The README's section on mechanisms: what was computed from what, and the numbers behind the figures."""
    lines = ["## Mechanisms", "",
             "Why each shortcut wins or fails, computed from the trained runs without retraining "
             "(ablation/reporting/analysis.py); figures `lesion_*`, `grad_flow_*`, `gates_*` below.", ""]
    joined = lesion_rows(manifest, runs, lesion)
    lines += [f"**Lesion study** (Veit, Wilber and Belongie 2016): each unit of the lowest finished seed of each "
              f"row removed alone at test time (its output is its shortcut's alone, F = 0; a unit with no path "
              f"for x becomes the identity where its shapes agree), then k random units ({LESION_DRAWS} fixed "
              f"draws per k); test error on {LESION_IMAGES} fixed test images.", ""]
    for why, n in missing.items():
        lines += [f"Not computed for {n} run(s): {why}.", ""]
    for name in manifest["experiments"]:
        sub = joined[joined["experiment"] == name]
        if sub.empty:
            continue
        table = [["row", "seed", "intact", "one unit removed: median", "worst unit (error)", "half the units removed"]]
        for variant, g in sub.groupby("variant", sort=False):
            single = g[(g["kind"] == "single")].dropna(subset=["test_error"])
            rnd = g[g["kind"] == "random"]
            half = rnd[rnd["k"] == max(1, int(rnd["k"].max()) // 2)]["test_error"].mean() if len(rnd) else None
            worst = single.loc[single["test_error"].idxmax()] if len(single) else None
            table.append([variant, int(g["seed"].iloc[0]), num(g[g["kind"] == "intact"]["test_error"].mean()),
                          num(single["test_error"].median()),
                          "—" if worst is None else f"{int(worst['unit'])} ({num(worst['test_error'])})", num(half)])
        lines += [f"*{name}* (test error, %):", "", *markdown_table(table).splitlines(), ""]
    flows = [(name, grad_flow(history, runs, name)) for name in manifest["experiments"]]
    flows = [(n, f) for n, f in flows if not f.empty]
    if flows:
        lines += ["**Gradient flow**: ||dL/dW|| of the first unit over that of the last, median over seeds, "
                  "at the first and the last recorded iteration (below 1: the gradient shrinks on its way down).", ""]
        for name, f in flows:
            table = [["row", *(f"iteration {it}" for it in (f['iteration'].min(), f['iteration'].max()))]]
            for variant, g in f.groupby("variant", sort=False):
                ratio = []
                for it in (g["iteration"].min(), g["iteration"].max()):
                    n = g[g["iteration"] == it].sort_values("unit")["norm"].to_numpy()
                    ratio.append(f"{n[0] / n[-1]:.3g}" if len(n) > 1 and n[-1] > 0 else "—")
                table.append([variant, *ratio])
            lines += [f"*{name}*:", "", *markdown_table(table).splitlines(), ""]
    for name in manifest["experiments"]:
        gates = gate_dynamics(history, runs, name)
        if gates.empty:
            continue
        lines += [f"**Gate dynamics** ({name}): mean gate g per stage at the first and the last recorded "
                  "iteration, mean over seeds (g weighs the residual branch: y = g F + (1 - g) x for exclusive "
                  "gating, y = F + (1 - g) x for shortcut-only gating).", ""]
        table = [["row", "stage", "first", "last"]]
        for (variant, stage), g in gates.groupby(["variant", "stage"], sort=False):
            g = g.sort_values("iteration")
            table.append([variant, stage + 1, f"{g['mean'].iloc[0]:.3g}", f"{g['mean'].iloc[-1]:.3g}"])
        lines += [*markdown_table(table).splitlines(), ""]
    return lines
