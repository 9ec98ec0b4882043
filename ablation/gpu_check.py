"""Check the ``paper`` preset on a GPU: every row of He 2016 Table 1 at full size, briefly, with its speed and memory.

    python -m ablation.gpu_check                                  # a GPU machine: 300 iterations per row
    python -m ablation.gpu_check --device cpu --preset quick --steps 3 --warmup 1   # what a CPU can check

Each row of an experiment (default ``identity_mappings``, He 2016 Table 1) is expanded under the
preset exactly as ``python -m ablation.run`` would expand it (net, shortcut, precision, data
options), then trained for ``--steps`` iterations with the trainer's own pieces (``train.build``,
``next_batch``, ``step``) on random uint8 images of the dataset's shape held on the device: no
download is needed, and a step's speed does not depend on the pixels. It prints, per row, the
images/s after ``--warmup`` iterations, the peak GPU memory and the last loss, and exits 1 if any
row raised or ended with a non-finite loss (2 on bad input). The target is all rows in under 5
minutes on one H200; what one H200 gave (about four minutes for the twelve rows) is in the
documentation's clusters and GPUs page.
"""

from __future__ import annotations

if __name__ == "__main__":
    from .core.errors import interrupt_quietly_while_starting

    interrupt_quietly_while_starting()

import math
import sys
import time
import traceback

import torch

from .core.errors import ArgumentParser, ConfigError, run_main, unknown_choice
from .nets.models import count_params
from .nets.registry import list_shortcuts
from .study import expansion, selection
from .study import catalogue
from .training import data as datasets
from .training import runtime, step
from .training.config import parse_settings


def random_data(cfg: dict, n: int) -> datasets.Data:
    """``n`` random uint8 images and labels of the shape and classes of ``cfg``'s dataset."""
    info = datasets.DATASETS[cfg["dataset"]]
    size = cfg["image_size"] or info.size
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, info.channels, size, size), generator=g, dtype=torch.uint8)
    y = torch.randint(0, info.classes, (n,), generator=g)
    return datasets.make_data(x, y, x[:1], y[:1], info.classes, cfg["normalize"])


def check_row(cfg: dict, steps: int, warmup: int) -> dict:
    """Train ``cfg`` for ``steps`` iterations; images/s over the last ``steps - warmup`` of them."""
    device = runtime.setup_runtime(cfg)
    d = random_data(cfg, cfg["batch_size"] * 4).to(device)
    torch.manual_seed(cfg["seed"])
    model, fwd, opt = step.build(cfg, d, device)
    state = step.LoopState.fresh(cfg, device)
    amp = cfg["bf16"] and runtime.use_bf16(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = None
    for i in range(steps):
        if i == warmup:
            _sync(device)
            start = time.perf_counter()
        x, y = step.next_batch(d, state, cfg, device)
        _, loss = step.step(fwd, opt, x, y, device, amp)
    _sync(device)
    seconds = time.perf_counter() - start
    return {"params": count_params(model), "images_per_s": (steps - warmup) * cfg["batch_size"] / seconds,
            "peak_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
            "loss": loss.item(), "precision": "bf16 autocast" if amp else "float32"}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv=None) -> int:
    ap = ArgumentParser(prog="python -m ablation.gpu_check", description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="paper")
    ap.add_argument("--experiment", default="identity_mappings")
    ap.add_argument("--rows", help="comma list of the experiment's rows (default: all)")
    ap.add_argument("--experiments", action="append", metavar="DIR", help="a folder of your own experiment files "
                    "(as python -m ablation.run; repeatable; default: ./experiments where there is one)")
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--steps", type=int, default=300, help="iterations per row (default 300)")
    ap.add_argument("--warmup", type=int, default=20, help="untimed iterations first (default 20)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="settings",
                    help="a config key for every row, e.g. --set width=4 (repeatable)")
    args = ap.parse_args(argv)
    return run_main(lambda: _check(args))


def _runs(args) -> list:
    """The rows asked for, expanded under the preset as the runner expands them; ConfigError for bad input."""
    if not 0 <= args.warmup < args.steps:
        raise ConfigError(f"--warmup ({args.warmup}) must be below --steps ({args.steps})")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("no CUDA device here; --device cpu checks that every row runs")
    folders = catalogue.user_folders(args.experiments)
    exps, presets = catalogue.load_experiments(folders), catalogue.load_presets(folders)
    if args.preset not in presets:
        raise unknown_choice("preset", args.preset, presets)
    if args.experiment not in exps:
        raise unknown_choice("experiment", args.experiment, exps)
    rows = (selection.select(exps, args.experiment, args.rows, list_shortcuts()) if args.rows
            else exps[args.experiment].variants)
    return expansion.expand(exps, rows, presets[args.preset], seeds=1, overrides={"device": args.device},
                            settings=parse_settings(args.settings))


def _check(args) -> int:
    started = time.perf_counter()
    runs = _runs(args)
    gpu = torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu"
    print(f"{args.experiment} under --preset {args.preset} on {gpu}: {args.steps} iterations per row, "
          f"images/s over the last {args.steps - args.warmup}")
    print(f"{'row':22} {'arch':10} {'params':>10} {'precision':14} {'images/s':>9} {'peak GiB':>8} {'loss':>8}  status")
    failed = 0
    for r in runs:
        c = r.config
        try:
            out = check_row(c, args.steps, args.warmup)
        except Exception as e:  # a row that errors is what this check exists to find; report it and go on
            failed += 1
            print(f"{r.variant:22} {c['arch']:10} error: {type(e).__name__}: {e}")
            traceback.print_exc(file=sys.stderr)
            continue
        ok = math.isfinite(out["loss"])
        failed += not ok
        peak = "-" if out["peak_gib"] is None else f"{out['peak_gib']:.2f}"
        print(f"{r.variant:22} {c['arch']:10} {out['params']:>10,} {out['precision']:14} "
              f"{out['images_per_s']:>9.0f} {peak:>8} {out['loss']:>8.3f}  {'ok' if ok else 'loss not finite'}")
    wall = time.perf_counter() - started
    print(f"{len(runs)} rows, {failed} failed, {wall:.0f} s in all")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
