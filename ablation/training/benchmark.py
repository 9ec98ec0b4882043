"""How fast is a training step? The harness's path beside the conventional one, in one process.

    python -m ablation.bench --arch resnet56 [--device cpu|cuda] [--json]   (the command line: ablation/bench.py)

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

import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from ..nets.models import build_model, count_flops
from . import data as datasets
from .config import validate_config
from .feasibility import check_fits
from .runtime import bf16_runs
from .step import LoopState, build, next_batch, step

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
        # its images are CIFAR-shaped (32x32), whatever the synthetic dataset's own size
        self.cfg = validate_config({**cfg, "arch": arch, "batch_size": batch, "dataset": "synthetic",
                                    "image_size": 32, "device": device.type}, own_images=True)
        check_fits(self.cfg, batch=batch, images=n_images)  # before the images and the net take memory
        images, labels = _images(n_images)
        x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
        y = torch.from_numpy(labels).long()
        self.data = datasets.Data(x, y, x[:batch], y[:batch], torch.tensor(MEAN), torch.tensor(STD), 10).to(device)
        self.device = device
        self.amp = bf16_runs(self.cfg, device)
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
