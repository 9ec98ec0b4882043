"""Values the trainer could only clamp, refused in validation: a run runs as its config says, or not at all.

The trainer takes ``min(batch_size, n)`` images a step and ``max(1, steps * iterations per epoch)``
iterations (:mod:`.length`); a batch larger than the training split, or a schedule in epochs shorter than one
iteration, would run as something else than its config (and its hash, and the tables) say. Where a
value is adjusted instead (a subset larger than its split is the whole split: the same images,
:func:`ablation.training.config.validate_config`, with a note; more evaluation points than iterations:
one at each iteration, each in ``history.jsonl`` with its iteration), the config or the history records what ran.
"""

from __future__ import annotations

from ..core.errors import ConfigError
from .length import run_length


def _limit(cfg: dict) -> str:
    """What limits the training images, for messages (a subset beyond its split is null by now)."""
    if cfg["train_subset"] is not None:
        return f" (train_subset={cfg['train_subset']})"
    return f" (val_split={cfg['val_split']})" if cfg["val_split"] else ""


def refuse_clamped(cfg: dict) -> None:
    """ConfigError for a batch larger than the training images or a schedule shorter than one iteration."""
    length = run_length(cfg)
    n = length.train_images
    if cfg["batch_size"] > n:
        raise ConfigError(f"batch_size={cfg['batch_size']} is more than the {n} training images of "
                          f"{cfg['dataset']}{_limit(cfg)}: a step cannot hold more; set batch_size <= {n}")
    if length.scheduled < 1:
        raise ConfigError(f"steps={cfg['steps']:g} epochs is less than one iteration ({length.per_epoch} iterations "
                          f"per epoch of {n} images at batch_size={cfg['batch_size']}); set more steps")
