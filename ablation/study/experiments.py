"""Experiments as data: TOML files under ``ablation/experiments/`` expanded into a grid of runs.

An experiment file names the paper's table, the setup it shares (``[base]``) and one
``[[variant]]`` per row. A row is a set of config keys
plus what the paper reported for it (config keys: :data:`ablation.training.config.SCHEMA`)::

    name = "identity_mappings"
    title = "He et al. 2016, Table 1: shortcut types on ResNet-110, CIFAR-10"
    paper_metric = "test error (%)"
    [base]                      # config shared by every row
    arch = "resnet110"
    [[variant]]
    name = "exclusive-gate-b-6" # the id that --variants takes
    label = "exclusive gating, b_g = -6"   # the row as the paper prints it
    shortcut = "exclusive-gate"
    shortcut_args = { b = -6.0 }
    paper = 8.70                # a number, "fail", or absent (not reported)
    source = "He 2016 Table 1"
    protocol = "median"         # what `paper` is over the paper's runs: median, best, mean or single

A row may add ``paper_mean`` and ``paper_std`` (the paper's mean +- std over its runs, where it
prints them beside a median or a best) and ``paper_above`` (the paper gives only a bound: error
above this). ``protocol`` may also be set once for the whole file.

A preset (``ablation/experiments/presets.toml``) changes only how every run is run: dataset,
image size, width, a map from the paper's architectures to smaller ones, iterations,
batch, precision and the fidelity options. It never changes which rows a name selects;
``all_rows = true`` only makes ``--variants all`` mean every row of every experiment
rather than each experiment's ``in_all``. ``null = ["key", ...]`` sets keys to null, which
TOML cannot write. An experiment may refine a preset under ``[presets.<name>]``. The
config of one run is merged in this order, later winning::

    config.DEFAULTS < [base] < preset < experiment's [presets.<name>] < [[variant]] < command line

so a key that a row sets itself is what that row is about, and no preset changes it (the
preset's ``arch_map`` still maps the row's architecture to the one run at that scale);
the command line (``--dataset``, ``--depth``, ``--device``, ``--set``) wins over all.
A run is identified by a hash of the merged config (keys that cannot change the numbers,
such as the device or the thread count, left out).
"""

from __future__ import annotations

import copy
import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..training import config as schema
from ..core.errors import ConfigError, did_you_mean, unknown_choice
from ..nets.models import arch_spec

EXPERIMENTS_DIR = Path(__file__).resolve().parents[1] / "experiments"  # shipped as package data (pyproject.toml)
PRESETS_FILE = "presets.toml"

EXPERIMENT_KEYS = {
    "name": str, "title": str, "paper_metric": str, "source": str, "notes": str,
    "in_all": (bool, list), "fail_above": (int, float), "base": dict, "variant": list,
    "presets": dict, "claim": list, "protocol": str,
}
VARIANT_META = {"name": str, "label": str, "column": str, "paper": (int, float, str), "source": str, "note": str,
                "protocol": str, "paper_mean": (int, float), "paper_std": (int, float), "paper_above": (int, float)}
PRESET_META = {"description": str, "seeds": int, "arch_map": dict, "all_rows": bool, "null": list,
               "milestones_at": list}
# what a row's paper number is over the paper's runs of it: He 2016 prints the median of 5 runs;
# He 2015 Table 6 the best of 5 for ResNet-110 (mean +- std beside it) and one number elsewhere
PROTOCOLS = ("median", "best", "mean", "single")
CLAIM_KEYS = {"says": str, "metric": str, "lower": list, "lowest": (str, list), "among": list,
              "close": list, "within": (int, float)}
CLAIM_METRICS = ("test", "train")


@dataclass
class Variant:
    """One row of a paper's table: the config it changes and the number the paper printed."""

    experiment: str
    name: str
    config: dict
    label: str = ""
    column: str | None = None
    paper: float | str | None = None  # a number, "fail", or None (not reported)
    source: str = ""
    note: str = ""
    protocol: str | None = None  # one of PROTOCOLS: what `paper` is over the paper's runs
    paper_mean: float | None = None  # the paper's mean and std over its runs, where printed
    paper_std: float | None = None
    paper_above: float | None = None  # the paper gives only a lower bound on the error

    def meta(self) -> dict:
        """The row as the manifest holds it, for the report."""
        return {"variant": self.name, "label": self.label, "column": self.column, "paper": self.paper,
                "source": self.source, "protocol": self.protocol, "paper_mean": self.paper_mean,
                "paper_std": self.paper_std, "paper_above": self.paper_above}

    @property
    def key(self) -> str:
        return f"{self.experiment}:{self.name}"


