"""The manifest of a results folder: which run (hash) holds which row and seed, each experiment's layout, and the
plugins its runs were trained with (:mod:`ablation.nets.plugins`)."""

from __future__ import annotations

import copy

from .experiments import Experiment, Preset, Run, Variant
from ..nets.plugins import merged


def manifest(old: dict | None, preset: Preset, experiments: dict[str, Experiment], rows: list[Variant],
             runs: list[Run], changed: dict | None = None, plugins: list | None = None) -> dict:
    """The manifest of a results folder after these runs: ``old`` (earlier invocations) merged with them.

    It holds what the report needs to lay out each experiment's table without the TOML files,
    which run (hash) holds which row and seed, the keys the command line set over the preset
    (``changed``: the preset's description no longer tells the whole story) and the plugins
    (:func:`ablation.nets.plugins.record`) the runs were trained with, kept across invocations.
    """
    out = copy.deepcopy(old) if old else {"experiments": {}, "runs": {}}
    out["preset"] = preset.name
    out["preset_description"] = preset.description
    out["overrides"] = {k: v for k, v in (changed or {}).items()}
    if plugins or out.get("plugins"):
        out["plugins"] = merged(out.get("plugins"), plugins or [])
    for name in {r.experiment for r in runs}:
        meta = experiments[name].meta()
        earlier = {row["variant"]: row for row in out["experiments"].get(name, {}).get("rows", [])}
        known = {row["variant"] for row in meta["rows"]}
        # rows added on the fly (a plugin's shortcut) are kept after the paper's rows
        meta["rows"] += [row for v, row in earlier.items() if v not in known]
        out["experiments"][name] = meta
    extra = {(v.experiment, v.name): v for v in rows}
    for r in runs:
        meta = out["experiments"][r.experiment]
        if r.variant not in {row["variant"] for row in meta["rows"]}:
            meta["rows"].append(extra[(r.experiment, r.variant)].meta())
        out["runs"][r.key] = {"experiment": r.experiment, "variant": r.variant, "seed": r.seed, "hash": r.hash}
    return out
