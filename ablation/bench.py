"""How fast is a training step? The harness's path beside the conventional one, in one process.

    python -m ablation.bench --arch resnet56 [--device cpu|cuda] [--json]

Measured side by side on the same model and data shape (CIFAR: 32x32x3 uint8, batch 128):

1. the harness: the dataset held on the device as uint8, crop-and-flip as batched tensor
   ops, and the trainer's own step (its precision and memory-format choices);
2. the conventional loop of the widely used reference implementations: torchvision
   transforms per sample (RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor,
   Normalize) through a DataLoader, NCHW float32, an eager step reading ``loss.item()``;
3. the machine's dense matmul rate (float32 on CPU, bfloat16 on GPU).

Each figure is the median of ``--reps`` timed blocks after warm-up; the blocks of 1 and 2
alternate so that a change in the machine's load falls on both. Model FLOP utilisation takes
a training step as 3x the forward FLOPs (counted from the model) and divides by the rate of 3.
"""

from __future__ import annotations

if __name__ == "__main__":
    from .core.errors import interrupt_quietly_while_starting

    interrupt_quietly_while_starting()

import json
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from .training import data as datasets
from .training.runtime import use_bf16
from .training.step import LoopState, build, next_batch, step
from .training.config import parse_overrides, validate_config
from .core.errors import ArgumentParser, ConfigError, run_main
from .nets.models import build_model, count_flops

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)  # CIFAR-10, as the references hard-code


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_rate(device, n=None, reps=5) -> float:
    """Dense matmul FLOP/s: float32 on CPU, bfloat16 on GPU."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    n = n or (8192 if device.type == "cuda" else 2048)
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    inner = 20 if device.type == "cuda" else 2
    times = []
    for _ in range(reps + 1):
        _sync(device)
        t = time.perf_counter()
        for _ in range(inner):
            a @ b
        _sync(device)
        times.append((time.perf_counter() - t) / inner)
    return 2 * n**3 / statistics.median(times[1:])


def _images(n, seed=0):
    g = np.random.default_rng(seed)
    return g.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), g.integers(0, 10, n)


class Harness:
    """The trainer's path: uint8 data on the device, batched augmentation, the trainer's own step."""

    def __init__(self, arch, device, batch, n_images, cfg):
        self.cfg = validate_config({**cfg, "arch": arch, "batch_size": batch, "dataset": "synthetic",
                                            "device": device.type})
        images, labels = _images(n_images)
        x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
        y = torch.from_numpy(labels).long()
        self.data = datasets.Data(x, y, x[:batch], y[:batch], torch.tensor(MEAN), torch.tensor(STD), 10).to(device)
        self.device = device
        self.amp = self.cfg["bf16"] and use_bf16(device)
        torch.manual_seed(0)
        _, self.fwd, self.opt = build(self.cfg, self.data, device)
        self.state = LoopState.fresh(self.cfg, device)

    def describe(self) -> str:
        return ", ".join(["uint8 on device", "batched crop+flip", "channels_last",
                          "bf16 autocast" if self.amp else "float32", *(["compiled"] if self.cfg["compile"] else [])])

    def run(self, steps):
        for _ in range(steps):
            x, y = next_batch(self.data, self.state, self.cfg, self.device)
            step(self.fwd, self.opt, x, y, self.device, self.amp)
        _sync(self.device)


class Conventional:
    """Per-sample torchvision transforms in a DataLoader, NCHW float32, eager step."""

    def __init__(self, net, device, batch, n_images, workers):
        from PIL import Image
        from torchvision import transforms as T

        images, labels = _images(n_images)
        tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)])

        class Set(torch.utils.data.Dataset):  # what torchvision.datasets.CIFAR10 does per item
            def __len__(self):
                return len(labels)

            def __getitem__(self, i):
                return tf(Image.fromarray(images[i])), int(labels[i])

        self.loader = torch.utils.data.DataLoader(Set(), batch_size=batch, shuffle=True, num_workers=workers,
                                                  drop_last=True, pin_memory=device.type == "cuda",
                                                  persistent_workers=workers > 0)
        self.batches = iter(())
        self.device = device
        torch.manual_seed(0)
        self.model = net().to(device)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)

    def _next(self):
        try:
            return next(self.batches)
        except StopIteration:
            self.batches = iter(self.loader)
            return next(self.batches)

    def run(self, steps):
        for _ in range(steps):
            x, y = self._next()
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            loss = F.cross_entropy(self.model(x), y)
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            loss.item()  # the references log the running loss every step
        _sync(self.device)


def measure(arch="resnet56", device="cpu", batch=128, steps=None, reps=5, workers=2, cfg=None) -> dict:
    device = torch.device(device)
    steps = steps or (50 if device.type == "cuda" else 3)
    n_images = batch * max(8, steps + 1)
    harness = Harness(arch, device, batch, n_images, cfg or {})
    c = harness.cfg

    def net():  # the harness's network (its --set width, shortcut, ...), for the other path and the FLOPs
        return build_model(arch, c["shortcut"], c["order"], 10, 3, c["width"], c["match"], **c["shortcut_args"])

    flops = count_flops(net())
    paths = {"harness": harness, "conventional": Conventional(net, device, batch, n_images, workers)}
    times = {name: [] for name in paths}
    for name, path in paths.items():  # warm-up: allocator, cuDNN autotuning, compilation, workers
        path.run(max(2, steps // 2))
    for _ in range(reps):
        for name, path in paths.items():
            t = time.perf_counter()
            path.run(steps)
            times[name].append(time.perf_counter() - t)
    rate = matmul_rate(device)
    ips = {name: batch * steps / statistics.median(ts) for name, ts in times.items()}
    return {
        "arch": arch, "device": str(device), "batch": batch, "threads": torch.get_num_threads(),
        "forward_flops_per_image": flops,
        "harness_images_per_s": ips["harness"], "conventional_images_per_s": ips["conventional"],
        "matmul_flops_per_s": rate, "matmul_dtype": "bfloat16" if device.type == "cuda" else "float32",
        "speedup": ips["harness"] / ips["conventional"],
        "harness_mfu": 3 * flops * ips["harness"] / rate,
        "conventional_mfu": 3 * flops * ips["conventional"] / rate,
        "harness_setup": paths["harness"].describe(),
        "steps_per_rep": steps, "reps": reps,
    }


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
