"""A depth axis for experiments: one experiment's rows, each run at several depths.

A ladder file names the experiment whose rows it runs and the depths, and may add config per
depth (everywhere, or under one preset only)::

    name = "depth_ladder"
    title = "He et al. 2016, Table 1 at depths 20, 32, 56 and 110"
    rows_of = "identity_mappings"   # rows, paper numbers, claims, [base] and [presets.*] from there
    depths = [20, 32, 56, 110]      # CIFAR basic nets resnet{D}, D = 6n + 2
    [depth.110]                     # config of every row at depth 110, under every preset
    warmup_lr = 0.01
    [depth.110.presets.quick]       # ... and under the quick preset only
    warmup_max_iters = 100

It reads as an ordinary experiment whose rows are ``<row>@<depth>`` (``original@110``), labelled
as the source row and laid out in one column per depth (``depth 110``), so the report's tables,
bars and per-column rank agreement see one column per depth. Each row's ``depth`` is the depth of
the net as run under every preset: the preset's ``arch_map`` does not shrink it, as ``--depth``
does not (:func:`ablation.study.expansion.merged_config`); a row at depth D under a preset is therefore
the source row run with ``--depth D`` plus the ladder's config for D, and has that run's hash.

The claims of the source experiment are not the ladder's own: the report tests them at each
depth on its own (:mod:`ablation.reporting.depth_claims`). A ladder is never part of ``--variants all``.

This module works on the TOML tables alone; :mod:`ablation.study.experiments` validates what it returns.
"""

from __future__ import annotations

from ..core.errors import ConfigError, did_you_mean

LADDER_KEYS = {"name": str, "title": str, "notes": str, "rows_of": str, "depths": list, "depth": dict}
COPIED = ("paper_metric", "source", "protocol", "fail_above", "base", "presets")  # from the source experiment
SEP = "@"


def is_ladder(data: dict) -> bool:
    return "rows_of" in data


def row_name(row: str, depth: int) -> str:
    """The ladder's name of ``row`` at ``depth``: ``original@110``."""
    return f"{row}{SEP}{depth}"


def column(depth: int) -> str:
    return f"depth {depth}"


def _check(where: str, data: dict, sources: dict) -> list[int]:
    for key, value in data.items():
        if key not in LADDER_KEYS:
            raise ConfigError(f"{where}: unknown key {key!r} in a ladder file{did_you_mean(key, LADDER_KEYS)}")
        if not isinstance(value, LADDER_KEYS[key]):
            raise ConfigError(f"{where}: key {key!r} must be {LADDER_KEYS[key].__name__}, got {value!r}")
    for required in ("name", "title", "rows_of", "depths"):
        if required not in data:
            raise ConfigError(f"{where}: missing key {required!r}")
    if data["rows_of"] not in sources:
        raise ConfigError(f"{where}: rows_of names unknown experiment {data['rows_of']!r}"
                          f"{did_you_mean(data['rows_of'], sources)}")
    depths = data["depths"]
    if not depths or not all(isinstance(d, int) and not isinstance(d, bool) for d in depths):
        raise ConfigError(f"{where}: depths must be a non-empty list of whole numbers, got {depths!r}")
    if len(set(depths)) != len(depths):
        raise ConfigError(f"{where}: depths lists a depth twice: {depths!r}")
    for key, table in data.get("depth", {}).items():
        if not key.isdigit() or int(key) not in depths:
            raise ConfigError(f"{where}: [depth.{key}] is not one of the depths {depths!r}")
        if not isinstance(table, dict) or not isinstance(table.get("presets", {}), dict):
            raise ConfigError(f"{where}: [depth.{key}] must be a table of config keys and [depth.{key}.presets.NAME]")
    return sorted(depths)


def expand(data: dict, sources: dict[str, dict], where: str) -> tuple[dict, dict]:
    """The ladder as an experiment table (as if written by hand), and its axis for the report.

    ``sources`` are the other experiment files' tables by name. The axis is ``rows_of``,
    ``depths`` and ``rows`` (each ladder row's source row).
    """
    depths = _check(where, data, sources)
    src = sources[data["rows_of"]]
    per_depth = data.get("depth", {})
    variants, rows = [], {}
    for depth in depths:
        extra = per_depth.get(str(depth), {})
        for row in src.get("variant", []):
            if not isinstance(row, dict) or "name" not in row:
                continue  # the source's own validation names the problem
            name = row_name(row["name"], depth)
            out = {k: v for k, v in row.items() if k not in ("name", "column")}
            out.update({k: v for k, v in extra.items() if k != "presets"})
            out.update(name=name, column=column(depth), depth=depth)
            if extra.get("presets"):
                out["presets"] = extra["presets"]
            variants.append(out)
            rows[name] = row["name"]
    notes = f"{data['rows_of']} at depths {', '.join(map(str, depths))}."
    table = {"name": data["name"], "title": data["title"], "notes": data.get("notes", notes), "variant": variants,
             **{k: src[k] for k in COPIED if k in src}}
    return table, {"rows_of": data["rows_of"], "depths": depths, "rows": rows}
