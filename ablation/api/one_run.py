"""One run from Python: ``ablation.train(config, out)`` trains a config into a run folder, as ``python -m ablation.train``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import NamedTuple

from ..core.errors import ConfigError
from ..core.layout import RunDir, refuse_reference
from ..core.folder_checks import check_folder
from ..training.config import validate_config


class Trained(NamedTuple):
    """What ``ablation.train`` returns: the run's summary (``summary.json``) and its history as a DataFrame."""

    summary: dict
    history: "pd.DataFrame"


def checked(config: dict, out, notes: list | None = None) -> dict:
    """``config`` checked against the schema (defaults filled in), for the run folder ``out``; ConfigError if not.

    A folder in a reference study (:func:`ablation.core.layout.reference_study`) is refused: it is never written.
    """
    if not isinstance(config, Mapping):
        raise ConfigError(f"a config must be a table of key = value, got {config!r}")
    if not isinstance(out, (str, os.PathLike)):
        raise ConfigError(f"out= must name a folder, got {out!r}")
    check_folder(out, "run", "out=")
    refuse_reference(out, f"out= {out}", "train into a folder of your own (out=runs/NAME)")
    return validate_config(dict(config), notes)


def train(config: dict, out, notes: list | None = None) -> Trained:
    """Train ``config`` (config keys, as ``python -m ablation.train key=value``) into the folder ``out``.

    Resumes from ``out``'s last checkpoint; a finished run is read back, not trained again. Quiet unless the
    config says ``quiet = False``. ``notes`` (a list) receives what the config check noted.
    """
    import pandas as pd

    from ..training.loop import train as train_run

    cfg = checked({"quiet": True, **config} if isinstance(config, Mapping) else config, out, notes)
    summary = train_run(cfg, out)
    return Trained(summary, pd.DataFrame(RunDir(out).read_history()))
