"""The schedule of a run in iterations: its length, evaluation points, the learning rate at each step and the warm-up.

He 2015 (4.2): lr 0.1 divided by 10 at 32k and 48k iterations, stop at 64k; ``warmup_lr=0.01`` holds a
smaller rate until the training error falls below 80% (their 110-layer recipe).
"""

from __future__ import annotations

from dataclasses import dataclass

from .length import run_length
from .step import LoopState


@dataclass
class Schedule:
    """The schedule in iterations: length, lr milestones, evaluation points, gradient-norm points."""

    ipe: int  # iterations per epoch
    total: int
    milestones: list
    evals: set
    grad_points: set

    @classmethod
    def of(cls, cfg, n_train) -> "Schedule":
        """The plan of ``cfg`` on a training split of ``n_train`` images (its length: :mod:`.length`)."""
        length = run_length(cfg, n_train)
        total = length.iterations
        grad_points = {min(total, max(1, round(f * total))) for f in cfg["grad_norm_points"]}
        evals = {max(1, round(total * k / cfg["evals"])) for k in range(1, cfg["evals"] + 1)} | grad_points | {total}
        return cls(length.per_epoch, total, [length.iteration(m) for m in cfg["milestones"]], evals, grad_points)


_WARMUP_WINDOW = 20  # iterations over which the warm-up training error is measured


def learning_rate(cfg, plan: Schedule, s: LoopState) -> float:
    if s.warm:
        return cfg["warmup_lr"]
    return cfg["lr"] * cfg["gamma"] ** sum(s.it >= m for m in plan.milestones)


def accumulate(cfg, s: LoopState, loss, wrong, n):
    """Sum the interval's training loss and errors on the device; read them only at evaluation points."""
    s.loss_sum += loss
    s.wrong += wrong
    s.seen, s.batches, s.images = s.seen + n, s.batches + 1, s.images + n
    if s.warm:  # He 2015: the small rate holds until the training error is below 80%
        s.win_wrong += wrong
        s.win_seen += n
        if s.it >= cfg["warmup_max_iters"]:
            s.warm = False
        elif s.it % _WARMUP_WINDOW == 0:
            s.warm = s.win_wrong.item() / s.win_seen >= cfg["warmup_until_error"]
            s.win_wrong.zero_()
            s.win_seen = 0
