"""The benchmark command: time a training step of one network, the harness's path beside the conventional one.

    python -m ablation.bench --arch resnet56 [--device cpu|cuda] [--json]

The command line of :func:`ablation.training.benchmark.measure`, which says what is measured and how.
"""

from __future__ import annotations

if __name__ == "__main__":
    from .core.errors import interrupt_quietly_while_starting

    interrupt_quietly_while_starting()

import json

import torch

from .core.errors import ArgumentParser, ConfigError, run_main
from .training.benchmark import measure
from .training.config import parse_overrides


def main(argv=None) -> int:
    ap = ArgumentParser(prog="python -m ablation.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="resnet56")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, help="steps per timed block (default 3 on CPU, 50 on GPU)")
    ap.add_argument("--reps", type=int, default=5, help="timed blocks per path; the median is reported")
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers of the conventional loop")
    ap.add_argument("--threads", type=int, help="torch threads for both paths (default: torch's choice)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a trainer setting for the harness path, e.g. --set bf16=false")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    return run_main(lambda: _bench(args))


def _bench(args) -> int:
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda but no CUDA device is available")
    for flag, value, lo in (("--batch", args.batch, 1), ("--steps", args.steps, 1), ("--reps", args.reps, 1),
                            ("--workers", args.workers, 0), ("--threads", args.threads, 1)):
        if value is not None and value < lo:
            raise ConfigError(f"{flag} must be >= {lo}, got {value}")
    cfg = parse_overrides(args.set, "--set KEY=VALUE")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    r = measure(args.arch, args.device, args.batch, args.steps, args.reps, args.workers, cfg)
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    unit = "GFLOP/s"
    print(f"{r['arch']} on {r['device']} ({r['threads']} threads), batch {r['batch']}, "
          f"median of {r['reps']} blocks of {r['steps_per_rep']} steps")
    print(f"  1. harness ({r['harness_setup']}): {r['harness_images_per_s']:9.1f} images/s")
    print(f"  2. conventional (per-sample transforms, NCHW fp32): {r['conventional_images_per_s']:9.1f} images/s")
    print(f"  3. matmul, {r['matmul_dtype']}: {r['matmul_flops_per_s'] / 1e9:9.1f} {unit}")
    print(f"  speed-up 1 / 2: {r['speedup']:.2f}x")
    print(f"  model FLOP utilisation of 1: {100 * r['harness_mfu']:.1f}% of 3 "
          f"(2: {100 * r['conventional_mfu']:.1f}%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
