"""How long a run is: its iterations, images and epochs, from its config and the size of its training split.

The one place where a run's length is worked out: the schedule (:mod:`.schedule`), the refusal of
values the trainer could only clamp (:mod:`.clamp_refusals`) and a study's cost (:mod:`ablation.study.cost`)
all call :func:`run_length`. A step takes ``min(batch_size, n)`` of the ``n`` training images; an
epoch is ``n // batch`` whole steps (the last, partial batch of an epoch is dropped, as the trainer
draws a fresh order per epoch); ``steps`` counts iterations, or epochs with ``schedule_unit=epochs``.

The training split's size ``n`` is known before any image is loaded: every dataset's split sizes are in
:data:`ablation.training.data.DATASETS` (the validation refuses any other dataset), less ``val_split``, or
``train_subset`` where smaller. The trainer passes the count of the split it loaded, which is the same
(``tests/test_data.py`` loads each split the tests can reach and compares).
"""

from __future__ import annotations

from dataclasses import dataclass

from .data import DATASETS


def training_images(cfg: dict) -> int:
    """The images a run trains on, from its config alone: the dataset's training split less ``val_split``,
    or ``train_subset`` where it is smaller."""
    n = DATASETS[cfg["dataset"]].train_images - (cfg.get("val_split") or 0)
    subset = cfg.get("train_subset")
    return subset if subset is not None and subset < n else n


@dataclass(frozen=True)
class RunLength:
    """A run's length. ``scheduled`` is ``steps`` in iterations before the floor of one, which validation
    refuses below 1 (:func:`ablation.training.clamp_refusals.refuse_clamped`)."""

    train_images: int  # n, the training split
    batch: int  # images per step
    per_epoch: int  # iterations per epoch
    per_unit: int  # iterations per unit of ``steps``: 1, or per_epoch for a schedule in epochs
    scheduled: int
    iterations: int

    def iteration(self, at: float) -> int:
        """A point given in the schedule's unit (``steps``, a milestone) as an iteration."""
        return round(at * self.per_unit)

    @property
    def images(self) -> int:
        """Training images the run processes (a repeated image counts each time)."""
        return self.iterations * self.batch

    @property
    def epochs(self) -> float:
        return self.iterations / self.per_epoch


def run_length(cfg: dict, n_train: int | None = None) -> RunLength:
    """The length of run ``cfg``; ``n_train``: the size of its training split where the caller holds it loaded,
    else :func:`training_images`."""
    n = training_images(cfg) if n_train is None else n_train
    batch = min(cfg["batch_size"], n)
    per_epoch = n // batch
    per_unit = per_epoch if cfg.get("schedule_unit") == "epochs" else 1
    scheduled = round(cfg["steps"] * per_unit)
    return RunLength(n, batch, per_epoch, per_unit, scheduled, max(1, scheduled))