@dataclass
class Claim:
    """A qualitative finding of the paper, checked against our numbers by the report."""

    says: str
    metric: str = "test"
    lower: list | None = None  # [a, b]: a ends lower than b
    lowest: list | None = None  # these end lowest ...
    among: list | None = None  # ... among these (default: every row)
    close: list | None = None  # [a, b]: within `within` points of each other
    within: float = 1.0

    def variants(self) -> list[str]:
        names = [*(self.lower or []), *(self.lowest or []), *(self.among or []), *(self.close or [])]
        return list(dict.fromkeys(names))


@dataclass
class Experiment:
    name: str
    title: str
    paper_metric: str
    base: dict
    variants: list[Variant]
    presets: dict = field(default_factory=dict)
    in_all: list[str] = field(default_factory=list)
    fail_above: float | None = None
    source: str = ""
    notes: str = ""
    claims: list[Claim] = field(default_factory=list)
    path: str = ""
    protocol: str | None = None  # the rows' default protocol

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise unknown_choice(f"variant of {self.name}", name, [v.name for v in self.variants])

    def meta(self) -> dict:
        """What the report needs to lay out this experiment's table without the TOML file."""
        return {"name": self.name, "title": self.title, "paper_metric": self.paper_metric,
                "fail_above": self.fail_above, "dataset": self.base.get("dataset"), "source": self.source, "notes": self.notes,
                "protocol": self.protocol, "rows": [v.meta() for v in self.variants],
                "claims": [c.__dict__ for c in self.claims]}


@dataclass
class Preset:
    name: str
    config: dict
    arch_map: dict = field(default_factory=dict)
    seeds: int = 1
    description: str = ""
    all_rows: bool = False  # --variants all is every row of every experiment
    # the rate's drops as fractions of the run's steps (the papers' 32k and 48k of 64k: 0.5, 0.75),
    # so that --set steps=N keeps the schedule's shape; a row or --set giving milestones wins
    milestones_at: list | None = None


@dataclass
class Run:
    """One training run: a row of an experiment at one seed, with its full config."""

    experiment: str
    variant: str
    seed: int
    config: dict
    hash: str

    @property
    def key(self) -> str:
        return f"{self.experiment}:{self.variant}:{self.seed}"


# --- reading ----------------------------------------------------------------------------------


def _check_keys(where: str, table: dict, schema: dict, config_keys=()) -> None:
    """Unknown keys and wrongly typed values raise one line naming the file and the key."""
    for key, value in table.items():
        if key in schema:
            kind = schema[key]
            kinds = kind if isinstance(kind, tuple) else (kind,)
            # TOML's true is a bool, and bool is an int to Python: refuse it where a number is meant
            ok = isinstance(value, kind) and (bool in kinds or not isinstance(value, bool))
            if not ok:
                want = " or ".join(k.__name__ for k in kinds)
                raise ConfigError(f"{where}: key {key!r} must be {want}, got {value!r}")
        elif key not in config_keys:
            raise ConfigError(f"{where}: unknown key {key!r}{did_you_mean(key, [*schema, *config_keys])}")


def _read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: malformed TOML: {e}") from None


def _config_keys(defaults: dict | None) -> list[str]:
    return list(schema.DEFAULTS if defaults is None else defaults)


def load_presets(directory=None, defaults: dict | None = None) -> dict[str, Preset]:
    path = Path(directory or EXPERIMENTS_DIR) / PRESETS_FILE
    if not path.is_file():
        raise ConfigError(f"no presets file at {path}")
    keys = _config_keys(defaults)
    presets = {}
    for name, table in _read_toml(path).items():
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: {name!r} must be a table [{name}]")
        presets[name] = _preset(f"{path}: [{name}]", name, table, keys)
    return presets


