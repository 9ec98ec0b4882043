"""What a grid of runs costs before it trains: FLOPs per run, and the rate that turns them into time."""

from __future__ import annotations

import json

from .data import DATASETS
from .errors import ConfigError
from .models import build_model, count_flops, count_params
from .results import ResultsDir

CPU_FLOPS_GUESS = 2e9  # per process on one core of this kind of machine, when nothing is measured yet


def images_seen(cfg: dict) -> int:
    """Training images one run processes (its length in images)."""
    if cfg.get("schedule_unit") == "epochs":
        info = DATASETS.get(cfg.get("dataset"))
        n = cfg.get("train_subset") or (info.train_images if info else 50000) - (cfg.get("val_split") or 0)
        return int(cfg["steps"] * n)
    return int(cfg["steps"] * cfg["batch_size"])


def run_flops(cfg: dict, flops_per_image: int) -> float:
    """Training FLOPs (forward + backward = 3x forward) plus the forward passes of the evaluations.

    The training error comes free from the training batches; every evaluation point but the last
    sees ``eval_subset`` test images (or all), the last one all of them.
    """
    train = 3.0 * flops_per_image * images_seen(cfg)
    info = DATASETS.get(cfg.get("dataset"))
    n_test = cfg.get("val_split") or (info.test_images if info else 10000)
    per_eval = min(cfg.get("eval_subset") or n_test, n_test)
    evals = max((cfg.get("evals") or 1) - 1, 0) * per_eval + n_test
    return train + float(flops_per_image) * evals


def estimate(configs: list[dict]) -> list[dict]:
    """Per config: parameters, forward FLOPs per image, training FLOPs (each distinct net built once)."""
    cache, rows = {}, []
    for c in configs:
        info = DATASETS[c["dataset"]]
        size = c.get("image_size") or info.size
        key = (c["arch"], c["shortcut"], json.dumps(c["shortcut_args"], sort_keys=True), c["order"], c["width"],
               c["match"], info.classes, info.channels, size)
        if key not in cache:
            m = build_model(c["arch"], c["shortcut"], c["order"], info.classes, info.channels, c["width"], c["match"],
                            **c["shortcut_args"])
            cache[key] = (count_params(m), count_flops(m, (info.channels, size, size)))
        params, flops = cache[key]
        rows.append({"params": params, "flops": flops, "train_flops": run_flops(c, flops)})
    return rows


def measured_rate(results: ResultsDir) -> float | None:
    """FLOP/s achieved by the finished runs in ``results`` (median), to turn FLOPs into time."""
    rates = []
    for run in results.finished_runs():
        try:  # a run whose files do not read tells nothing about the rate (the report names them)
            s, cfg = run.read_summary(), run.read_config()
            if s.get("time_s") and s.get("flops"):
                rates.append(run_flops(cfg, s["flops"]) / s["time_s"])
        except (AttributeError, KeyError, TypeError, ConfigError):
            continue
    return sorted(rates)[len(rates) // 2] if rates else None
