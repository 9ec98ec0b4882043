"""Signal propagation of a study's trained runs, at initialisation and at the end of training.

For each row of each experiment in a results folder, its lowest finished seed (as the lesion
study, ablation.reporting.analysis): the net rebuilt from the run's ``config.json`` with the run's seed
(its initialisation) and the same net with the run's final weights (``checkpoint.pt``), each
through :func:`ablation.nets.signal.measure` on one fixed batch of the run's test images (class-
stratified) with their labels: the backward through the loss and the one from a random direction at
the last unit, without the head. Kept in ``<dir>/signal.csv`` per run and checkpoint, so that a
report rebuilt over the same runs measures nothing again and results committed without their
run folders still draw it. Trains nothing.
"""

from __future__ import annotations

import torch

from ..core.outcomes import FINISHED
from ..core.errors import OneLineError
from ..core.layout import ResultsDir
from ..nets.signal import ADDED_FIELDS, UNIT_SIGNAL_FIELDS, measure
from ..training.data import DataNotFound
from .analysis import checkpoint_stamp, load_trained
from .signal_ladder import read_signal_table
from .tables import keep_table

SIGNAL_IMAGES = 64  # the batch: enough for BN's batch statistics at the last stage of a 16x16 net
SIGNAL_FIELDS = ("hash", "stamp", "when", *UNIT_SIGNAL_FIELDS)
WHEN = ("init", "end")


def read_signal(results: ResultsDir):
    return read_signal_table(results.signal_csv, SIGNAL_FIELDS, {"stamp": str})


def _batch(d, device):
    from ..training import data as datasets

    idx = datasets.stratified(d.test_y.cpu(), min(SIGNAL_IMAGES, len(d.test_y))).to(d.test_y.device)
    return datasets.to_input(d.test_x[idx], d).to(device), d.test_y[idx].to(device)


def run_signal(run, device="cpu", data_cache: dict | None = None) -> list[dict]:
    """Records of :data:`SIGNAL_FIELDS` (less hash and stamp) for one finished run: at init and at the end."""
    from ..training.config import stored
    from ..training.step import build

    trained, d = load_trained(run, device, data_cache)
    cfg = stored(run.read_config())
    # the trainer's initialisation of this run: build seeds it with the run's seed
    initial, _, _ = build({**cfg, "compile": False}, d, torch.device(device))
    x, y = _batch(d, device)
    out = []
    for when, model in zip(WHEN, (initial, trained)):
        out += [{"when": when, **r} for r in measure(model, x, y)]
    return out


def signal_study(results: ResultsDir, runs, device=None):
    """The signal table of the lowest finished seed of every row, and why any are missing.

    Returns ``(table, notes)`` as :func:`ablation.reporting.analysis.lesion_study`; rows of ``signal.csv`` whose
    run folder is absent are kept as they are.
    """
    import pandas as pd

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    threads = torch.get_num_threads()
    if device == "cpu":
        torch.set_num_threads(1)  # as the lesion study: small nets, a shared machine
    try:
        old = read_signal(results)
        done = runs[runs["status"].isin(FINISHED)].sort_values("seed", kind="stable")
        wanted = list(dict.fromkeys(done.drop_duplicates(["experiment", "variant"])["hash"]))
        kept, notes, data_cache = {}, {}, {}

        def table():
            frames = [kept[h] for h in wanted if h in kept]
            return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(SIGNAL_FIELDS))

        changed = False
        for h in wanted:
            run = results.run(h)
            cached = old[old["hash"] == h] if old is not None else None
            has = cached is not None and len(cached) > 0
            if not run.checkpoint.is_file():
                if has:
                    kept[h] = cached
                else:
                    notes.setdefault("no weights (no run folder, or no checkpoint.pt in it)", []).append(h)
                continue
            stamp = checkpoint_stamp(run)
            # measured before the head-independent backward existed: measured again, the weights being there
            complete = has and not cached[list(ADDED_FIELDS)].isna().all().any()
            if complete and (cached["stamp"].astype(str) == stamp).all():
                kept[h] = cached
                continue
            try:
                recs = run_signal(run, device, data_cache)
            except DataNotFound:
                notes.setdefault("the test images are not on this machine", []).append(h)
                continue
            except OneLineError as e:  # as the lesion study: an unfinished run, an unreadable config or weights
                notes.setdefault(str(e), []).append(h)
                continue
            kept[h] = pd.DataFrame([{"hash": h, "stamp": stamp, **r} for r in recs], columns=list(SIGNAL_FIELDS))
            keep_table(results, results.signal_csv, table())  # Ctrl-C loses one run at most
            changed = True
        out = table()
        if changed or (old is not None and len(old) != len(out)):  # cached rows after the last write, or gone ones
            keep_table(results, results.signal_csv, out)
        return out, {why: len(hs) for why, hs in notes.items()}
    finally:
        torch.set_num_threads(threads)


def signal_figures(results: ResultsDir, manifest: dict, runs) -> list[str]:
    """``plots/signal_<experiment>`` for every experiment with measured runs; the paths written."""
    table, _ = signal_study(results, runs)  # what is missing is said by the lesion study's notes (the same rule)
    if table.empty:
        return []
    from .signal_plots import plot_runs

    paths = []
    for name in manifest["experiments"]:
        paths += plot_runs(runs, table, name, results.plots)
    return paths