def _preset(where: str, name: str, table: dict, config_keys) -> Preset:
    _check_keys(where, table, PRESET_META, config_keys)
    for k, v in table.get("arch_map", {}).items():
        if not isinstance(v, str):
            raise ConfigError(f"{where}: arch_map.{k} must be an architecture name, got {v!r}")
    if table.get("seeds", 1) < 1:
        raise ConfigError(f"{where}: seeds must be >= 1")
    fractions = table.get("milestones_at")
    if fractions is not None:
        if not all(isinstance(f, (int, float)) and not isinstance(f, bool) and 0 < f < 1 for f in fractions):
            raise ConfigError(f"{where}: milestones_at must be fractions of the steps between 0 and 1, "
                              f"got {fractions!r}")
        if "milestones" in table:
            raise ConfigError(f"{where}: give milestones or milestones_at, not both")
    config = {k: v for k, v in table.items() if k not in PRESET_META}
    for key in table.get("null", []):
        if not isinstance(key, str) or key not in config_keys:
            raise ConfigError(f"{where}: null names unknown config key {key!r}{did_you_mean(key, config_keys)}")
        if key in config:
            raise ConfigError(f"{where}: {key!r} is both set and in null")
        config[key] = None
    return Preset(name, config, dict(table.get("arch_map", {})), table.get("seeds", 1),
                  table.get("description", ""), table.get("all_rows", False), fractions)


def load_experiment(path, defaults: dict | None = None) -> Experiment:
    path = Path(path)
    data = _read_toml(path)
    keys = _config_keys(defaults)
    where = str(path)
    _check_keys(where, data, EXPERIMENT_KEYS)
    for required in ("name", "title", "paper_metric", "variant"):
        if required not in data:
            raise ConfigError(f"{where}: missing key {required!r}")
    if data.get("protocol", PROTOCOLS[0]) not in PROTOCOLS:
        raise ConfigError(f"{where}: protocol must be one of {', '.join(PROTOCOLS)}, got {data['protocol']!r}")
    base = data.get("base", {})
    _check_keys(f"{where}: [base]", base, {}, keys)
    variants, seen = [], set()
    for i, row in enumerate(data["variant"]):
        if not isinstance(row, dict):
            raise ConfigError(f"{where}: every [[variant]] must be a table")
        name = row.get("name", i + 1)
        vwhere = f"{where}: variant {name!r}" if isinstance(name, (str, int)) else f"{where}: variant {i + 1}"
        _check_keys(vwhere, row, VARIANT_META, keys)
        if "name" not in row:
            raise ConfigError(f"{vwhere}: missing key 'name'")
        if not row["name"].strip() or ":" in row["name"] or "," in row["name"]:
            raise ConfigError(f"{vwhere}: a variant name must be a non-empty word without ':' or ','")
        if row["name"] in seen:
            raise ConfigError(f"{vwhere}: variant name used twice")
        if isinstance(row.get("paper"), str) and row["paper"] != "fail":
            raise ConfigError(f"{vwhere}: paper must be a number or \"fail\", got {row['paper']!r}")
        protocol = row.get("protocol", data.get("protocol"))
        if protocol is not None and protocol not in PROTOCOLS:
            raise ConfigError(f"{vwhere}: protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}"
                              f"{did_you_mean(protocol, PROTOCOLS)}")
        seen.add(row["name"])
        config = {k: v for k, v in row.items() if k not in VARIANT_META}
        variants.append(Variant(data["name"], row["name"], config, row.get("label", row["name"]),
                                row.get("column"), row.get("paper"), row.get("source", data.get("source", "")),
                                row.get("note", ""), protocol, row.get("paper_mean"), row.get("paper_std"),
                                row.get("paper_above")))
    presets = {}
    for pname, table in data.get("presets", {}).items():
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: presets.{pname} must be a table")
        presets[pname] = _preset(f"{where}: [presets.{pname}]", pname, table, keys)
    in_all = data.get("in_all", False)
    in_all = [v.name for v in variants] if in_all is True else (in_all or [])
    for name in in_all:
        if name not in seen:
            raise ConfigError(f"{where}: in_all names unknown variant {name!r}{did_you_mean(name, seen)}")
    claims = []
    for c in data.get("claim", []):
        _check_keys(f"{where}: [[claim]]", c, CLAIM_KEYS)
        if c.get("metric", "test") not in CLAIM_METRICS:
            raise ConfigError(f"{where}: claim metric must be one of {', '.join(CLAIM_METRICS)}")
        _check_claim(f"{where}: [[claim]] {c.get('says', '')!r}", c)
        lowest = c.get("lowest")
        claim = Claim(c.get("says", ""), c.get("metric", "test"), c.get("lower"),
                      [lowest] if isinstance(lowest, str) else lowest, c.get("among"), c.get("close"),
                      float(c.get("within", 1.0)))
        if sum(x is not None for x in (claim.lower, claim.lowest, claim.close)) != 1:
            raise ConfigError(f"{where}: a claim needs exactly one of 'lower', 'lowest', 'close'")
        for name in claim.variants():
            if name not in seen:
                raise ConfigError(f"{where}: claim names unknown variant {name!r}{did_you_mean(name, seen)}")
        claims.append(claim)
    return Experiment(data["name"], data["title"], data["paper_metric"], base, variants, presets, in_all,
                      data.get("fail_above"), data.get("source", ""), data.get("notes", ""), claims, where,
                      data.get("protocol"))


