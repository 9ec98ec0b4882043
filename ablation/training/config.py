"""The one schema of a run's config: every key with its default, type, bounds and help line.

Everything that reads a config goes through here: the trainer, the experiment files, the
command lines (``key=value`` words, parsed by :func:`parse_overrides`) and the run hash
(which leaves out the :data:`RUNTIME_KEYS`). Adding a key means adding one :class:`Key`.
Errors in history and summary files are in percent.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import tomllib
from dataclasses import dataclass
from typing import Any

from .tensorboard_events import require_tensorboard
from .clamp_refusals import refuse_clamped
from .data import DATASETS, NORMALIZATIONS, PAD_FILLS
from .feasibility import check_batch_norm
from ..core.errors import ConfigError, did_you_mean
from ..core.folder_checks import check_names
from ..nets.models import check_builder_keys, check_model_args
from ..nets.resnet import BOTTLENECK_STRIDES, FC_BIAS_INITS
from ..nets.norms import DEFAULT_NORM, NORMS
from ..nets.registry import get_shortcut


# torch's generators take seeds below 2**64; the augmentation generator uses seed + 1
_MAX_SEED = 2**63 - 2


@dataclass(frozen=True)
class Key:
    """One config key: its default, its type, what values it takes and what it means."""

    default: Any
    kind: type  # int, float (ints accepted), bool, str, dict or list
    help: str
    lo: float | None = None  # inclusive bounds for numbers
    hi: float | None = None
    nullable: bool = False
    choices: tuple | None = None
    # may change between invocations of the same run: where and how it runs, not what it computes.
    # Runtime keys are left out of a run's hash, and a run resumes across a change of them.
    runtime: bool = False
    # a key added after runs were made, whose default keeps the earlier behaviour: at its default it
    # stays out of the run's hash (and a stored config without it reads as the default), so the
    # earlier runs keep their hashes and their results. Every key added from now on sets this.
    hash_if_set: bool = False


SCHEMA: dict[str, Key] = {
    # model (ablation.build_model)
    "arch": Key("resnet20", str, "network: resnet{6n+2}, resnet164, resnet1001, resnet{9n+2}b, resnet18..152"),
    "shortcut": Key("identity", str, "a registered shortcut name (python -m ablation.run --list)"),
    "shortcut_args": Key({}, dict, "the shortcut's parameters, e.g. {b=-6} or {lam_s=0.5}"),
    "order": Key("original", str, "where BN and ReLU sit in the unit (He 2016 Table 2), e.g. full-preact"),
    "width": Key(None, int, "first-stage width (null: 16 for CIFAR nets, 64 for ImageNet ones)", 1, nullable=True),
    "match": Key("zero-pad", str, "what x becomes where a unit changes shape: zero-pad (option A) or projection (B)"),
    "bottleneck_stride": Key("3x3", str, "the conv of a bottleneck unit that strides: 3x3 (torchvision, fb.resnet.torch) "
                             "or 1x1 (He 2015's Caffe models, resnet-pre-act.lua)", choices=BOTTLENECK_STRIDES,
                             hash_if_set=True),
    "fc_bias_init": Key("uniform", str, "the classifier's initial bias: uniform (torch's default) or zero (both "
                        "reference codes)", choices=FC_BIAS_INITS, hash_if_set=True),
    "norm": Key(DEFAULT_NORM, str, "what normalises the net: bn (BatchNorm, the papers'), none (no BN anywhere: Fixup, "
                "SkipInit) or ws (none, and scaled weight standardisation: NF-ResNets)", choices=NORMS,
                hash_if_set=True),
    # data
    "dataset": Key("cifar10", str, "the dataset", choices=tuple(DATASETS)),
    "data_dir": Key("data", str, "where datasets and their decoded cache live", runtime=True),
    "download": Key(True, bool, "download a dataset found nowhere locally", runtime=True),
    "val_split": Key(0, int, "hold out that many train images (a fixed draw) and report them as the test split",
                     0),
    "image_size": Key(None, int, "resize images to this size (null: native)", 4, nullable=True),
    "train_subset": Key(None, int, "train on a fixed class-stratified subset of this many images (more than "
                        "the split holds: the whole split, null)", 1, nullable=True),
    "augment": Key(True, bool, "4-pixel zero pad and random crop back (+ mirror when flip); off: none"),
    "flip": Key(True, bool, "mirror half the images when augmenting"),
    "normalize": Key("channel", str, "input scaling: channel (per-channel mean and std of the train split, [0,1] "
                     "units) or pixel-mean (He 2015: the per-pixel train mean subtracted, no division, 0-255 units)",
                     choices=NORMALIZATIONS, hash_if_set=True),
    "pad_fill": Key("black", str, "what the crop's 4-pixel padding holds: black (zeros before normalising) or mean "
                    "(zeros after it, i.e. the mean: He 2015, fb.resnet.torch)", choices=PAD_FILLS,
                    hash_if_set=True),
    # optimisation; steps and milestones count schedule_unit
    "optimizer": Key("sgd", str, "sgd (momentum, weight decay) or adam", choices=("sgd", "adam")),
    "lr": Key(0.1, float, "learning rate", 1e-12),
    "momentum": Key(0.9, float, "SGD momentum", 0, 1),
    "weight_decay": Key(1e-4, float, "L2 weight decay", 0),
    "nesterov": Key(False, bool, "Nesterov momentum"),
    "batch_size": Key(128, int, "images per step", 1),
    "schedule_unit": Key("iterations", str, "what steps and milestones count", choices=("iterations", "epochs")),
    "steps": Key(64000, float, "length of training, in schedule_unit", 1e-9),
    "milestones": Key([32000, 48000], list, "divide the rate by 1/gamma at these points (schedule_unit); given "
                      "explicitly, none may lie beyond steps"),
    "gamma": Key(0.1, float, "factor of the rate at each milestone", 1e-12),
    "lr_groups": Key({}, dict, "rate multipliers of parameter groups that the net's design names, {group = multiplier}: "
                     "{scalars = 0.1} trains Fixup's scalar biases and multipliers (and the classifier's bias) at a "
                     "tenth of the rate, as its reference code; every other parameter at lr; warm-up and drops apply "
                     "to every group alike", hash_if_set=True),
    "warmup_lr": Key(None, float, "a smaller rate held first (He 2015's 110-layer recipe); null: none", 1e-12,
                     nullable=True),
    "warmup_until_error": Key(0.8, float, "warm-up ends when the training error over the last 20 iterations "
                              "falls below this fraction", 0, 1),
    "warmup_max_iters": Key(2000, int, "warm-up ends after this many iterations at the latest", 0),
    # recording; grad_norm_points are fractions of the schedule
    "evals": Key(40, int, "evaluation points over the schedule", 1),
    "eval_batch_size": Key(1000, int, "images per evaluation batch", 1),
    "eval_subset": Key(None, int, "evaluate a fixed stratified subset of the test split, except at the last "
                       "point (whole split); more than the split holds: the whole split (null)", 1,
                       nullable=True),
    "grad_norm_points": Key([0.0, 0.05, 0.5, 1.0], list, "fractions of the schedule at which per-unit gradient "
                            "norms are recorded"),
    "fail_chance_fraction": Key(0.25, float, "after that fraction of the schedule, train and test error still at "
                                "chance end the run as fail; null: never (a non-finite training loss always "
                                "ends a run as diverged)", 0, 1,
                                nullable=True),
    "tensorboard": Key(False, bool, "also write each run's scalars (loss, errors, lr, gate means, images/s) as "
                       "TensorBoard event files next to history.jsonl; needs the tensorboard package", runtime=True),
    # runtime
    "seed": Key(0, int, "seed of initialisation, data order and augmentation", 0, _MAX_SEED),
    "device": Key("auto", str, "auto, cpu or cuda", choices=("auto", "cpu", "cuda"), runtime=True),
    "threads": Key(None, int, "torch threads (null: torch's choice)", 1, nullable=True, runtime=True),
    "bf16": Key(True, bool, "bf16 autocast where the hardware has it natively (GPUs, CPUs with AMX); "
                "else float32"),
    "cpu_bf16": Key(True, bool, "with bf16=true on a CPU with AMX, compute in bf16; false: float32 there, as a "
                    "CPU without AMX runs the same config (to add seeds to a study made on one); the summary "
                    "records the precision that ran", runtime=True),
    "compile": Key(False, bool, "torch.compile the model"),
    "deterministic": Key(False, bool, "deterministic kernels only (slower on GPU)"),
    "checkpoint_every": Key(2000, int, "iterations between checkpoints", 1, runtime=True),
    "quiet": Key(False, bool, "no progress bar", runtime=True),
}

DEFAULTS = {k: key.default for k, key in SCHEMA.items()}
RUNTIME_KEYS = frozenset(k for k, key in SCHEMA.items() if key.runtime)


def identity(cfg: dict) -> dict:
    """The keys that make a run what it is: no runtime keys, no later-added key left at its default."""
    return {k: v for k, v in cfg.items() if k not in RUNTIME_KEYS
            and not (k in SCHEMA and SCHEMA[k].hash_if_set and v == SCHEMA[k].default)}


def config_hash(cfg: dict) -> str:
    """12 hex digits of the sha256 of the config's :func:`identity`: the name of the run's folder."""
    blob = json.dumps(identity(cfg), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def stored(cfg: dict) -> dict:
    """A run's stored config.json as the config it was: a later-added key it lacks reads as its default."""
    return {**{k: copy.deepcopy(DEFAULTS[k]) for k in SCHEMA if SCHEMA[k].hash_if_set}, **cfg}


