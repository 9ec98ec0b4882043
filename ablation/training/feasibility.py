"""Whether a run can train at all, and whether it fits this machine, judged from its numbers before anything is built.

Two questions, asked at two moments:

- :func:`check_batch_norm` (part of every config's validation): BatchNorm in training normalises
  each channel over batch x H x W values; at the last stage of a net on tiny images, one image per
  step leaves one value per channel and the step fails. No machine can run that config.
- :func:`check_fits` (before a run, a study or a benchmark allocates anything): the memory a
  training step needs, estimated by :mod:`ablation.nets.footprint`, against the memory this
  machine has available. A config that fits a larger machine is not wrong, so the check belongs
  to where the run trains, not to the config: a dry run lists the estimate instead.

The estimate, in bytes (float32)::

    model  = 4 x 4 x parameters            weights, gradients, up to two optimizer buffers
    train  = model + 4 x batch x activations   every output of one image's forward pass, kept for backward
    eval   = model + 4 x 3 x eval_batch x largest   evaluation without autograd holds few tensors at once
    data   = (train + test images) x C x S x S     the dataset on the device, uint8
    total  = data + max(train, eval)

The limit is this machine's available memory (``MemAvailable`` of /proc/meminfo, else the free
pages of ``os.sysconf``), or the environment variable :data:`LIMIT_VAR` (``64G``, ``512M``, ``none``).
"""

from __future__ import annotations

import os

from ..core.errors import ConfigError
from ..nets.footprint import Footprint, footprint
from .data import DATASETS

LIMIT_VAR = "ABLATION_MEMORY_LIMIT"
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def run_footprint(cfg: dict) -> Footprint:
    """The footprint of a validated config's net on its images."""
    info = DATASETS[cfg["dataset"]]
    size = cfg["image_size"] or info.size
    return footprint(cfg["arch"], cfg["shortcut"], cfg["order"], info.classes, info.channels, cfg["width"],
                     cfg["match"], (size, size), bottleneck_stride=cfg["bottleneck_stride"],
                     fc_bias_init=cfg["fc_bias_init"], norm=cfg["norm"], **cfg["shortcut_args"])


def train_batch(cfg: dict) -> int:
    """Images in one training step: batch_size, or the whole training set where it is smaller."""
    info = DATASETS[cfg["dataset"]]
    n = cfg["train_subset"] or info.train_images - cfg["val_split"]
    return min(cfg["batch_size"], n)


def check_batch_norm(cfg: dict) -> None:
    """ConfigError where BatchNorm would see one value per channel in a training step."""
    if train_batch(cfg) > 1:  # two images give every channel two values, whatever the map's size
        return
    fp = run_footprint(cfg)
    if fp.has_bn and fp.last_spatial < 2:
        size = cfg["image_size"] or DATASETS[cfg["dataset"]].size
        raise ConfigError(f"batch_size={cfg['batch_size']} with image_size={size}: {cfg['arch']}'s last feature map "
                          f"is 1x1, so BatchNorm sees one value per channel and cannot train; use batch_size >= 2 "
                          f"or a larger image_size")


def memory_needed(cfg: dict, fp: Footprint | None = None, batch: int | None = None, images: int | None = None) -> dict:
    """The estimate of the module doc, in bytes: ``model``, ``activations``, ``data``, ``total``, ``batch``.

    ``batch`` and ``images`` replace the config's batch and the dataset's size (a benchmark's own data).
    """
    fp = fp or run_footprint(cfg)
    info = DATASETS[cfg["dataset"]]
    size = cfg["image_size"] or info.size
    batch = batch or train_batch(cfg)
    model = 16 * fp.params
    acts = max(4 * batch * fp.activations, 12 * cfg["eval_batch_size"] * fp.largest)
    data = (images or info.train_images + info.test_images) * info.channels * size * size
    return {"model": model, "activations": acts, "data": data, "total": model + acts + data, "batch": batch}


def memory_limit() -> tuple[int | None, str]:
    """(bytes a run may use, where that figure comes from); None: no limit."""
    raw = os.environ.get(LIMIT_VAR)
    if raw is not None:
        text = raw.strip().upper().removesuffix("B").removesuffix("I")
        if text in ("NONE", "OFF", ""):
            return None, f"{LIMIT_VAR}={raw}"
        unit = text[-1] if text[-1:] in _UNITS else ""
        try:
            value = float(text[: len(text) - len(unit)]) * _UNITS[unit]
        except ValueError:
            raise ConfigError(f"{LIMIT_VAR}={raw!r} is not a size such as 64G, 512M or none") from None
        if not value > 0 or value == float("inf"):
            raise ConfigError(f"{LIMIT_VAR}={raw!r} must be a size above 0 (or none)")
        return int(value), f"{LIMIT_VAR}={raw}"
    return available_memory(), "available on this machine"


def available_memory() -> int:
    """Bytes of memory this machine can give a new process now."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def gib(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB" if n >= 2**30 else f"{n / 2**20:,.1f} MiB"


def describe_need(cfg: dict, need: dict) -> str:
    return (f"{cfg['arch']} at batch_size={need['batch']} needs about {gib(need['total'])} (weights and optimizer "
            f"{gib(need['model'])}, activations {gib(need['activations'])}, data {gib(need['data'])})")


def check_fits(cfg: dict, batch: int | None = None, images: int | None = None) -> dict:
    """The memory estimate of ``cfg`` (:func:`memory_needed`); ConfigError in one line when it exceeds
    :func:`memory_limit`.

    On a GPU the limit applies only where :data:`LIMIT_VAR` sets it (the GPU's own memory is not read
    here, so that the driver process does not start CUDA).
    """
    need = memory_needed(cfg, batch=batch, images=images)
    limit, source = limit_for(cfg)
    if limit is not None and need["total"] > limit:
        raise ConfigError(f"{describe_need(cfg, need)}, more than the {gib(limit)} {source}; use a smaller net, "
                          f"batch or image_size, or set {LIMIT_VAR} (e.g. {LIMIT_VAR}=64G, or none)")
    return need


def check_pass_fits(fp: Footprint, batch: int, what: str) -> int:
    """The memory of one forward and backward pass outside training (``python -m ablation.signal``): weights and
    their gradients, and the activations of ``batch`` images, 4 bytes each; ConfigError over :func:`memory_limit`,
    before anything is built (a net of 600,000 layers would otherwise take minutes, then the machine's memory)."""
    model, acts = 8 * fp.params, 4 * batch * fp.activations
    limit, source = memory_limit()
    if limit is not None and model + acts > limit:
        raise ConfigError(f"{what} at batch {batch} needs about {gib(model + acts)} (weights and gradients "
                          f"{gib(model)}, activations {gib(acts)}), more than the {gib(limit)} {source}; use a "
                          f"smaller net or batch, or set {LIMIT_VAR} (e.g. {LIMIT_VAR}=64G, or none)")
    return model + acts


def limit_for(cfg: dict) -> tuple[int | None, str]:
    """:func:`memory_limit` for where ``cfg`` trains: on a GPU, only one that :data:`LIMIT_VAR` sets."""
    if os.environ.get(LIMIT_VAR) is None and (cfg["device"] == "cuda" or (cfg["device"] == "auto" and _cuda())):
        return None, f"on a GPU unless {LIMIT_VAR} sets one"
    return memory_limit()


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()
