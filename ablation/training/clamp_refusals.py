"""Values the trainer could only clamp or round, refused in validation: a run runs as its config says, or not at all.

The trainer takes ``min(batch_size, n)`` images a step and ``max(1, steps * iterations per epoch)``
iterations (:mod:`.length`); a batch larger than the training split, or a schedule in epochs shorter than one
iteration, would run as something else than its config (and its hash, and the tables) say. So would
more evaluation points than iterations, other than the default (one at each iteration: ``evals=100000`` of
a 20-iteration run makes 20), and milestones that round onto one iteration, or onto iteration 0 (the rate
would drop twice at once, or before the first step), or that lie between two iterations. Where a value is
adjusted instead (a subset larger than its split is the whole split: the same images,
:func:`ablation.training.config.validate_config`, with a note), the config records what ran.
"""

from __future__ import annotations

from ..core.errors import ConfigError
from .length import RunLength, run_length


def _limit(cfg: dict) -> str:
    """What limits the training images, for messages (a subset beyond its split is null by now)."""
    if cfg["train_subset"] is not None:
        return f" (train_subset={cfg['train_subset']})"
    return f" (val_split={cfg['val_split']})" if cfg["val_split"] else ""


def refuse_clamped(cfg: dict, evals_default: int | None = None) -> None:
    """ConfigError for a batch larger than the training images, a schedule shorter than one iteration, more
    evaluation points than iterations unless ``evals`` is ``evals_default`` (the schema's 40, which is one point
    per iteration of a shorter run, as the default milestones beyond it never drop the rate), and milestones the
    schedule would round."""
    length = run_length(cfg)
    n = length.train_images
    if cfg["batch_size"] > n:
        raise ConfigError(f"batch_size={cfg['batch_size']} is more than the {n} training images of "
                          f"{cfg['dataset']}{_limit(cfg)}: a step cannot hold more; set batch_size <= {n}")
    if length.scheduled < 1:
        raise ConfigError(f"steps={cfg['steps']:g} epochs is less than one iteration ({length.per_epoch} iterations "
                          f"per epoch of {n} images at batch_size={cfg['batch_size']}); set more steps")
    if cfg["evals"] > length.iterations and cfg["evals"] != evals_default:
        raise ConfigError(f"evals={cfg['evals']} is more than the {length.iterations} iterations of the run: it would "
                          f"evaluate {length.iterations} times, once per iteration; set evals <= {length.iterations}")
    _refuse_rounded_milestones(cfg, length)


def _refuse_rounded_milestones(cfg: dict, length: RunLength) -> None:
    """ConfigError for milestones within the run that the schedule would round: onto one iteration, onto
    iteration 0 from a later point, or (in iterations) between two iterations. Milestones beyond the run (the
    defaults of a shorter run) never drop the rate and are left alone."""
    unit, at = cfg["schedule_unit"], {}
    for m in cfg["milestones"]:
        it = length.iteration(m)
        if it > length.iterations:
            continue
        if length.per_unit == 1 and m != int(m):
            raise ConfigError(f"milestones entry {m:g} lies between two iterations; give whole iterations")
        if m > 0 and it == 0:
            raise ConfigError(f"milestones entry {m:g} ({unit}) rounds to iteration 0 ({length.per_unit} iterations "
                              f"per epoch): the rate would drop before the first step; set a later milestone")
        if it in at:
            raise ConfigError(f"milestones {at[it]:g} and {m:g} ({unit}) both fall on iteration {it}: the rate would "
                              f"drop twice at once; set milestones that lie on different iterations")
        at[it] = m
