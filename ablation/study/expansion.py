"""Rows into runs: each row's config merged over its preset, validated, hashed, once per seed.

The config of one run is merged in this order, later winning::

    config.DEFAULTS < [base] < preset < experiment's [presets.<name>] < [[variant]]
        < the row's [presets.<name>] < command line

A row's ``depth`` (a ladder's, :mod:`ablation.study.ladder`) then sets the net's depth under every
preset: the preset's ``arch_map`` does not change it, as ``--depth`` does not.

A run is identified by a hash of the merged config (keys that cannot change the numbers, such as
the device or the thread count, left out: :func:`ablation.training.config.identity`).
"""

from __future__ import annotations

import copy

from ..core.errors import ConfigError
from ..training import config as schema
from ..training.config import config_hash
from .depth import check_depth, is_cifar_basic
from .experiments import Experiment, Preset, Run, Variant


def _deep_merge(a: dict, b: dict) -> dict:
    out = copy.deepcopy(a)
    for k, v in b.items():
        out[k] = copy.deepcopy(v)
    return out


def merged_config(exp: Experiment, variant: Variant, preset: Preset, overrides: dict | None = None,
                  settings: dict | None = None, keeps_depth: bool | None = None) -> dict:
    """The config of one row under one preset, before the seed and before validation.

    ``exp`` gives ``[base]`` and ``[presets.*]``: the row's own experiment, or for a ladder's row the
    experiment it comes from (:attr:`Variant.rows_of`). ``overrides`` are the runner's own options (dataset,
    depth, device; None means not given); ``settings`` are ``--set key=value`` pairs, applied last as given
    (null included). ``keeps_depth``: the row's experiment sweeps depth, so ``--depth`` leaves it as it is
    (default: :func:`sweeps_depth` of ``exp``).
    """
    cfg, arch_map = _before_arch_map(exp, variant, preset)
    local = exp.presets.get(preset.name)
    if "arch" in cfg:
        cfg["arch"] = arch_map.get(cfg["arch"], cfg["arch"])
    if variant.depth is not None:  # the row's depth is the point of the row: no preset shrinks it
        cfg["arch"] = f"resnet{variant.depth}"
    overrides = dict(overrides or {})
    depth = overrides.pop("depth", None)
    keeps_depth = sweeps_depth(exp) if keeps_depth is None else keeps_depth
    if depth is not None and "arch" in cfg and is_cifar_basic(cfg["arch"]) and not keeps_depth:
        cfg["arch"] = f"resnet{check_depth(depth)}"
    cfg = _deep_merge(cfg, {k: v for k, v in overrides.items() if v is not None})
    settings = settings or {}
    cfg = _deep_merge(cfg, settings)
    # milestones_at is the milestones of its layer, so the last layer that gives either decides
    fractions = None
    layers = [(preset.config, preset.milestones_at), (variant.config, None),
              (variant.presets.get(preset.name, {}), None), (settings, None)]
    if local:
        layers.insert(1, (local.config, local.milestones_at))
    for layer, at in layers:
        if at is not None:
            fractions = at
        elif "milestones" in layer:
            fractions = None
    if fractions is not None:
        cfg["milestones"] = milestones_at(fractions, cfg.get("steps", schema.DEFAULTS["steps"]),
                                          cfg.get("schedule_unit", schema.DEFAULTS["schedule_unit"]))
    return cfg


def _before_arch_map(exp: Experiment, variant: Variant, preset: Preset) -> tuple[dict, dict]:
    """The row's config under the preset before the preset's ``arch_map``, and that map (the experiment's
    ``[presets.<name>]`` refining it)."""
    cfg = _deep_merge(exp.base, preset.config)
    local = exp.presets.get(preset.name)
    arch_map = {**preset.arch_map, **(local.arch_map if local else {})}
    if local:
        cfg = _deep_merge(cfg, local.config)
    cfg = _deep_merge(cfg, variant.config)  # the row's own keys are what it compares: no preset overrides them
    cfg = _deep_merge(cfg, variant.presets.get(preset.name, {}))
    return cfg, arch_map


def arch_asked(exp: Experiment, variant: Variant, preset: Preset, arch: str) -> str | None:
    """The architecture the row names where the preset's ``arch_map`` runs it as ``arch`` (resnet110 for the quick
    preset's resnet32); None where the row runs what it names, or where its depth or ``--depth`` set the net."""
    cfg, arch_map = _before_arch_map(exp, variant, preset)
    named = cfg.get("arch")
    if variant.depth is not None or named is None or arch_map.get(named, named) == named:
        return None
    return named if arch_map[named] == arch else None


def milestones_at(fractions, steps, unit: str = "iterations") -> list:
    """The drops of a schedule given as fractions of its length: [0.5, 0.75] of 500 is [250, 375].

    In iterations a drop lands on a whole iteration; in epochs the fraction of an epoch stays. Fractions
    that would land on one iteration, or a later one on iteration 0, are refused: the schedule would not
    be the one they describe.
    """
    if unit == "iterations":
        drops = [int(round(f * steps)) for f in fractions]
        if len(set(drops)) < len(drops) or any(f > 0 and d == 0 for f, d in zip(fractions, drops)):
            raise ConfigError(f"milestones_at {list(fractions)} of steps={steps:g} round to iterations {drops}: the "
                              f"rate's drops would fall together or before the first step; set more steps, or "
                              f"milestones=[...] (or []) with --set")
        return drops
    return [round(f * steps, 6) for f in fractions]


def sweeps_depth(exp: Experiment) -> bool:
    """An experiment whose rows differ in depth keeps its depths under --depth."""
    if any(v.depth is not None for v in exp.variants):
        return True
    archs = {v.config.get("arch", exp.base.get("arch")) for v in exp.variants}
    return len({a for a in archs if a and is_cifar_basic(a)}) > 1


MAX_RUNS = 100_000  # a grid larger than this is a typo (--seeds 1000000000), not a study


def expand(experiments: dict[str, Experiment], rows: list[Variant], preset: Preset, seeds: int | None = None,
           overrides: dict | None = None, validate=None, settings: dict | None = None,
           notes: list | None = None) -> list[Run]:
    """Every (row, seed) as a :class:`Run` with a validated config; raises before anything trains.

    ``notes`` collects what validation adjusted (a subset larger than its split: the whole split).
    """
    validate = validate or (lambda cfg: schema.validate_config(cfg, notes))
    if overrides and overrides.get("depth") is not None:
        check_depth(overrides["depth"])
    seeds = preset.seeds if seeds is None else seeds
    if seeds < 1:
        raise ConfigError(f"seeds must be >= 1, got {seeds}")
    if seeds * len(rows) > MAX_RUNS:
        raise ConfigError(f"{seeds:,} seeds of {len(rows)} rows make {seeds * len(rows):,} runs, more than the "
                          f"{MAX_RUNS:,} a study may hold; use fewer seeds")
    runs = []
    for row in rows:
        exp = experiments[row.experiment]
        home = experiments[row.rows_of] if row.rows_of else exp  # a ladder's row runs as its source row
        try:
            cfg = merged_config(home, row, preset, overrides, settings, keeps_depth=sweeps_depth(exp))
        except ConfigError as e:
            raise ConfigError(f"{row.key}: {e}") from None
        asked = arch_asked(home, row, preset, cfg.get("arch"))
        for seed in range(seeds):
            try:
                full = validate({**cfg, "seed": seed})
            except ConfigError as e:
                raise ConfigError(f"{row.key}: {e}") from None
            runs.append(Run(experiment=row.experiment, variant=row.name, seed=seed, config=full, hash=config_hash(full),
                            arch_asked=asked))
    return runs
