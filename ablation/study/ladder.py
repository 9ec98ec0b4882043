"""A ladder: one experiment's rows, each run at several values of one setting (a rung per value).

A ladder file names the experiment whose rows it runs, the setting it varies and its values, and may
add config per rung (everywhere, or under one preset only)::

    name = "depth_ladder"
    title = "He et al. 2016, Table 1 at depths 20, 32, 56 and 110"
    rows_of = "identity_mappings"   # rows, paper numbers, claims, [base] and [presets.*] from there
    key = "depth"                   # a config key, or depth: the depth D of a CIFAR basic net resnet{D}
    values = [20, 32, 56, 110]
    paper_at = 110                  # the value at which the paper's own numbers stand (may be no rung)
    [at.110]                        # config of every row at the rung 110, under every preset
    warmup_lr = 0.01
    [at.110.presets.quick]          # ... and under the quick preset only
    warmup_max_iters = 100

It reads as an ordinary experiment whose rows are ``<row>@<value>`` (``original@110``), labelled as
the source row and laid out in one column per rung (``depth 110``, ``steps 2000``), so the report's
tables, bars and per-column rank agreement see one column per rung. The ladder's value is the row's
own: under every preset, no preset overrides it. For ``depth`` that is the net's depth (the preset's
``arch_map`` does not shrink it, as ``--depth`` does not: :func:`ablation.study.expansion.merged_config`),
so a row at depth D under a preset is the source row run with ``--depth D`` plus the ladder's config for
D. For a config key it is that key of the row (the source row's own value of it, if any, is replaced),
so a row at ``steps = N`` under a preset is the source row run with ``--set steps=N``, with the
preset's ``milestones_at`` placing the rate's drops at the same fractions of N; both have that run's
hash.

The claims of the source experiment are not the ladder's own: the report tests them at each rung on
its own (:mod:`ablation.reporting.ladder_claims`). A ladder is never part of ``--variants all``.

This module works on the TOML tables alone; :mod:`ablation.study.experiments` validates what it returns.
"""

from __future__ import annotations

from ..core.errors import ConfigError, did_you_mean
from ..core.names import is_safe_name
from ..core.rungs import DEPTH, value_text
from ..training.config import SCHEMA

LADDER_KEYS = {"name": str, "title": str, "notes": str, "rows_of": (str, list), "rows": dict, "key": str,
               "values": list, "at": dict, "paper_at": (int, float, str)}
FROM_SOURCE = ("paper_metric", "source", "protocol", "fail_above", "base", "presets")  # from the source experiment
SEP = "@"


def is_ladder(data: dict) -> bool:
    return "rows_of" in data


def row_name(row: str, value) -> str:
    """The ladder's name of ``row`` at the rung ``value``: ``original@110``."""
    return f"{row}{SEP}{value_text(value)}"


def column(key: str, value) -> str:
    """The table column of a rung: ``depth 110``, ``steps 2000``."""
    return f"{key} {value_text(value)}"


def _kind(v) -> type:
    return float if isinstance(v, (int, float)) and not isinstance(v, bool) else type(v)


