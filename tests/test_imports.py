"""The layers of the package: no import runs back up (core < nets < training < study, reporting < entry points),
study and reporting do not import each other, and the import graph has no circle.

Every import counts, also one inside a function: a lazy import still ties the two modules together.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "ablation"
LAYERS = {"core": 0, "nets": 1, "training": 2, "study": 3, "reporting": 3}
ENTRY = 4  # the modules at the top: run, train, report, bench, __main__, __init__


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> tuple[int, str]:
    """(rank, folder) of a module of the package; the entry points are above every folder."""
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in LAYERS:
        return LAYERS[parts[1]], parts[1]
    return ENTRY, ""


def imports_of(module: str, source: str, is_package: bool = False) -> set[str]:
    """The modules of the package that ``source`` (the text of ``module``) imports, resolved to full names."""
    package = module if is_package else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "ablation"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if target.split(".")[0] != "ablation":
                continue
            for alias in node.names:  # `from . import data` names a module, `from .data import load` a name
                sub = f"{target}.{alias.name}"
                found.add(sub if _exists(sub) else target)
    return found


def _exists(module: str) -> bool:
    path = PACKAGE.parent.joinpath(*module.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(module_name(p), p.read_text(), p.name == "__init__.py")
            for p in sorted(PACKAGE.rglob("*.py"))}


def violations(edges: dict[str, set[str]]) -> list[str]:
    """Every import that runs up a layer or across between study and reporting."""
    bad = []
    for module, targets in edges.items():
        rank, folder = layer(module)
        for target in targets:
            t_rank, t_folder = layer(target)
            if t_rank > rank or (t_rank == rank and folder != t_folder and rank != ENTRY):
                bad.append(f"{module} imports {target}")
    return sorted(bad)


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Circles of the import graph (a package's own ``__init__`` imported by its modules is no circle)."""
    found, state = [], {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if nxt == node or node.startswith(nxt + "."):  # a module importing its own package
                continue
            if state.get(nxt) == "open":
                found.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    return found


def test_the_graph_is_read():
    edges = graph()
    assert "ablation.training.loop" in edges and "ablation.core.layout" in edges["ablation.training.loop"]
    assert "ablation.nets.models" in edges["ablation.training.config"]
    assert "ablation.training.data" in edges["ablation.training.benchmark"]  # `from . import data as datasets`
    assert "ablation.training.benchmark" in edges["ablation.bench"]


def test_no_import_runs_back_up_a_layer():
    assert violations(graph()) == []


def test_the_import_graph_has_no_circle():
    assert cycles(graph()) == []


def test_an_upward_import_is_caught():
    edges = graph()
    text = "def f():\n    from ..study.grid import run_grid\n    return run_grid\n"
    edges["ablation.training.sneaky"] = imports_of("ablation.training.sneaky", text)
    assert violations(edges) == ["ablation.training.sneaky imports ablation.study.grid"]
    across = imports_of("ablation.reporting.sneaky", "from ..study import experiments as ex\n")
    assert violations({**graph(), "ablation.reporting.sneaky": across}) == \
        ["ablation.reporting.sneaky imports ablation.study.experiments"]
    absolute = imports_of("ablation.core.sneaky", "import ablation.nets.models\n")
    assert violations({"ablation.core.sneaky": absolute}) == ["ablation.core.sneaky imports ablation.nets.models"]


def test_a_circle_is_caught():
    edges = graph()
    edges["ablation.core.errors"] = {*edges["ablation.core.errors"], "ablation.core.files"}
    assert ["ablation.core.errors", "ablation.core.files", "ablation.core.errors"] in cycles(edges)


def test_the_networks_registry_and_table_sit_below_the_designs_and_the_builder():
    """The shortcut registry is a mechanism apart from the designs it names, the architecture table apart from the
    builder; the built-in designs register in one place, the networks' package."""
    edges = graph()
    nets = lambda module: {t for t in edges[module] if t.startswith("ablation.nets")}  # noqa: E731
    assert nets("ablation.nets.registry") == {"ablation.nets.shortcut_base"}
    assert nets("ablation.nets.archs") == set()
    assert nets("ablation.nets") == {"ablation.nets.shortcuts", "ablation.nets.modern"}
    assert "ablation.nets.archs" in edges["ablation.nets.models"] and "ablation.nets.resnet" in edges["ablation.nets.models"]
    registering = {m for m, targets in edges.items() if "ablation.nets.modern" in targets and m.startswith("ablation.nets")}
    assert registering == {"ablation.nets"}


def test_each_split_module_sits_below_the_one_it_was_split_from():
    """What a split set apart is used by what it left, never the other way round."""
    edges = graph()
    below = {  # module -> the modules split from it, which it may import and which never import it
        "ablation.core.folder_checks": ["ablation.core.layout"],
        "ablation.reporting.claim_tests": ["ablation.reporting.stats"],
        "ablation.reporting.report": ["ablation.reporting.paper_tables"],
        "ablation.reporting.plots": ["ablation.reporting.figure_style"],
        "ablation.reporting.mechanism_plots": ["ablation.reporting.figure_style"],
        "ablation.reporting.ladder_plots": ["ablation.reporting.figure_style"],
        "ablation.nets.shortcuts": ["ablation.nets.registry", "ablation.nets.shortcut_base"],
    }
    for upper, lowers in below.items():
        for lower in lowers:
            assert lower in edges[upper], f"{upper} does not import {lower}"
            assert upper not in edges[lower], f"{lower} imports {upper}"
