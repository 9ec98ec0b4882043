"""Experiments as data: an experiment file and a preset, read and checked into rows, presets and claims.

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

A preset (a table of a ``presets.toml``) changes only how every run is run: dataset,
image size, width, a map from the paper's architectures to smaller ones, iterations,
batch, precision and the fidelity options. It never changes which rows a name selects;
``all_rows = true`` only makes ``--variants all`` mean every row of every experiment
rather than each experiment's ``in_all``. ``null = ["key", ...]`` sets keys to null, which
TOML cannot write. An experiment may refine a preset under ``[presets.<name>]``. The
row's own keys win over the preset's (:mod:`ablation.study.expansion` merges them), so a key that a
row sets itself is what that row is about (the preset's ``arch_map`` still maps the row's
architecture to the one run at that scale). A row may also give ``depth`` (the depth of its CIFAR basic
net under every preset, which the preset's ``arch_map`` does not change, as ``--depth`` does not) and
``presets = {NAME = {...}}`` (config of that row under one preset, merged after the row's own keys); a
ladder file (:mod:`ablation.study.ladder`) writes them, and the row's ``rung``, for every row of another
experiment at each value of the setting it varies. This module reads and checks one file; where the files are
found (the shipped ones and the user's) is :mod:`ablation.study.catalogue`, which rows run
:mod:`ablation.study.selection`, their runs :mod:`ablation.study.expansion`.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import ConfigError, did_you_mean, unknown_choice
from ..core.files import read_text
from ..core.names import check_name
from ..training import config as schema
from ..training.config import has_type
from .depth import check_depth, is_cifar_basic
from .study_keys import refuse_study_keys

EXPERIMENT_KEYS = {
    "name": str, "title": str, "paper_metric": str, "source": str, "notes": str,
    "in_all": (bool, list), "fail_above": (int, float), "base": dict, "variant": list,
    "presets": dict, "claim": list, "protocol": str, "figures": list,
}
# the figures an experiment may ask the report for, beyond every experiment's bars and mechanisms:
# depth_curves  training curves of plain and residual nets of several depths (He 2015 Fig. 6), rows in
#               the columns "plain" and "residual"
# error_vs_depth final error against depth of the same (one experiment per study)
# row_curves    training curves of every row on one figure
# ranking       our ranking of the rows against the paper's, with its rank correlations among the findings
EXPERIMENT_FIGURES = ("depth_curves", "error_vs_depth", "row_curves", "ranking")
VARIANT_META = {"name": str, "label": str, "column": str, "paper": (int, float, str), "source": str, "note": str,
                "protocol": str, "paper_mean": (int, float), "paper_std": (int, float), "paper_above": (int, float),
                "depth": int, "rung": (int, float, str), "rows_of": str, "presets": dict}
PRESET_META = {"description": str, "seeds": int, "arch_map": dict, "all_rows": bool, "null": list,
               "milestones_at": list}
# what a row's paper number is over the paper's runs of it: He 2016 prints the median of 5 runs;
# He 2015 Table 6 the best of 5 for ResNet-110 (mean +- std beside it) and one number elsewhere
PAPER_PROTOCOLS = ("median", "best", "mean", "single")
CLAIM_KEYS = {"says": str, "metric": str, "lower": list, "lowest": (str, list), "among": list,
              "close": list, "within": (int, float), "not_worse": list, "identity_at_init": list}
CLAIM_KINDS = ("lower", "lowest", "close", "not_worse", "identity_at_init")
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
    protocol: str | None = None  # one of PAPER_PROTOCOLS: what `paper` is over the paper's runs
    paper_mean: float | None = None  # the paper's mean and std over its runs, where printed
    paper_std: float | None = None
    paper_above: float | None = None  # the paper gives only a lower bound on the error
    depth: int | None = None  # the net's depth under every preset (a depth axis), not mapped by arch_map
    rung: object = None  # a ladder row's value of the ladder's key (ablation.study.ladder)
    rows_of: str | None = None  # a ladder row's source experiment, whose [base] and [presets.*] it runs with
    presets: dict = field(default_factory=dict)  # config of this row under one preset, by preset name

    def meta(self) -> dict:
        """The row as the manifest holds it, for the report."""
        return {"variant": self.name, "label": self.label, "column": self.column, "paper": self.paper,
                "source": self.source, "protocol": self.protocol, "paper_mean": self.paper_mean,
                "paper_std": self.paper_std, "paper_above": self.paper_above, "depth": self.depth,
                **({"rung": self.rung} if self.rung is not None else {}), "keys": self.own_keys()}

    def own_keys(self) -> list[str]:
        """The config keys this row sets itself (under any preset): what it compares, and may differ in."""
        keys = {*self.config, *(k for table in self.presets.values() for k in table)}
        return sorted(keys | ({"arch"} if self.depth is not None else set()))

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
    not_worse: list | None = None  # [a, b]: a is not worse than b by `within` points or more
    identity_at_init: list | None = None  # these rows' nets compute the identity through every unit at init

    def variants(self) -> list[str]:
        names = [*(self.lower or []), *(self.lowest or []), *(self.among or []), *(self.close or []),
                 *(self.not_worse or []), *(self.identity_at_init or [])]
        return list(dict.fromkeys(names))

    def meta(self) -> dict:
        """The claim as the manifest holds it; kinds added later appear only where used."""
        return {k: v for k, v in self.__dict__.items() if v is not None or k not in ("not_worse", "identity_at_init")}


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
    figures: list[str] = field(default_factory=list)  # of EXPERIMENT_FIGURES: what the report draws for it
    axis: dict | None = None  # a ladder's axis (ablation.study.ladder): rows_of, key, values, paper_at, rows, claims

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise unknown_choice(f"variant of {self.name}", name, [v.name for v in self.variants])

    def meta(self) -> dict:
        """What the report needs to lay out this experiment's table without the TOML file."""
        return {"name": self.name, "title": self.title, "paper_metric": self.paper_metric,
                "fail_above": self.fail_above, "dataset": self.base.get("dataset"), "source": self.source, "notes": self.notes,
                "protocol": self.protocol, "figures": self.figures, "rows": [v.meta() for v in self.variants],
                "claims": [c.meta() for c in self.claims], **({"axis": self.axis} if self.axis else {})}


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
    path: str = ""  # the file it was read from


