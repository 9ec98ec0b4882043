"""The documentation's build hooks (mkdocs.yml ``hooks``): each page gets, at build time, what the project holds.

A page holds markers that the build replaces, so that no fact is kept twice and none can drift:

* ``<!-- findings: KIND FOLDER ARGS -->`` ... ``<!-- /findings -->``: numbers of a committed results folder,
  written by :func:`ablation.reporting.headlines.fill` (the pages are committed with these filled, and
  tests/test_headlines.py checks them);
* ``<!-- docs: config-keys -->``: every config key of :data:`ablation.training.config.SCHEMA`;
* ``<!-- docs: keys KIND -->`` bullets ``<!-- /docs -->``: the keys of a file (an experiment file, a row, a
  preset, a claim, a ladder file) with their types as the code reads them; the bullets (`` - `key`: meaning``)
  give each key's meaning, and a key the code knows without one, or one the code does not know, fails;
* ``<!-- docs: columns FILE -->`` bullets ``<!-- /docs -->``: the columns of a file of a results folder as
  the code writes them, with the meanings of the bullets, checked the same way;
* ``<!-- docs: api -->``: the API reference of every name that ``ablation`` exports, each of which must
  carry a docstring, as must its public methods;
* ``<!-- docs: modules -->``: every module of the package with the first paragraph of its docstring;
* ``<!-- docs: figures FOLDER -->``: every figure of a committed folder not shown above it on the page;
* ``<!-- docs: signal FOLDER INIT COLUMN -->``: one column of a signal ladder's summary, a row per shortcut
  and a column per network;
* ``<!-- docs: made FOLDER -->``: how a committed folder was made (reference.toml, notes.md, the ladder's log);
* ``<!-- docs: references -->``: every committed folder, with its page where it has one.

The figures (PNG) and tables of ``results/reference`` join the site under ``figures/<FOLDER>/`` at build time;
nothing is copied into docs/. A problem is a warning, which ``mkdocs build --strict`` turns into a failure.
Build from the project's root, ``python -m mkdocs build``, so that the ``ablation`` read is this folder's.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import posixpath
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

REFERENCES = ROOT / "results" / "reference"
FIGURES = "figures"  # where a reference folder's figures and tables sit in the site
SHIPPED = ("*.png", "plots/*.png", "rows.csv", "runs.csv", "signal_ladder_summary.csv")
SAMPLE = "quick-amd-epyc"  # the reference whose tables give the columns of a results folder's files

log = logging.getLogger("mkdocs.hooks.ablation")
# keys and columns hold the meanings of what they list as bullets, up to <!-- /docs -->; the others stand alone
PAIRED = re.compile(r"^<!-- docs: (?P<args>(?:keys|columns) [^>]*?) -->\n(?P<body>.*?)^<!-- /docs -->\n", re.M | re.S)
SINGLE = re.compile(r"^<!-- docs: (?P<args>[^>]*?) -->\n", re.M)
BULLET = re.compile(r"^- `(?P<key>[^`]+)`: (?P<text>.*?)(?=^- `|\Z)", re.M | re.S)


# --- the config keys --------------------------------------------------------------------------------------


def _values(key) -> str:
    """What a config key takes, in words."""
    if key.choices:
        text = " \\| ".join(f"`{c}`" for c in key.choices)
    else:
        text = {int: "integer", float: "number", bool: "true or false", str: "string", dict: "table",
                list: "list"}[key.kind]
        if key.lo is not None and key.hi is not None:
            text += f", {key.lo:g} to {key.hi:g}"
        elif key.lo is not None:
            text += f", at least {key.lo:g}"
    return text + (", or null" if key.nullable else "")


def _default(value) -> str:
    return f"`{json.dumps(value)}`"


def config_keys() -> list[str]:
    """The config keys (:data:`ablation.training.config.SCHEMA`) as a table."""
    from ablation.training.config import SCHEMA

    lines = ["| key | default | takes | meaning | in the run's hash |", "|---|---|---|---|---|"]
    for name, key in SCHEMA.items():
        hashed = "no (runtime)" if key.runtime else "off its default" if key.hash_if_set else "yes"
        lines.append(f"| `{name}` | {_default(key.default)} | {_values(key)} | {_cell(key.help)} | {hashed} |")
    return lines


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


# --- the keys of a file ------------------------------------------------------------------------------------


def file_keys() -> dict[str, dict]:
    """Each kind of table of an experiment, ladder or presets file: its own keys and their types, as read."""
    from ablation.study import experiments as ex
    from ablation.study.ladder import LADDER_KEYS

    return {"experiment": ex.EXPERIMENT_KEYS, "variant": ex.VARIANT_META, "preset": ex.PRESET_META,
            "claim": ex.CLAIM_KEYS, "ladder": LADDER_KEYS}


def _type(kinds) -> str:
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    names = {str: "string", int: "integer", float: "number", bool: "true or false", list: "list", dict: "table"}
    words = list(dict.fromkeys("number" if k in (int, float) and float in kinds else names[k] for k in kinds))
    return " or ".join(words)


def meanings(body: str) -> dict[str, str]:
    """The bullets ``- `key`: meaning`` of a marker's body, by key."""
    return {m["key"]: _cell(m["text"]) for m in BULLET.finditer(body or "")}