def differing_keys(old: dict, new: dict) -> list[str]:
    """Keys in which two configs describe different runs (a later-added key missing from ``old``
    reads as its default)."""
    a, b = identity(stored(old)), identity(new)
    return sorted(k for k in {*a, *b} if a.get(k) != b.get(k))
_LIST_ENTRIES = {"milestones": (0, None), "grad_norm_points": (0, 1)}  # bounds of each entry


def validate_config(cfg: dict, notes: list | None = None, own_images: bool = False) -> dict:
    """``cfg`` merged over :data:`DEFAULTS`, or ConfigError naming the first bad key or value.

    ``own_images``: the caller trains on images of its own (the benchmark), not on the dataset's
    split, so the split does not bound the batch (:mod:`ablation.training.clamp_refusals`).

    Subset sizes larger than their split become null (the whole split: the same images
    in the same order, so the same numbers), with a line for ``notes`` where one is given.
    """
    if not isinstance(cfg, dict):
        raise ConfigError(f"a config must be a table of key = value, got {cfg!r}")
    for key in cfg:
        if key not in SCHEMA:
            raise ConfigError(f"unknown config key {key!r}{did_you_mean(key, SCHEMA)}")
    given = set(cfg)
    cfg = copy.deepcopy({**DEFAULTS, **cfg})
    for name, key in SCHEMA.items():
        check_value(name, cfg[name], key)
    for name, (lo, hi) in _LIST_ENTRIES.items():
        for v in cfg[name]:
            check_value(f"{name} entry", v, Key(None, float, "", lo, hi))
    if list(cfg["milestones"]) != sorted(cfg["milestones"]):
        raise ConfigError(f"milestones must ascend, got {cfg['milestones']}")
    if cfg["schedule_unit"] == "iterations" and cfg["steps"] != int(cfg["steps"]):
        raise ConfigError(f"steps={cfg['steps']} must be whole when schedule_unit is iterations")
    if "milestones" in given and any(m > cfg["steps"] for m in cfg["milestones"]):
        steps = cfg["steps"]
        hint = [round(steps * f) if cfg["schedule_unit"] == "iterations" else round(steps * f, 3) for f in (0.5, 0.75)]
        raise ConfigError(f"milestones {cfg['milestones']} lie beyond steps={steps:g} ({cfg['schedule_unit']}): the "
                          f"rate would never drop there; set milestones within steps, e.g. "
                          f"milestones=[{hint[0]}, {hint[1]}], or milestones=[]")
    if cfg["device"] == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("device=cuda but no CUDA device is available; use device=auto or cpu")
    if cfg["tensorboard"]:
        require_tensorboard()
    _fit_subsets(cfg, notes)
    if not own_images:
        refuse_clamped(cfg, SCHEMA["evals"].default)
    info = DATASETS[cfg["dataset"]]
    check_names(cfg["data_dir"], "data_dir")
    check_builder_keys(cfg["shortcut_args"], "shortcut_args", lambda k: f"set {k}=... as a config key of its own")
    check_model_args(cfg["arch"], cfg["shortcut"], cfg["order"], info.classes, info.channels, cfg["width"],
                     cfg["match"], **model_options(cfg), **cfg["shortcut_args"])
    check_lr_groups(cfg["shortcut"], cfg["lr_groups"])
    check_batch_norm(cfg)
    return cfg


