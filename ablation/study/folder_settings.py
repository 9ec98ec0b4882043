"""What one results folder holds: runs of one setting.

A results folder holds runs of one preset and one set of command-line settings (``--dataset``,
``--depth``, ``--set``), which its README states: a claim compares its rows under those settings.
An invocation with other settings is refused in one line naming both and ``--out``. Runtime keys
(``--device``, threads, ``checkpoint_every``, ...) change no number and may differ. A manifest written
before folders recorded their settings says nothing of them; its runs do: a row and seed that it holds
under another hash than this invocation makes of it ran with other settings, and is refused likewise.
"""

from __future__ import annotations

import json

from ..core.errors import ConfigError
from ..training.config import RUNTIME_KEYS


def _numbers(settings: dict) -> dict:
    return {k: v for k, v in settings.items() if k not in RUNTIME_KEYS}


def _describe(preset: str | None, settings: dict) -> str:
    given = ", ".join(f"{k}={json.dumps(v)}" for k, v in settings.items()) or "no settings over the preset"
    return f"{given} (preset {preset})"


def refuse_other_settings(old: dict | None, preset: str, changed: dict, option: str) -> None:
    """ConfigError where the folder's manifest ``old`` records runs of another preset or other command-line
    settings than ``changed`` (this invocation's); ``option`` is the folder as given (``--out DIR``)."""
    if not old or not old.get("runs") or "overrides" not in old:
        return  # a new folder, or one written before its settings were recorded
    before, now = _numbers(old["overrides"]), _numbers(changed)
    if before == now and old.get("preset") == preset:
        return
    raise ConfigError(f"{option} holds runs made with {_describe(old.get('preset'), before)}; this command sets "
                      f"{_describe(preset, now)}: one folder holds one setting, so that its claims compare like "
                      f"with like; use another --out, or the folder's settings")


def refuse_other_runs(old: dict | None, runs, option: str) -> None:
    """ConfigError where the manifest ``old``, written before folders recorded their settings (no ``overrides``),
    holds a row and seed of ``runs`` (:class:`ablation.study.experiments.Run`) under another hash: those runs were
    made with other settings than this invocation's."""
    if not old or "overrides" in old:
        return
    held = {(r["experiment"], r["variant"], r["seed"]): r["hash"] for r in old.get("runs", {}).values()}
    for r in runs:
        h = held.get((r.experiment, r.variant, r.seed))
        if h is not None and h != r.hash:
            raise ConfigError(f"{option} holds {r.experiment}:{r.variant} seed {r.seed} as run {h}, made with other "
                              f"settings than this command's (which make it run {r.hash}); one folder holds one "
                              f"setting, so that its claims compare like with like; use another --out, or the "
                              f"folder's settings")