def _check_claim(where: str, c: dict) -> None:
    """lower and close name two rows, lowest one or more, among a list; within is a number >= 0."""
    def names(key, n=None):
        v = c.get(key)
        if v is None:
            return
        v = [v] if key == "lowest" and isinstance(v, str) else v
        if not (isinstance(v, list) and v and all(isinstance(x, str) for x in v)) or (n and len(v) != n):
            count = f"exactly {n} variant names" if n else "a list of variant names"
            raise ConfigError(f"{where}: {key} must be {count}, got {c[key]!r}")

    names("lower", 2)
    names("close", 2)
    names("lowest")
    names("among")
    if c.get("within", 1.0) < 0:
        raise ConfigError(f"{where}: within must be >= 0, got {c['within']!r}")


def load_experiments(directory=None, defaults: dict | None = None) -> dict[str, Experiment]:
    """Every ``*.toml`` but the presets file, by experiment name."""
    directory = Path(directory or EXPERIMENTS_DIR)
    out = {}
    for path in sorted(directory.glob("*.toml")):
        if path.name == PRESETS_FILE:
            continue
        exp = load_experiment(path, defaults)
        if exp.name in out:
            raise ConfigError(f"{path}: experiment name {exp.name!r} also used by {out[exp.name].path}")
        out[exp.name] = exp
    return out


# --- selecting --------------------------------------------------------------------------------

DEFAULT_EXPERIMENT = "identity_mappings"  # where a bare shortcut name in --variants lands


def select(experiments: dict[str, Experiment], experiment: str | None = None, variants: str | None = None,
           shortcuts=(), all_rows: bool = False) -> list[Variant]:
    """The rows to run.

    ``variants="all"`` (the default when neither is given) is every experiment's ``in_all``
    rows, or with ``all_rows`` (a preset's choice) every row of every experiment.
    ``experiment="all"`` is every row of every experiment. A name in ``variants`` may be
    ``experiment:variant``, a row of ``experiment`` (or of any experiment, if unique), or a
    registered shortcut name, which runs that shortcut on the experiment's ``[base]``.
    """
    if experiment is not None and experiment != "all" and experiment not in experiments:
        raise unknown_choice("experiment", experiment, [*experiments, "all"])
    if variants is None and experiment is None:
        variants = "all"
    if variants is None:
        names = experiments if experiment == "all" else [experiment]
        return [v for n in names for v in experiments[n].variants]
    requested = [s.strip() for s in variants.split(",") if s.strip()]
    if not requested:
        raise ConfigError("--variants is empty")
    out = []
    for name in requested:
        if name == "all":
            if experiment in (None, "all") and all_rows:
                out += [v for e in experiments.values() for v in e.variants]
            elif experiment in (None, "all"):
                out += [experiments[e].variant(v) for e in experiments for v in experiments[e].in_all]
            else:
                out += experiments[experiment].variants
            continue
        out.append(_resolve(experiments, experiment, name, shortcuts))
    return list({v.key: v for v in out}.values())


def _resolve(experiments, experiment, name, shortcuts) -> Variant:
    if ":" in name:
        exp, var = name.split(":", 1)
        if exp not in experiments:
            raise unknown_choice("experiment", exp, experiments)
        return experiments[exp].variant(var)
    home = experiment if experiment not in (None, "all") else DEFAULT_EXPERIMENT
    if home in experiments:
        for v in experiments[home].variants:
            if v.name == name:
                return v
    holders = [e for e in experiments.values() if any(v.name == name for v in e.variants)]
    if len(holders) == 1:
        return holders[0].variant(name)
    if len(holders) > 1:
        options = ", ".join(f"{e.name}:{name}" for e in holders)
        raise ConfigError(f"variant {name!r} is in several experiments; say which: {options}")
    if name in shortcuts and home in experiments:
        return Variant(home, name, {"shortcut": name}, f"shortcut {name!r}", source="(not in the papers)")
    valid = sorted({v.name for e in experiments.values() for v in e.variants} | set(shortcuts) | {"all"})
    raise unknown_choice("variant", name, valid)


# --- expanding --------------------------------------------------------------------------------


def _deep_merge(a: dict, b: dict) -> dict:
    out = copy.deepcopy(a)
    for k, v in b.items():
        out[k] = copy.deepcopy(v)
    return out