def check_lr_groups(shortcut: str, groups: dict) -> None:
    """ConfigError unless every group of ``lr_groups`` is one the shortcut's design names, with a multiplier > 0."""
    named = get_shortcut(shortcut).cls.param_groups
    for group, scale in groups.items():
        if group not in named:
            names = ", ".join(named) if named else "none"
            raise ConfigError(f"lr_groups: shortcut {shortcut!r} names no parameter group {group!r} (its groups: "
                              f"{names})")
        if not has_type(scale, (int, float)) or not math.isfinite(scale) or scale <= 0:
            raise ConfigError(f"lr_groups: the multiplier of {group!r} must be a number > 0, got {scale!r}")


def model_options(cfg: dict) -> dict:
    """The config keys that :func:`ablation.nets.models.build_model` takes as keyword options."""
    return {"bottleneck_stride": cfg["bottleneck_stride"], "fc_bias_init": cfg["fc_bias_init"], "norm": cfg["norm"]}
def _fit_subsets(cfg: dict, notes: list | None) -> None:
    """val_split below the training images; a train_subset or eval_subset beyond its split becomes null."""
    info, held = DATASETS[cfg["dataset"]], cfg["val_split"]
    if held >= info.train_images:
        raise ConfigError(f"val_split={held} must be below the {info.train_images} training images of "
                          f"{cfg['dataset']}")
    splits = {"train_subset": (info.train_images - held, "training"),
              "eval_subset": (held or info.test_images, "held-out" if held else "test")}
    for key, (n, split) in splits.items():
        if cfg[key] is not None and cfg[key] > n:
            if notes is not None:
                notes.append(f"{key}={cfg[key]} is more than the {n} {split} images of {cfg['dataset']}: "
                             f"the whole split is used ({key}=null)")
            cfg[key] = None


