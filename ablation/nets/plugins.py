"""The plugins a study ran with: recorded in its manifest, loaded again wherever the study is read.

A plugin is a ``.py`` file or an importable module that registers shortcuts
(:func:`ablation.nets.registry.load_plugin`). The runner records each one it was given in the
manifest (``plugins``), as

    {"plugin": as given, "path": its source file (absolute), "sha256": of that file, "shortcuts": [names]}

(a module's source file is the one it imports from; a package's, its ``__init__.py``). Whatever reads a
finished study (the report, ``python -m ablation.gather``, :func:`ablation.load`) loads them from there with
:func:`load_recorded`, so that the nets of its plugin rows can be built again (the lesion study, the signal
at initialisation and at the end) without ``--plugin``. A plugin found at neither its path nor as given, or
whose source has changed since its runs trained, is not loaded: it is one line naming it, and its shortcuts
say why wherever a net of theirs is asked for (:func:`ablation.nets.registry.mark_unavailable`), so that
everything that needs no net is still reported. A plugin given again (``--plugin``) is loaded as it is now.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

from ..core.errors import ConfigError
from . import registry

_SHORT = 12  # hex digits of a digest in messages


def source_of(spec: str) -> Path | None:
    """The source file of plugin ``spec``: the ``.py`` file, or the file its module imports from (None: not found)."""
    if spec.endswith(".py"):
        path = Path(spec)
        return path.resolve() if path.is_file() else None
    try:
        found = importlib.util.find_spec(spec)
    except (ImportError, ValueError):
        return None
    origin = getattr(found, "origin", None)
    return Path(origin).resolve() if origin and Path(origin).is_file() else None


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def registered_from(source: Path) -> list[str]:
    """The shortcuts registered by the module whose file is ``source``."""
    names = []
    for name in registry.list_shortcuts():
        origin = registry.get_shortcut(name).origin
        if origin and origin.endswith(".py") and Path(origin).resolve() == source:
            names.append(name)
    return names


def record(specs) -> list[dict]:
    """The manifest's records of the plugins ``specs`` (loaded by now, as the runner loads them before its plan)."""
    out = []
    for spec in dict.fromkeys(specs):
        source = source_of(spec)
        if source is None:
            raise ConfigError(f"plugin {spec!r}: its source file is not found, so the study cannot record it")
        out.append({"plugin": spec, "path": str(source), "sha256": digest(source),
                    "shortcuts": registered_from(source)})
    return out


def merged(old: list | None, new: list) -> list:
    """``old`` records with ``new`` ones; a plugin recorded again (the same file) takes its new record."""
    paths = {r["path"] for r in new}
    return [*(r for r in old or [] if r.get("path") not in paths), *new]


def _load(spec: str, source: Path) -> None:
    """Import plugin ``spec`` unless this process already registered shortcuts from ``source``."""
    if not registered_from(source):
        registry.load_plugin(spec)


def load_recorded(manifest: dict | None, given=(), where: str = "the manifest") -> list[str]:
    """Load the plugins ``given`` (as ``--plugin``), then those the manifest records; returns one line per recorded
    plugin that is missing or has changed, whose shortcuts are then marked unavailable with the reason.

    ``where`` names the manifest in those lines.
    """
    loaded = set()
    for spec in given:
        source = source_of(spec)
        if source is None:
            registry.load_plugin(spec)  # its one-line error: not found, or does not import
            continue
        _load(spec, source)
        loaded.add(str(source))
    problems = []
    for rec in (manifest or {}).get("plugins") or []:
        if rec.get("path") in loaded or rec.get("plugin") in given:
            continue
        problem = _problem(rec)
        if problem is None:
            continue
        name = rec.get("plugin")
        for shortcut in rec.get("shortcuts") or []:
            registry.mark_unavailable(shortcut, f"shortcut {shortcut!r} is from plugin {name!r}, which {problem}")
        fix = (f"pass --plugin {name} to use it as it is now" if "changed" in problem
               else "put it back, or pass --plugin FILE_OR_MODULE")
        names = ", ".join(rec.get("shortcuts") or []) or "none recorded"
        problems.append(f"plugin {name!r} recorded in {where} {problem}: the rows of its shortcuts ({names}) are "
                        f"reported without what needs their nets (the lesion and signal studies); {fix}")
    return problems


def _problem(rec: dict) -> str | None:
    """Load the recorded plugin ``rec``; None where it loaded as recorded, else what is wrong with it."""
    spec = rec.get("plugin") or ""
    candidates = [rec.get("path"), spec] if spec.endswith(".py") else [spec]
    source = next((s for c in candidates if c and (s := source_of(c)) is not None), None)
    if source is None:
        return f"is missing (not at {rec.get('path')})"
    now = digest(source)
    if rec.get("sha256") and now != rec["sha256"]:
        return (f"has changed since its runs trained (sha256 {rec['sha256'][:_SHORT]} recorded, "
                f"{now[:_SHORT]} in {source})")
    try:
        _load(str(source) if spec.endswith(".py") else spec, source)
    except ConfigError as e:
        return f"does not load ({e})"
    return None
