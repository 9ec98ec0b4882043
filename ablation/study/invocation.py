"""The invocation log of a results folder: what each ``python -m ablation.run`` trained, how long it took, where."""

from __future__ import annotations

import datetime as dt
import os
import platform
from ..core.layout import ResultsDir
from ..training.runtime import cpu_model


def machine() -> str:
    """The CPU, its cores, the GPU if any, and the Python and torch versions."""
    import torch

    cpu = cpu_model()
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"
    return f"{cpu}, {os.cpu_count()} cores{gpu}; Python {platform.python_version()}, torch {torch.__version__}"


def log_invocation(results: ResultsDir, command: str, wall: float, result: dict, jobs) -> None:
    """One line of ``invocations.jsonl`` for an invocation that ran the grid (``result``: run_grid's counts)."""
    results.log_invocation({
        "command": command, "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "wall_s": round(wall, 1), "machine": machine(), "jobs": result.get("jobs", jobs),
        "backend": result.get("backend"),
        **{k: result[k] for k in ("trained", "skipped", "errors", "interrupted")}})