def check_depth(depth: int) -> int:
    if depth < 8 or (depth - 2) % 6:
        raise ConfigError(f"--depth {depth} is not 6n+2 with n >= 1 (e.g. 8, 14, 20, 32, 44, 56, 110)")
    return depth


def is_cifar_basic(arch: str) -> bool:
    """A CIFAR net of basic units, resnet{6n+2}: the nets whose depth --depth sets."""
    try:
        spec = arch_spec(arch)
    except ConfigError:
        return False
    return spec.family == "cifar" and spec.kind == "basic"


def merged_config(exp: Experiment, variant: Variant, preset: Preset, overrides: dict | None = None,
                  settings: dict | None = None) -> dict:
    """The config of one row under one preset, before the seed and before validation.

    ``overrides`` are the runner's own options (dataset, depth, device; None means not given);
    ``settings`` are ``--set key=value`` pairs, applied last as given (null included).
    """
    cfg = _deep_merge(exp.base, preset.config)
    local = exp.presets.get(preset.name)
    arch_map = {**preset.arch_map, **(local.arch_map if local else {})}
    if local:
        cfg = _deep_merge(cfg, local.config)
    cfg = _deep_merge(cfg, variant.config)  # the row's own keys are what it compares: no preset overrides them
    if "arch" in cfg:
        cfg["arch"] = arch_map.get(cfg["arch"], cfg["arch"])
    overrides = dict(overrides or {})
    depth = overrides.pop("depth", None)
    if depth is not None and "arch" in cfg and is_cifar_basic(cfg["arch"]) and not sweeps_depth(exp):
        cfg["arch"] = f"resnet{check_depth(depth)}"
    cfg = _deep_merge(cfg, {k: v for k, v in overrides.items() if v is not None})
    settings = settings or {}
    cfg = _deep_merge(cfg, settings)
    # milestones_at is the milestones of its layer, so the last layer that gives either decides
    fractions = None
    layers = [(preset.config, preset.milestones_at), (variant.config, None), (settings, None)]
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


def milestones_at(fractions, steps, unit: str = "iterations") -> list:
    """The drops of a schedule given as fractions of its length: [0.5, 0.75] of 500 is [250, 375].

    In iterations a drop lands on a whole iteration; in epochs the fraction of an epoch stays.
    """
    if unit == "iterations":
        return [int(round(f * steps)) for f in fractions]
    return [round(f * steps, 6) for f in fractions]


def sweeps_depth(exp: Experiment) -> bool:
    """An experiment whose rows differ in depth keeps its depths under --depth."""
    archs = {v.config.get("arch", exp.base.get("arch")) for v in exp.variants}
    return len({a for a in archs if a and is_cifar_basic(a)}) > 1


def config_hash(cfg: dict) -> str:
    """12 hex digits of the sha256 of the config's identity (:func:`ablation.training.config.identity`)."""
    ident = schema.identity(cfg)
    blob = json.dumps(ident, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


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
        raise ConfigError(f"--seeds must be >= 1, got {seeds}")
    if seeds * len(rows) > MAX_RUNS:
        raise ConfigError(f"{seeds:,} seeds of {len(rows)} rows make {seeds * len(rows):,} runs, more than the "
                          f"{MAX_RUNS:,} a study may hold; use fewer --seeds")
    runs = []
    for row in rows:
        exp = experiments[row.experiment]
        cfg = merged_config(exp, row, preset, overrides, settings)
        for seed in range(seeds):
            try:
                full = validate({**cfg, "seed": seed})
            except ConfigError as e:
                raise ConfigError(f"{row.key}: {e}") from None
            runs.append(Run(row.experiment, row.name, seed, full, config_hash(full)))
    return runs


# --- the manifest: which run holds which row -------------------------------------------------


def manifest(old: dict | None, preset: Preset, experiments: dict[str, Experiment], rows: list[Variant],
             runs: list[Run], changed: dict | None = None) -> dict:
    """The manifest of a results folder after these runs: ``old`` (earlier invocations) merged with them.

    It holds what the report needs to lay out each experiment's table without the TOML files,
    which run (hash) holds which row and seed, and the keys the command line set over the preset
    (``changed``: the preset's description no longer tells the whole story).
    """
    out = copy.deepcopy(old) if old else {"experiments": {}, "runs": {}}
    out["preset"] = preset.name
    out["preset_description"] = preset.description
    out["overrides"] = {k: v for k, v in (changed or {}).items()}
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