def keys_table(kind: str, body: str) -> tuple[list[str], list[str]]:
    """(table, problems) of the keys of ``kind`` with the meanings of ``body``."""
    known = file_keys()
    if kind not in known:
        return [], [f"keys {kind!r}: not one of {', '.join(known)}"]
    types, said = known[kind], meanings(body)
    problems = [f"keys {kind}: `{k}` is read by the code but has no meaning on the page"
                for k in types if k not in said]
    problems += [f"keys {kind}: `{k}` is on the page but the code does not read it" for k in said if k not in types]
    lines = ["| key | type | meaning |", "|---|---|---|"]
    lines += [f"| `{k}` | {_type(types[k])} | {said.get(k, '')} |" for k in types]
    return lines, problems


# --- the columns of a results folder's files ---------------------------------------------------------------


def file_columns() -> dict[str, list[str]]:
    """Each file of a results folder (and of a signal ladder's folder) with its columns as the code writes them."""
    import pandas as pd

    from ablation.reporting import analysis, init_identity, reference, signal_ladder, signal_runs
    from ablation.reporting.headlines import FolderTables
    from ablation.reporting.tables import HISTORY_FIELDS

    sample = FolderTables(REFERENCES / SAMPLE)
    ref = reference.read_reference(sample.path)
    beside = reference.table([(ref, reference.compare(sample.runs, sample.runs))])
    one_unit = {**{f: 0 for f in signal_ladder.LADDER_FIELDS}, "grad_norm": 1.0, "out_var": 1.0}
    summary = signal_ladder.ladder_summary(pd.DataFrame([one_unit], columns=list(signal_ladder.LADDER_FIELDS)))
    return {"runs.csv": list(sample.runs.columns), "rows.csv": list(sample.stats.columns),
            "history.csv": list(sample.history.columns), "history.jsonl": list(HISTORY_FIELDS),
            "lesion.csv": list(analysis.LESION_FIELDS), "signal.csv": list(signal_runs.SIGNAL_FIELDS),
            "init_identity.csv": list(init_identity.INIT_IDENTITY_FIELDS), "reference.csv": list(beside.columns),
            "signal_ladder.csv": list(signal_ladder.LADDER_FIELDS),
            "signal_ladder_summary.csv": list(summary.columns)}


def columns_table(name: str, body: str, columns: dict) -> tuple[list[str], list[str]]:
    """(table, problems) of the columns of the file ``name`` with the meanings of ``body``."""
    if name not in columns:
        return [], [f"columns {name!r}: not one of {', '.join(columns)}"]
    said = meanings(body)
    problems = [f"columns {name}: `{c}` is written by the code but has no meaning on the page"
                for c in columns[name] if c not in said]
    problems += [f"columns {name}: `{c}` is on the page but the code does not write it"
                 for c in said if c not in columns[name]]
    lines = ["| column | meaning |", "|---|---|"] + [f"| `{c}` | {said.get(c, '')} |" for c in columns[name]]
    return lines, problems


