"""Where experiment files are found: the shipped ones and the user's own, read together into one catalogue.

The shipped experiments and presets sit in ``ablation/experiments/`` (package data, so an installed copy
has them). A user's own files go in a folder of their own: ``./experiments/`` of the folder a command runs
in, or the folders named by ``--experiments DIR`` (repeatable; ``Study(experiments=...)`` from Python),
which then take its place. Every ``*.toml`` there is an experiment or a ladder file, and a ``presets.toml``
adds presets. They are read beside the shipped ones, never instead of them: a user's ladder may run the
rows of a shipped experiment, and a user's experiment runs under the shipped presets.

One name is one thing: an experiment or preset whose name is already taken (by a shipped file, or by
another of the user's) is refused in one line naming both files; rename one of them.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..core.errors import ConfigError
from . import ladder
from .experiments import Experiment, Preset, experiment_from, known_config_keys, preset_from, read_toml
from ..core.names import check_name

SHIPPED = Path(__file__).resolve().parents[1] / "experiments"  # package data (pyproject.toml)
USER_FOLDER = "experiments"  # the user's, in the folder a command runs in
PRESETS_FILE = "presets.toml"


def user_folders(given=None) -> list[Path]:
    """The user's folders of experiment files: ``given`` (``--experiments``: a folder, or a list of them), each one
    that must be a folder; else ``./experiments`` where there is one. ConfigError for anything else."""
    if given is None:
        default = Path(USER_FOLDER)
        return [default] if default.is_dir() else []
    if isinstance(given, (str, os.PathLike)):
        given = [given]
    try:
        given = list(given)
    except TypeError:
        raise ConfigError(f"--experiments must name a folder (or a list of them), got {given!r}") from None
    folders = []
    for folder in given:
        if not isinstance(folder, (str, os.PathLike)) or not str(folder).strip():
            raise ConfigError(f"--experiments must name a folder, got {folder!r}")
        if not Path(folder).is_dir():
            raise ConfigError(f"--experiments {folder} is not a folder; give the folder that holds your experiment "
                              f"files")
        folders.append(Path(folder))
    return folders


def folders(user=()) -> list[Path]:
    """The shipped folder, then each of the user's, each once (a user's folder that is the shipped one is that)."""
    out, seen = [], set()
    for folder in [SHIPPED, *user]:
        key = Path(folder).resolve()
        if key not in seen:
            seen.add(key)
            out.append(Path(folder))
    return out


def is_shipped(path) -> bool:
    return Path(path).resolve().parent == SHIPPED


def origin(path) -> str:
    """Where a file of the catalogue comes from, for ``--list``: ``shipped``, or the file."""
    return "shipped" if is_shipped(path) else str(path)


def load_experiments(user=(), defaults: dict | None = None) -> dict[str, Experiment]:
    """The shipped experiments, then those of the user's folders ``user``, by name: every ``*.toml`` but the presets
    file. Ladders are built last, from the rows of every folder's experiments."""
    out, tables, ladders = {}, {}, []
    for folder in folders(user):
        for path in sorted(Path(folder).glob("*.toml")):
            if path.name == PRESETS_FILE:
                continue
            data = read_toml(path)
            if ladder.is_ladder(data):  # built from the others' rows once they are all read
                ladders.append((path, data))
                continue
            _add(out, experiment_from(data, path, defaults))
            tables[data["name"]] = data
    for path, data in ladders:
        table, axis = ladder.expand(data, tables, str(path))
        exp = experiment_from(table, path, defaults, ladder_rows=True)
        exp.axis = {**axis, "claims": _ladder_claims(axis, out)}
        _add(out, exp)
    return out


def load_presets(user=(), defaults: dict | None = None) -> dict[str, Preset]:
    """The shipped presets, then those of each user's folder's ``presets.toml``, by name."""
    shipped = SHIPPED / PRESETS_FILE
    if not shipped.is_file():
        raise ConfigError(f"no presets file at {shipped}; the package is incomplete, install it again")
    keys = known_config_keys(defaults)
    presets = {}
    for folder in folders(user):
        path = Path(folder) / PRESETS_FILE
        if not path.is_file():
            continue
        for name, table in read_toml(path).items():
            if not isinstance(table, dict):
                raise ConfigError(f"{path}: {name!r} must be a table [{name}]")
            check_name(name, "preset name", str(path))
            if name in presets:
                raise ConfigError(f"{path}: preset [{name}] is also one of {_taken(presets[name].path)}; give yours "
                                  f"another name")
            presets[name] = preset_from(f"{path}: [{name}]", name, table, keys, path=str(path))
    return presets


def _taken(path: str) -> str:
    return f"the shipped {path}" if is_shipped(path) else path


def _ladder_claims(axis: dict, experiments: dict) -> list[dict]:
    """The claims of a ladder's sources whose rows it all runs; a ``lowest`` claim without ``among`` is among its
    own experiment's rows (the ladder's other sources are not what its paper compared)."""
    claims = []
    for source in axis["rows_of"]:
        own = [r for r, s in axis["sources"].items() if s == source]
        included = list(dict.fromkeys(axis["rows"][r] for r in own))
        for c in experiments[source].claims:
            if set(c.variants()) <= set(included):
                meta = c.meta()
                if c.lowest and not c.among and len(axis["rows_of"]) > 1:
                    meta["among"] = included
                claims.append(meta)
    return claims


def _add(out: dict, exp: Experiment) -> None:
    if exp.name in out:
        held = out[exp.name].path
        # the user's file first: it is the one to rename where the other is shipped
        first, second = (held, exp.path) if is_shipped(exp.path) and not is_shipped(held) else (exp.path, held)
        raise ConfigError(f"{first}: experiment name {exp.name!r} is also that of {_taken(second)}; give one of them "
                          f"another name")
    out[exp.name] = exp
