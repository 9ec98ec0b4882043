"""What a run records: one history point at each evaluation, per-unit gradient norms, gate means, and its summary."""

from __future__ import annotations

import math

import torch

from ..core.layout import RunDir
from ..core.outcomes import OK, OUTCOME_RULE
from ..nets.models import count_flops, count_params
from .config import config_hash
from .runtime import provenance
from .schedule import Schedule
from .step import LoopState, evaluate
from .verdict import unstable_test_loss, verdict


def unit_grad_norms(model) -> list[float]:
    """||dL/dW|| over each residual unit's parameters, in unit order."""
    norms = []
    for unit in model.units() if hasattr(model, "units") else []:
        squares = [p.grad.detach().float().pow(2).sum() for p in unit.parameters() if p.grad is not None]
        norms.append(torch.stack(squares).sum().sqrt().item() if squares else 0.0)
    return [round(v, 6) for v in norms]


def gate_means(model) -> dict:
    """Mean gate value g per stage over the gated units (read after the last training step)."""
    by_stage = {}
    for unit in model.units() if hasattr(model, "units") else []:
        g = getattr(getattr(unit, "shortcut", None), "gate_mean", None)
        if g is not None:
            by_stage.setdefault(str(unit.stage), []).append(g)
    return {k: sum(v) / len(v) for k, v in by_stage.items()}


def history_point(cfg, plan: Schedule, s: LoopState, model, d, eval_idx, lr, norms, amp, final) -> dict:
    """One history point; the interval sums restart. On the last point the whole test split is used."""
    gates = gate_means(model)
    x, y = (d.test_x, d.test_y) if eval_idx is None or final else (d.test_x[eval_idx], d.test_y[eval_idx])
    test_loss, test_error = evaluate(model, x, y, d, cfg["eval_batch_size"], x.device, amp)
    rec = {"iteration": s.it, "epoch": round(s.it / plan.ipe, 4), "lr": lr,
           "train_loss": _finite(s.loss_sum.item() / s.batches),
           "train_error": round(100.0 * s.wrong.item() / s.seen, 4),
           "test_loss": _finite(test_loss), "test_error": round(test_error, 4),
           "wall_time": round(s.wall_time, 3), "images_per_s": round(s.seen / max(s.interval_time, 1e-9), 1)}
    if gates:
        rec["gate_mean"] = gates
    if norms is not None:
        rec["grad_norms"] = norms
    seen = s.seen
    s.loss_sum.zero_()
    s.wrong.zero_()
    s.seen = s.batches = 0
    s.interval_time = 0.0
    verdict(cfg, plan, s, rec, d.num_classes, len(y), seen, weights_finite(model), final)
    return rec


def weights_finite(model) -> bool:
    """Every parameter of ``model`` finite. BatchNorm's running statistics are not weights: they serve
    evaluation only, where a non-finite one shows as a non-finite test loss."""
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def _finite(v):
    return v if math.isfinite(v) else None  # JSON has no NaN


def summary(run: RunDir, s: LoopState, model, d, plan: Schedule, device, cfg: dict, amp: bool) -> dict:
    """The run's summary: its final numbers, where they came from (:func:`provenance`) and the hash of its
    config, so that a summary that is not its folder's shows (:mod:`ablation.reporting.integrity`)."""
    hist = run.read_history()
    errors = [h["test_error"] for h in hist]
    return {"status": s.status or OK, "reason": s.reason, "outcome_rule": OUTCOME_RULE,
            # evaluations whose test loss was not finite or huge, which ended no run (ablation.training.verdict)
            "test_loss_unstable_at": [h["iteration"] for h in hist if unstable_test_loss(h)],
            "final_test_error": errors[-1] if errors else None, "best_test_error": min(errors, default=None),
            "final_train_error": hist[-1]["train_error"] if hist else None, "params": count_params(model),
            "flops": count_flops(model, d.shape), "iterations": s.it, "epochs": round(s.it / plan.ipe, 4),
            "time_s": round(s.wall_time, 2), "images_per_s": round(s.images / max(s.train_time, 1e-9), 1),
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            # the thread count changes the order of float sums, hence the last digits of the numbers
            "threads": torch.get_num_threads(), **provenance(device, amp), "config_hash": config_hash(cfg)}
