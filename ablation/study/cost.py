"""What a grid of runs costs before it trains: FLOPs per run, and the rate that turns them into time."""

from __future__ import annotations

import math
import time

import torch

from ..training.feasibility import memory_needed, run_footprint
from ..training.data import DATASETS
from ..training.length import run_length
from ..core.errors import ConfigError
from ..nets.models import count_flops
from ..core.layout import ResultsDir

CPU_FLOPS_GUESS = 2e9  # per process on one core of this kind of machine, when nothing is measured yet


def images_seen(cfg: dict) -> int:
    """Training images one run processes (its length in images, :func:`ablation.training.length.run_length`)."""
    return run_length(cfg).images


def total_iterations(cfg: dict) -> int:
    """Iterations of one run, as the trainer's schedule counts them (:func:`ablation.training.length.run_length`)."""
    return run_length(cfg).iterations


def run_flops(cfg: dict, flops_per_image: int) -> float:
    """Training FLOPs (forward + backward = 3x forward) plus the forward passes of the evaluations.

    The training error comes free from the training batches; every evaluation point but the last
    sees ``eval_subset`` test images (or all), the last one all of them.
    """
    train = 3.0 * flops_per_image * images_seen(cfg)
    n_test = cfg.get("val_split") or DATASETS[cfg["dataset"]].test_images
    per_eval = min(cfg.get("eval_subset") or n_test, n_test)
    evals = max((cfg.get("evals") or 1) - 1, 0) * per_eval + n_test
    return train + float(flops_per_image) * evals


def estimate(configs: list[dict]) -> list[dict]:
    """Per config: parameters, forward FLOPs per image, training FLOPs and the memory estimate in bytes
    (:mod:`ablation.training.feasibility`), from the net's numbers: nothing is built, at any depth."""
    rows = []
    for c in configs:
        fp = run_footprint(c)
        rows.append({"params": fp.params, "flops": fp.flops, "train_flops": run_flops(c, fp.flops),
                     "memory": memory_needed(c, fp)["total"]})
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


def measure_rate(cfg: dict, seconds: float = 1.0, max_steps: int = 50) -> dict:
    """Time a few training steps of ``cfg``'s net where this process would train it.

    Random images of the run's dataset shape go through the trainer's own step (its device,
    threads, precision): one warm-up step (allocations, kernel choice), then steps until
    ``seconds`` have passed, at least one (a paper-scale net on a CPU takes seconds a step). The
    rate counts a step as 3x the forward FLOPs, as :func:`run_flops` does, and leaves evaluation out.
    Returns ``{"flops_per_s", "images_per_s", "steps", "device", "arch", "threads"}``.
    """
    import torch

    from ..training.config import validate_config

    cfg = validate_config({**cfg, "quiet": True})
    # the trainer's runtime settings are process-wide: put them back, as a dry run may run in a longer process
    saved = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled(), torch.backends.cudnn.deterministic,
             torch.backends.cudnn.benchmark)
    try:
        return _time_steps(cfg, seconds, max_steps)
    finally:
        torch.set_num_threads(saved[0])
        torch.use_deterministic_algorithms(saved[1], warn_only=saved[2])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[3], saved[4]


def _time_steps(cfg: dict, seconds: float, max_steps: int) -> dict:
    import torch

    from ..training import data as datasets
    from ..training.runtime import bf16_runs, device_label, setup_runtime
    from ..training.step import LoopState, build, next_batch, step

    device = setup_runtime(cfg)
    info = DATASETS[cfg["dataset"]]
    size = cfg["image_size"] or info.size
    batch = cfg["batch_size"]
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (4 * batch, info.channels, size, size), generator=g, dtype=torch.uint8)
    y = torch.randint(0, info.classes, (4 * batch,), generator=g)
    d = datasets.Data(x, y, x[:batch], y[:batch], torch.full((info.channels,), 0.5), torch.full((info.channels,), 0.25),
                      info.classes).to(device)
    model, fwd, opt = build(cfg, d, device)
    s = LoopState.fresh(cfg, device)
    amp = bf16_runs(cfg, device)

    def steps(n):
        for _ in range(n):
            xb, yb = next_batch(d, s, cfg, device)
            step(fwd, opt, xb, yb, device, amp)
        if device.type == "cuda":
            torch.cuda.synchronize()

    steps(1)
    n, t0 = 0, time.perf_counter()
    while n < 1 or (time.perf_counter() - t0 < seconds and n < max_steps):
        steps(1)
        n += 1
    ips = n * batch / (time.perf_counter() - t0)
    return {"flops_per_s": 3.0 * count_flops(model, d.shape) * ips, "images_per_s": ips, "steps": n,
            "device": device_label(device), "arch": cfg["arch"], "threads": torch.get_num_threads()}


def run_rate(results: ResultsDir, backend, cfg: dict) -> tuple[float, dict]:
    """FLOP/s of one run, and where the figure comes from.

    The finished runs in ``results`` (``{"source": "finished", "runs", "folder"}``), else a few
    steps of ``cfg`` timed by :func:`measure_rate` where ``backend`` trains a run
    (``{"source": "timed", **measurement}``), else :data:`CPU_FLOPS_GUESS` (``{"source": "guess",
    "error"}``).
    """
    rate = measured_rate(results)
    if rate:
        return rate, {"source": "finished", "runs": len(results.finished_runs()), "folder": str(results.path)}
    try:
        m = backend.call(measure_rate, {**cfg, "threads": backend.threads() or cfg.get("threads")})
    except ConfigError:
        raise
    except Exception as e:  # an estimate must not stop a dry run
        return CPU_FLOPS_GUESS, {"source": "guess", "error": f"{type(e).__name__}: {e}"}
    return m["flops_per_s"], {"source": "timed", **m}


def plan(run_flops_todo: list[float], rate: float, jobs: int, gpus_per_run: float) -> dict:
    """Run-hours, GPU-hours and wall time of training ``run_flops_todo`` at ``rate`` FLOP/s per run.

    With ``jobs`` runs at once the wall time is at least the total over ``jobs`` and at least the
    longest run (runs are not split). GPU-hours = run-hours x ``gpus_per_run``, which assumes that
    runs sharing a GPU each keep the rate of one run alone: a lower bound where they do not.
    """
    seconds = [f / rate for f in run_flops_todo]
    total = sum(seconds)
    wall = max(total / max(jobs, 1), max(seconds, default=0.0))
    return {"run_hours": total / 3600, "gpu_hours": total / 3600 * gpus_per_run, "wall_s": wall,
            "jobs": jobs, "gpus_per_run": gpus_per_run}


def slots(cpus: float, gpus: float, cpus_per_run: float, gpus_per_run: float) -> int:
    """Runs that fit at once on ``cpus`` and ``gpus`` when each takes ``cpus_per_run`` and ``gpus_per_run``."""
    fit = math.floor(cpus / cpus_per_run + 1e-9) if cpus_per_run > 0 else math.inf
    if gpus_per_run > 0:
        fit = min(fit, math.floor(gpus / gpus_per_run + 1e-9))
    return int(fit) if fit != math.inf else 1
