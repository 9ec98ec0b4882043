"""Where a run computes: the device, torch's threads and determinism, and whether bf16 autocast pays."""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path

import torch


def setup_runtime(cfg) -> torch.device:
    name = cfg["device"] if cfg["device"] != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if cfg["threads"] is not None:
        torch.set_num_threads(cfg["threads"])
    if cfg["deterministic"]:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it before first use
    # warn_only: a model op without a deterministic CUDA kernel (adaptive pooling's backward) should
    # say so once rather than stop a long run
    torch.use_deterministic_algorithms(cfg["deterministic"], warn_only=True)
    torch.backends.cudnn.deterministic = cfg["deterministic"]
    torch.backends.cudnn.benchmark = not cfg["deterministic"]
    return torch.device(name)


def device_label(device) -> str:
    """``cpu``, or ``cuda:N`` with N the GPU's index on its machine (a worker may see only its own GPU)."""
    device = torch.device(device)
    if device.type != "cuda":
        return device.type
    visible = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    index = device.index or 0
    return f"cuda:{visible[index].strip() if index < len(visible) else index}"


def use_bf16(device) -> bool:
    """bf16 autocast where the hardware multiplies bf16 natively: GPUs, and CPUs with AMX tiles.

    Measured on a 2-core AMX Xeon (resnet20, fashion-mnist, batch 128, 1 thread): ~360 img/s in bf16
    against ~200 in float32. Elsewhere on CPU it would be emulated and slower, so float32 stays.
    """
    if torch.device(device).type == "cuda":
        return True
    try:
        return bool(torch.cpu._is_amx_tile_supported())
    except AttributeError:
        return False


def bf16_runs(cfg, device) -> bool:
    """Whether a run of ``cfg`` computes in bf16 on ``device``: ``bf16`` asks for it, the hardware has it
    natively (:func:`use_bf16`), and on a CPU ``cpu_bf16`` allows it. ``cpu_bf16=false`` keeps an AMX CPU
    in float32, as a CPU without AMX runs the same config, so that seeds added there match a study made
    on the other; it is a runtime key (the hash stays) and the summary records the precision that ran."""
    device = torch.device(device)
    return cfg["bf16"] and use_bf16(device) and (device.type == "cuda" or cfg["cpu_bf16"])


def cpu_model() -> str:
    """The CPU's model name as the kernel reports it (``/proc/cpuinfo``), else what Python knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def provenance(device, amp: bool) -> dict:
    """Where a run's numbers came from, for its summary: the same config gives other last digits on
    another machine, in another precision or under another torch.

    ``machine`` is the GPU's name on CUDA, else the CPU's model; ``precision`` is what ran (bf16=true
    resolves to float32 where :func:`use_bf16` says the hardware lacks native bf16).
    """
    device = torch.device(device)
    machine = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()
    return {"machine": machine, "precision": "bf16" if amp else "float32", "torch": torch.__version__}


def autocast(device, on: bool):
    """bf16 autocast on ``device`` where ``on``, else nothing."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if on else contextlib.nullcontext()
