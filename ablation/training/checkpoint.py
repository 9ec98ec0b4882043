"""A run's checkpoint, whose save and load mirror each other, and the check that a run folder holds this config."""

from __future__ import annotations

import warnings

import torch

from ..core.errors import ConfigError
from ..core.files import CorruptFile
from ..core.layout import RunDir
from .config import differing_keys
from .step import LoopState


def check_same_run(run: RunDir, cfg: dict):
    """ConfigError if ``run`` holds a run of another config (runtime keys may differ).

    A run that never trained (no checkpoint, history or summary: a start that failed) holds
    nothing, and its config.json gives way to the new one. One that trained must say which
    config it holds: an unreadable or missing config.json then refuses, rather than hand back
    numbers that may belong to another config.
    """
    started = run.is_started()
    try:
        old = run.read_config()
    except CorruptFile:
        if started:
            raise
        return
    if not started:
        return
    if old is None:
        raise ConfigError(f"{run.path} holds a run without {run.config.name}, so which config it trained is "
                          f"unknown; choose another out= or delete the directory")
    changed = differing_keys(old, cfg)
    if changed:
        raise ConfigError(f"{run.path} holds a run with different {', '.join(changed)}; choose another out= or "
                          f"delete the directory")


def save_checkpoint(run: RunDir, model, opt, s: LoopState):
    run.save_checkpoint({"model": model.state_dict(), "optimizer": opt.state_dict(), "state": s.state_dict(),
                         "rng": s.rng_state()})


def load_checkpoint(run: RunDir, model, opt, s: LoopState, device):
    with warnings.catch_warnings():  # torch's own note about a damaged file would be a second line
        warnings.simplefilter("ignore")
        ck = torch.load(run.checkpoint, map_location="cpu", weights_only=True)
    model.load_state_dict(ck["model"])
    opt.load_state_dict(ck["optimizer"])
    s.load_state_dict(ck["state"], device)
    s.load_rng_state(ck["rng"], device)