# --- the API -----------------------------------------------------------------------------------------------

API_GROUPS = {
    "Studies": ("Study", "load", "Results", "train"),
    "Networks": ("build_model", "list_archs", "count_params", "count_flops"),
    "Shortcuts": ("Shortcut", "register_shortcut", "describe_shortcuts", "list_shortcuts", "load_plugin"),
    "Errors": ("ConfigError",),
}
# an export that is a module made callable documents the function it calls
CALLABLE_MODULES = {"train": "ablation.api.one_run.train"}
API_SKIPPED = ("extra_repr",)  # torch.nn.Module's, not ours (mkdocs.yml filters it out too)


def _path(name: str, obj) -> str:
    if inspect.ismodule(obj):
        return CALLABLE_MODULES.get(name, obj.__name__)
    return f"{obj.__module__}.{obj.__qualname__}"


def _has_doc(obj) -> bool:
    return bool((getattr(obj, "__doc__", None) or "").strip())  # its own: a class does not inherit one here


def public_members(cls) -> dict:
    """The methods and properties a class of the API defines itself and shows on the API page."""
    return {k: v for k, v in vars(cls).items() if not k.startswith("_") and k not in API_SKIPPED
            and (inspect.isfunction(v) or isinstance(v, (property, classmethod, staticmethod)))}


def undocumented(package=None) -> list[str]:
    """The names of the API (``ablation.__all__`` and their public methods) that have no docstring."""
    import importlib

    package = package or __import__("ablation")
    missing = []
    for name in package.__all__:
        obj = getattr(package, name)
        target = obj
        if inspect.ismodule(obj) and name in CALLABLE_MODULES:
            module, _, attr = CALLABLE_MODULES[name].rpartition(".")
            target = getattr(importlib.import_module(module), attr)
        if not _has_doc(target):
            missing.append(f"ablation.{name}")
        if inspect.isclass(obj):
            for member, value in public_members(obj).items():
                if not _has_doc(value.fget if isinstance(value, property) else getattr(value, "__func__", value)):
                    missing.append(f"ablation.{name}.{member}")
    return missing


def api() -> list[str]:
    """The API reference: every export of ``ablation``, grouped, each with its docstring."""
    import ablation

    exported = list(ablation.__all__)
    groups = {g: [n for n in names if n in exported] for g, names in API_GROUPS.items()}
    rest = [n for n in exported if not any(n in names for names in groups.values())]
    if rest:
        groups["Other"] = rest
    lines = []
    for group, names in groups.items():
        lines += [f"## {group}", ""]
        for name in names:
            lines += [f"::: {_path(name, getattr(ablation, name))}", "    options:",
                      f"      heading: \"ablation.{name}\"", f"      toc_label: \"ablation.{name}\"", ""]
    return lines


# --- the code's layout -------------------------------------------------------------------------------------

PACKAGE = ROOT / "ablation"
LAYERS = ("core", "nets", "training", "study", "reporting", "api")  # from the bottom; tests/test_imports.py
ROLE_MD = re.compile(r":(?:func|mod|class|meth|attr|data|obj|exc):`~?([^`]+)`")


def summary_line(path: Path) -> str:
    """The first paragraph of a module's docstring, in one line, its Sphinx roles as code."""
    import ast

    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    first = " ".join(doc.strip().split("\n\n")[0].split())
    return _cell(ROLE_MD.sub(r"`\1`", first)) or "(no docstring)"


