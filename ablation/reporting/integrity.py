"""A run folder's files belong together: its name is the hash of its config, and its summary carries that hash.

A ``config.json`` edited after the run, or a ``summary.json`` copied from another run, would show
numbers under settings they were not made with. The report checks both for every run folder it reads
and stops with one line naming the folder. A summary written before summaries carried their hash has
no ``config_hash``; its config is still checked against the folder's name.
"""

from __future__ import annotations

from ..core.errors import ConfigError
from ..core.layout import RunDir
from ..training.config import config_hash


def check_run_files(run: RunDir, cfg: dict, summary: dict | None) -> None:
    """ConfigError naming ``run``'s folder where its config or its summary is not that folder's."""
    got = config_hash(cfg)
    if got != run.name:
        raise ConfigError(f"{run.path}: its config.json hashes to {got}, not to its folder's name (edited after the "
                          f"run, or the folder renamed); restore it, or delete the folder to train the run again")
    recorded = summary.get("config_hash") if isinstance(summary, dict) else None
    if recorded is not None and recorded != run.name:
        raise ConfigError(f"{run.path}: its summary.json is that of run {recorded}, not of this folder (copied from "
                          f"another run?); delete it to train this run again")