@dataclass
class Run:
    """One training run: a row of an experiment at one seed, with its full config."""

    experiment: str
    variant: str
    seed: int
    config: dict
    hash: str
    arch_asked: str | None = None  # the row's own arch, where the preset's arch_map runs config["arch"] instead

    @property
    def key(self) -> str:
        return f"{self.experiment}:{self.variant}:{self.seed}"


# --- reading ----------------------------------------------------------------------------------


def _check_keys(where: str, table: dict, keys: dict, config_keys=()) -> None:
    """Unknown keys and wrongly typed values raise one line naming the file and the key."""
    for key, value in table.items():
        if key in keys:
            kind = keys[key]
            kinds = kind if isinstance(kind, tuple) else (kind,)
            if not has_type(value, kinds):
                want = " or ".join(k.__name__ for k in kinds)
                raise ConfigError(f"{where}: key {key!r} must be {want}, got {value!r}")
        elif key not in config_keys:
            raise ConfigError(f"{where}: unknown key {key!r}{did_you_mean(key, [*keys, *config_keys])}")


def read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(read_text(path))  # TOML is UTF-8: another encoding is one line naming the file
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: malformed TOML: {e}") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a folder, not an experiment file; rename it or move it out of the "
                          f"experiments folder") from None
    except OSError as e:
        raise ConfigError(f"{path} cannot be read: {e.strerror}") from None


def known_config_keys(defaults: dict | None) -> list[str]:
    return list(schema.DEFAULTS if defaults is None else defaults)


def preset_from(where: str, name: str, table: dict, config_keys, path: str = "") -> Preset:
    """A preset's table as a :class:`Preset`, or ConfigError naming ``where`` and the key; ``path``: its file."""
    _check_keys(where, table, PRESET_META, config_keys)
    refuse_study_keys(where, table)
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
    return Preset(name=name, config=config, arch_map=dict(table.get("arch_map", {})), seeds=table.get("seeds", 1),
                  description=table.get("description", ""), all_rows=table.get("all_rows", False),
                  milestones_at=fractions, path=path)


def load_experiment(path, defaults: dict | None = None) -> Experiment:
    return experiment_from(read_toml(Path(path)), path, defaults)