def has_type(value, kinds: tuple) -> bool:
    """``value`` is one of ``kinds``; a bool counts as a number only where ``kinds`` names bool.

    TOML's ``true`` is a bool, and a bool is an int to Python: where a number is meant, it is refused.
    """
    return isinstance(value, kinds) and (bool in kinds or not isinstance(value, bool))


def check_value(name: str, value, key: Key) -> None:
    """ConfigError unless ``value`` has the key's type, lies within its bounds and is one of its choices."""
    if value is None and key.nullable:
        return
    if key.choices is not None:
        if value not in key.choices:
            raise ConfigError(f"{name}={value!r} is not one of {', '.join(key.choices)}"
                              f"{did_you_mean(value, key.choices)}")
        return
    number = key.kind in (int, float)
    ok = has_type(value, (int, float) if key.kind is float else (key.kind,))
    if ok and number and not math.isfinite(value):
        ok = False
    if not ok:
        want = {int: "a whole number", float: "a number", bool: "true or false", str: "a string", dict: "a table",
                list: "a list"}[key.kind]
        raise ConfigError(f"{name} must be {want}{' or null' if key.nullable else ''}, got {value!r}")
    if (key.lo is not None and value < key.lo) or (key.hi is not None and value > key.hi):
        span = f">= {key.lo}" if key.hi is None else f"between {key.lo} and {key.hi}"
        raise ConfigError(f"{name} must be {span}, got {value!r}")


def parse_value(raw: str):
    """A command-line value: JSON, else a TOML value (``[1, 2]``, ``{b = -6}``), else the string itself."""
    for parse in (json.loads, lambda r: tomllib.loads(f"v = {r}")["v"]):
        try:
            return parse(raw)
        except ValueError:
            continue
    return raw


def parse_overrides(args: list[str], what: str = "key=value") -> dict:
    """``key=value`` words into a dict (``-`` in a key reads as ``_``); values by :func:`parse_value`."""
    cfg = {}
    for arg in args:
        key, sep, raw = arg.lstrip("-").partition("=")
        if not sep or not key:
            raise ConfigError(f"expected {what}, got {arg!r}")
        cfg[key.replace("-", "_")] = parse_value(raw)
    return cfg


def parse_settings(words: list[str], flag: str = "--set") -> dict:
    """``key=value`` words that set config keys (a command's ``--set``), each checked against the schema.

    ``flag`` names the option in the one-line errors, as the user typed it.
    """
    return check_settings(parse_overrides(words, f"{flag} KEY=VALUE"), flag)


def check_settings(settings: dict, flag: str = "--set") -> dict:
    """``settings`` (config key -> value), each checked against the schema as :func:`parse_settings` checks it."""
    if not isinstance(settings, dict):
        raise ConfigError(f"{flag} takes config keys and values, got {settings!r}")
    for key, value in settings.items():
        if key not in SCHEMA:
            raise ConfigError(f"{flag} {key}: unknown config key{did_you_mean(key, SCHEMA)}")
        check_value(f"{flag} {key}", value, SCHEMA[key])
    return dict(settings)


def describe_keys() -> str:
    """Every key with its default and help line, for ``--help``."""
    lines = []
    for name, key in SCHEMA.items():
        extra = f" [{', '.join(key.choices)}]" if key.choices else ""
        lines.append(f"  {name}={json.dumps(key.default)}{extra}\n      {key.help}")
    return "\n".join(lines)