def modules() -> list[str]:
    """Every folder of the package, lowest layer first, with each module's first docstring paragraph; then the
    command lines, and the experiment files with their titles."""
    folders = sorted((p for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()),
                     key=lambda p: (LAYERS.index(p.name) if p.name in LAYERS else len(LAYERS), p.name))
    lines = []
    for folder in folders:
        lines += [f"### `ablation/{folder.name}/`", "", summary_line(folder / "__init__.py"), "",
                  "| module | what it holds |", "|---|---|"]
        lines += [f"| `{p.name}` | {summary_line(p)} |" for p in sorted(folder.glob("*.py")) if p.name != "__init__.py"]
        lines.append("")
    lines += ["### The top of the package", "", "The command lines, `python -m ablation.NAME` (`python -m ablation` "
              "for `__main__.py`), and what they share.", "", "| module | what it holds |", "|---|---|"]
    lines += [f"| `{p.name}` | {summary_line(p)} |" for p in sorted(PACKAGE.glob("*.py")) if p.name != "__init__.py"]
    shipped = sorted((PACKAGE / "experiments").glob("*.toml"))
    if shipped:
        lines += ["", "### `ablation/experiments/`", "", "The experiment files and presets, shipped with the package.",
                  "", "| file | what it holds |", "|---|---|"]
        for p in shipped:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
            title = data.get("title") or ", ".join(f"`{k}`" for k, v in data.items() if isinstance(v, dict))
            lines.append(f"| `{p.name}` | {_cell(title)} |")
    return lines


# --- a committed folder: its figures, its signal ladder, how it was made -----------------------------------


def shipped_files() -> list[Path]:
    """The figures and tables of results/reference that the site shows or links to."""
    return sorted({p for pattern in SHIPPED for p in REFERENCES.glob(f"*/{pattern}") if p.is_file()})


def site_path(path: Path) -> str:
    return posixpath.join(FIGURES, path.relative_to(REFERENCES).as_posix())


def _reference(name: str) -> tuple[Path | None, list[str]]:
    path = REFERENCES / name
    if not path.is_dir():
        return None, [f"{name!r} is not a folder of {REFERENCES.relative_to(ROOT)}"]
    return path, []


def figures(name: str, page_uri: str, markdown: str) -> tuple[list[str], list[str]]:
    """Every PNG of the folder ``name`` that the page does not already show, with its file name as caption."""
    path, problems = _reference(name)
    if path is None:
        return [], problems
    lines = []
    for png in sorted([*path.glob("*.png"), *path.glob("plots/*.png")]):
        target = posixpath.relpath(site_path(png), posixpath.dirname(page_uri) or ".")
        if f"]({target})" not in markdown:
            lines += [f"[![{png.stem}]({target})]({target})", f"*{png.name}*", ""]
    return lines or ["(every figure of this folder is shown above)"], problems


