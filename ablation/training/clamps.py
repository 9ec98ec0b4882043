"""Values the trainer could only clamp, refused in validation: a run runs as its config says, or not at all.

The trainer takes ``min(batch_size, n)`` images a step and ``max(1, steps * iterations per epoch)``
iterations; a batch larger than the training split, or a schedule in epochs shorter than one
iteration, would run as something else than its config (and its hash, and the tables) say. Where a
value is adjusted instead (a subset larger than its split is the whole split: the same images,
:func:`ablation.training.config.validate_config`, with a note; more evaluation points than iterations:
one at each iteration, each in ``history.jsonl`` with its iteration), the config or the history records what ran.
"""

from __future__ import annotations

from ..core.errors import ConfigError
from .data import DATASETS


def training_images(cfg: dict) -> tuple[int, str]:
    """The images a run trains on (after ``val_split`` and ``train_subset``) and what limits them, for messages."""
    info = DATASETS[cfg["dataset"]]
    n = info.train_images - cfg["val_split"]
    if cfg["train_subset"] is not None and cfg["train_subset"] < n:
        return cfg["train_subset"], f" (train_subset={cfg['train_subset']})"
    return n, f" (val_split={cfg['val_split']})" if cfg["val_split"] else ""


def refuse_clamped(cfg: dict) -> None:
    """ConfigError for a batch larger than the training images or a schedule shorter than one iteration."""
    n, why = training_images(cfg)
    if cfg["batch_size"] > n:
        raise ConfigError(f"batch_size={cfg['batch_size']} is more than the {n} training images of "
                          f"{cfg['dataset']}{why}: a step cannot hold more; set batch_size <= {n}")
    per_epoch = n // cfg["batch_size"]
    iterations = round(cfg["steps"] * (per_epoch if cfg["schedule_unit"] == "epochs" else 1))
    if iterations < 1:
        raise ConfigError(f"steps={cfg['steps']:g} epochs is less than one iteration ({per_epoch} iterations per "
                          f"epoch of {n} images at batch_size={cfg['batch_size']}); set more steps")