def _check(where: str, data: dict, sources: dict) -> list:
    for key, value in data.items():
        if key not in LADDER_KEYS:
            raise ConfigError(f"{where}: unknown key {key!r} in a ladder file{did_you_mean(key, LADDER_KEYS)}")
        kinds = LADDER_KEYS[key] if isinstance(LADDER_KEYS[key], tuple) else (LADDER_KEYS[key],)
        if not isinstance(value, kinds) or isinstance(value, bool):
            raise ConfigError(f"{where}: key {key!r} must be {' or '.join(k.__name__ for k in kinds)}, got {value!r}")
    for required in ("name", "title", "rows_of", "key", "values"):
        if required not in data:
            raise ConfigError(f"{where}: missing key {required!r}")
    for name in _sources(data):
        if not isinstance(name, str) or name not in sources:
            raise ConfigError(f"{where}: rows_of names unknown experiment {name!r}{did_you_mean(str(name), sources)}")
    for name, chosen in data.get("rows", {}).items():
        if name not in _sources(data):
            raise ConfigError(f"{where}: rows names {name!r}, which is not in rows_of")
        known = [r.get("name") for r in sources[name].get("variant", []) if isinstance(r, dict)]
        if not isinstance(chosen, list) or not chosen or not all(r in known for r in chosen):
            bad = next((r for r in chosen if r not in known), chosen) if isinstance(chosen, list) else chosen
            raise ConfigError(f"{where}: rows.{name} must list rows of {name}; {bad!r} is not one"
                              f"{did_you_mean(str(bad), known)}")
    key, values = data["key"], data["values"]
    if key != DEPTH and key not in SCHEMA:
        raise ConfigError(f"{where}: key {key!r} is neither depth nor a config key{did_you_mean(key, [DEPTH, *SCHEMA])}")
    if key != DEPTH and (SCHEMA[key].runtime or key == "seed"):
        raise ConfigError(f"{where}: key {key!r} cannot be laddered: it does not change what a run computes"
                          if key != "seed" else f"{where}: key 'seed' cannot be laddered: --seeds sets the seeds")
    if not values or len({_kind(v) for v in values}) != 1 or isinstance(values[0], (bool, dict, list)):
        raise ConfigError(f"{where}: values must be a non-empty list of numbers, or of strings, got {values!r}")
    if key == DEPTH and not all(isinstance(v, int) for v in values):
        raise ConfigError(f"{where}: the values of a depth ladder must be whole numbers, got {values!r}")
    texts = [value_text(v) for v in values]
    if len(set(texts)) != len(texts):
        raise ConfigError(f"{where}: values lists a value twice: {values!r}")
    for text in texts:
        if not is_safe_name(text):
            raise ConfigError(f"{where}: value {text!r} becomes part of row names and must be a safe name "
                              f"(letters, digits, '.', '_', '-')")
    for text, table in data.get("at", {}).items():
        if text not in texts:
            raise ConfigError(f"{where}: [at.{text}] is not one of the values {values!r}")
        if not isinstance(table, dict) or not isinstance(table.get("presets", {}), dict):
            raise ConfigError(f"{where}: [at.{text}] must be a table of config keys and [at.{text}.presets.NAME]")
        if key in table:
            raise ConfigError(f"{where}: [at.{text}] sets {key!r}, the key the ladder varies")
    return sorted(values) if _kind(values[0]) is float else list(values)


def _sources(data: dict) -> list:
    return data["rows_of"] if isinstance(data["rows_of"], list) else [data["rows_of"]]


def expand(data: dict, sources: dict[str, dict], where: str) -> tuple[dict, dict]:
    """The ladder as an experiment table (as if written by hand), and its axis for the report.

    ``sources`` are the other experiment files' tables by name. The axis is ``rows_of`` (the source
    experiments, in order), ``key``, ``values``, ``paper_at``, ``rows`` (each ladder row's source row)
    and ``sources`` (each ladder row's source experiment). The table's own ``[base]`` and metadata are
    the first source's; each row runs with its own source's ``[base]`` and ``[presets.*]`` (``rows_of``
    of the row: :func:`ablation.study.expansion.expand`).
    """
    values = _check(where, data, sources)
    key, names = data["key"], _sources(data)
    chosen = data.get("rows", {})
    per_rung = data.get("at", {})
    variants, rows, of = [], {}, {}
    for value in values:
        extra = per_rung.get(value_text(value), {})
        for source in names:
            for row in sources[source].get("variant", []):
                if not isinstance(row, dict) or "name" not in row:
                    continue  # the source's own validation names the problem
                if source in chosen and row["name"] not in chosen[source]:
                    continue
                name = row_name(row["name"], value)
                if name in rows:
                    raise ConfigError(f"{where}: row {row['name']!r} is in both {of[name]} and {source}; a ladder's "
                                      "rows need distinct names")
                out = {k: v for k, v in row.items() if k not in ("name", "column")}
                out.update({k: v for k, v in extra.items() if k != "presets"})
                out.update(name=name, column=column(key, value), rung=value, rows_of=source,
                           **({"depth": value} if key == DEPTH else {key: value}))
                if extra.get("presets"):
                    out["presets"] = extra["presets"]
                variants.append(out)
                rows[name], of[name] = row["name"], source
    notes = f"{', '.join(names)} at {key} {', '.join(map(value_text, values))}."
    first = sources[names[0]]
    table = {"name": data["name"], "title": data["title"], "notes": data.get("notes", notes), "variant": variants,
             **{k: first[k] for k in FROM_SOURCE if k in first}}
    return table, {"rows_of": names, "key": key, "values": values, "paper_at": data.get("paper_at"),
                   "rows": rows, "sources": of}