def _number(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def signal(name: str, init: str, column: str) -> tuple[list[str], list[str]]:
    """One column of a signal ladder's summary: a row per shortcut (variant), a column per network."""
    import pandas as pd

    path, problems = _reference(name)
    if path is None:
        return [], problems
    table = pd.read_csv(path / "signal_ladder_summary.csv")
    if column not in table.columns or init not in set(table["init"]):
        return [], [f"signal {name}: no column {column!r} or init {init!r} in signal_ladder_summary.csv"]
    part = table[table["init"] == init]
    archs = list(dict.fromkeys(part["arch"]))
    lines = [f"| row | {' | '.join(archs)} |", "|---|" + "---|" * len(archs)]
    for variant, rows in part.groupby("variant", sort=False):
        by_arch = {r["arch"]: r[column] for r in rows.to_dict("records")}
        lines.append(f"| {variant} | " + " | ".join(_number(by_arch.get(a)) for a in archs) + " |")
    return lines, problems


def made(name: str) -> tuple[list[str], list[str]]:
    """How the folder was made: its reference.toml, its notes.md, and the timing lines of a ladder's log."""
    path, problems = _reference(name)
    if path is None:
        return [], problems
    lines = []
    if (path / "reference.toml").is_file():
        made_with = tomllib.loads((path / "reference.toml").read_text(encoding="utf-8"))
        lines += [f"- **{k}**: {v}" for k, v in made_with.items()] + [""]
    if (path / "notes.md").is_file():
        lines += [(path / "notes.md").read_text(encoding="utf-8").strip(), ""]
    if (path / "ladder.log").is_file():
        timed = [line for line in (path / "ladder.log").read_text(encoding="utf-8").splitlines()
                 if line.strip() and not line.startswith("/")]
        lines += ["Measured, per network (from the folder's `ladder.log`):", "", "```", *timed, "```", ""]
    return lines or ["(the folder says nothing of how it was made)"], problems


def references(page_uri: str) -> list[str]:
    """Every folder of results/reference: its page (``findings/NAME.md``) where there is one, and how it was made."""
    lines = ["| study | what it is | made on |", "|---|---|---|"]
    for path in sorted(p for p in REFERENCES.iterdir() if p.is_dir()):
        page = f"findings/{path.name}.md"
        name = f"`{path.name}`"
        if (ROOT / "docs" / page).is_file():
            name = f"[{path.name}]({posixpath.relpath(page, posixpath.dirname(page_uri) or '.')})"
        made_with = {}
        if (path / "reference.toml").is_file():
            made_with = tomllib.loads((path / "reference.toml").read_text(encoding="utf-8"))
        what = made_with.get("made") or ("a signal ladder (`python -m ablation.signal_ladder`)"
                                         if (path / "signal_ladder_summary.csv").is_file() else "")
        lines.append(f"| {name} | {_cell(what)} | {_cell(made_with.get('machine', 'not recorded'))} |")
    return lines


# --- a page ------------------------------------------------------------------------------------------------


def render(markdown: str, page_uri: str, cache: dict | None = None) -> tuple[str, list[str]]:
    """The page's markdown with every marker replaced (findings blocks filled), and the problems found."""
    from ablation.core.errors import ConfigError
    from ablation.reporting import headlines

    cache = {} if cache is None else cache
    problems = []
    try:
        markdown = headlines.fill(markdown, cache.setdefault("findings", {}))
    except ConfigError as e:
        problems.append(str(e))

    def replace(m) -> str:
        words = m["args"].split()
        kind, args = (words[0], words[1:]) if words else ("", [])
        body = m.groupdict().get("body")
        if kind in ("keys", "columns") and body is None:
            problems.append(f"marker '{m['args']}': its bullets need a closing <!-- /docs -->")
            return m[0]
        try:
            if kind == "config-keys" and not args:
                lines, found = config_keys(), []
            elif kind == "keys" and len(args) == 1:
                lines, found = keys_table(args[0], body)
            elif kind == "columns" and len(args) == 1:
                if "columns" not in cache:
                    cache["columns"] = file_columns()
                lines, found = columns_table(args[0], body, cache["columns"])
            elif kind == "api" and not args:
                lines, found = api(), []
            elif kind == "references" and not args:
                lines, found = references(page_uri), []
            elif kind == "modules" and not args:
                lines, found = modules(), []
            elif kind == "figures" and len(args) == 1:
                lines, found = figures(args[0], page_uri, markdown)
            elif kind == "signal" and len(args) == 3:
                lines, found = signal(*args)
            elif kind == "made" and len(args) == 1:
                lines, found = made(args[0])
            else:
                lines, found = [], [f"marker '{m['args']}': unknown, or wrong arguments"]
        except ConfigError as e:
            lines, found = [], [f"marker '{m['args']}': {e}"]
        problems.extend(found)
        return "\n".join(lines) + "\n"

    markdown = PAIRED.sub(replace, markdown)
    return SINGLE.sub(replace, markdown), problems


# --- MkDocs' events ----------------------------------------------------------------------------------------

_CACHE: dict = {}
ROLE = re.compile(r":(?:func|mod|class|meth|attr|data|obj|exc):(<code>)~?")


def on_pre_build(config, **kwargs):
    _CACHE.clear()  # a rebuild (mkdocs serve) reads the results folders again
    for name in undocumented():
        log.warning(f"{name} has no docstring: the API reference would show it bare")


def on_files(files, config, **kwargs):
    from mkdocs.structure.files import File

    for path in shipped_files():
        files.append(File.generated(config, site_path(path), abs_src_path=str(path)))
    return files


def on_page_markdown(markdown, page, config, files, **kwargs):
    text, problems = render(markdown, page.file.src_uri, _CACHE)
    for problem in problems:
        log.warning(f"{page.file.src_uri}: {problem}")
    return text


def on_page_content(html, page, config, files, **kwargs):
    # the docstrings' Sphinx roles (:func:`x`) read as plain code, and a literal block's "::" as ":"
    return ROLE.sub(r"\1", html).replace("::</p>", ":</p>")