def experiment_from(data: dict, path, defaults: dict | None = None, ladder_rows: bool = False) -> Experiment:
    """An experiment file's table as an :class:`Experiment`, or ConfigError naming ``path`` and the key.

    Its names must be safe (:mod:`ablation.core.names`); ``ladder_rows``: the rows are a ladder's,
    ``<row>@<value>``."""
    path = Path(path)
    keys = known_config_keys(defaults)
    where = str(path)
    _check_keys(where, data, EXPERIMENT_KEYS)
    for required in ("name", "title", "paper_metric", "variant"):
        if required not in data:
            raise ConfigError(f"{where}: missing key {required!r}")
    check_name(data["name"], "experiment name", where)
    if not data["variant"]:
        raise ConfigError(f"{where}: experiment {data['name']!r} has no variants; add [[variant]] tables")
    if data.get("protocol", PAPER_PROTOCOLS[0]) not in PAPER_PROTOCOLS:
        raise ConfigError(f"{where}: protocol must be one of {', '.join(PAPER_PROTOCOLS)}, got {data['protocol']!r}")
    base = data.get("base", {})
    _check_keys(f"{where}: [base]", base, {}, keys)
    refuse_study_keys(f"{where}: [base]", base)
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
        check_name(row["name"], "variant name", where, ladder_row=ladder_rows)
        refuse_study_keys(vwhere, row)
        if row["name"] in seen:
            raise ConfigError(f"{vwhere}: variant name used twice")
        if isinstance(row.get("paper"), str) and row["paper"] != "fail":
            raise ConfigError(f"{vwhere}: paper must be a number or \"fail\", got {row['paper']!r}")
        for key in ("paper", "paper_mean", "paper_std", "paper_above"):
            if isinstance(row.get(key), float) and not math.isfinite(row[key]):
                raise ConfigError(f"{vwhere}: {key} must be a finite number, got {row[key]}")
        protocol = row.get("protocol", data.get("protocol"))
        if protocol is not None and protocol not in PAPER_PROTOCOLS:
            raise ConfigError(f"{vwhere}: protocol must be one of {', '.join(PAPER_PROTOCOLS)}, got {protocol!r}"
                              f"{did_you_mean(protocol, PAPER_PROTOCOLS)}")
        seen.add(row["name"])
        _check_row_depth(vwhere, row, base)
        for pname, table in row.get("presets", {}).items():
            if not isinstance(table, dict):
                raise ConfigError(f"{vwhere}: presets.{pname} must be a table of config keys")
            _check_keys(f"{vwhere}: presets.{pname}", table, {}, keys)
            check_name(pname, "preset name", where)
            refuse_study_keys(f"{vwhere}: presets.{pname}", table)
        config = {k: v for k, v in row.items() if k not in VARIANT_META}
        variants.append(Variant(experiment=data["name"], name=row["name"], config=config,
                                label=row.get("label", row["name"]), column=row.get("column"), paper=row.get("paper"),
                                source=row.get("source", data.get("source", "")), note=row.get("note", ""),
                                protocol=protocol, paper_mean=row.get("paper_mean"), paper_std=row.get("paper_std"),
                                paper_above=row.get("paper_above"), depth=row.get("depth"), rung=row.get("rung"),
                                rows_of=row.get("rows_of"),
                                presets=dict(row.get("presets", {}))))
    presets = {}
    for pname, table in data.get("presets", {}).items():
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: presets.{pname} must be a table")
        check_name(pname, "preset name", where)
        presets[pname] = preset_from(f"{where}: [presets.{pname}]", pname, table, keys, where)
    in_all = data.get("in_all", False)
    in_all = [v.name for v in variants] if in_all is True else (in_all or [])
    for name in in_all:
        if name not in seen:
            raise ConfigError(f"{where}: in_all names unknown variant {name!r}{did_you_mean(name, seen)}")
    figures = data.get("figures", [])
    for figure in figures:
        if figure not in EXPERIMENT_FIGURES:
            raise ConfigError(f"{where}: figures names unknown figure {figure!r}{did_you_mean(figure, EXPERIMENT_FIGURES)}; "
                              f"valid: {', '.join(EXPERIMENT_FIGURES)}")
    claims = []
    for c in data.get("claim", []):
        if not isinstance(c, dict):
            raise ConfigError(f"{where}: every [[claim]] must be a table, got {c!r}")
        _check_keys(f"{where}: [[claim]]", c, CLAIM_KEYS)
        if c.get("metric", "test") not in CLAIM_METRICS:
            raise ConfigError(f"{where}: claim metric must be one of {', '.join(CLAIM_METRICS)}")
        _check_claim(f"{where}: [[claim]] {c.get('says', '')!r}", c)
        lowest = c.get("lowest")
        claim = Claim(says=c.get("says", ""), metric=c.get("metric", "test"), lower=c.get("lower"),
                      lowest=[lowest] if isinstance(lowest, str) else lowest, among=c.get("among"),
                      close=c.get("close"), within=float(c.get("within", 1.0)), not_worse=c.get("not_worse"),
                      identity_at_init=c.get("identity_at_init"))
        if sum(getattr(claim, kind) is not None for kind in CLAIM_KINDS) != 1:
            raise ConfigError(f"{where}: a claim needs exactly one of {', '.join(repr(k) for k in CLAIM_KINDS)}")
        for name in claim.variants():
            if name not in seen:
                raise ConfigError(f"{where}: claim names unknown variant {name!r}{did_you_mean(name, seen)}")
        claims.append(claim)
    return Experiment(name=data["name"], title=data["title"], paper_metric=data["paper_metric"], base=base,
                      variants=variants, presets=presets, in_all=in_all, fail_above=data.get("fail_above"),
                      source=data.get("source", ""), notes=data.get("notes", ""), claims=claims, path=where,
                      protocol=data.get("protocol"), figures=figures)


def _check_row_depth(where: str, row: dict, base: dict) -> None:
    """A row's depth sets the depth of a CIFAR basic net, so its net must be one."""
    if row.get("depth") is None:
        return
    check_depth(row["depth"], f"{where}: depth")
    arch = row.get("arch", base.get("arch"))
    if not (isinstance(arch, str) and is_cifar_basic(arch)):
        raise ConfigError(f"{where}: depth applies to CIFAR basic nets (resnet{{6n+2}}), not to arch {arch!r}")


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
    names("not_worse", 2)
    names("identity_at_init")
    names("lowest")
    names("among")
    if c.get("within", 1.0) < 0:
        raise ConfigError(f"{where}: within must be >= 0, got {c['within']!r}")
