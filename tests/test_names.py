"""One name, one thing: no two modules of the package define a class or a constant of the same name."""

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "ablation"


def defined_names(source: str) -> set[str]:
    """The classes and constants (upper-case names, private ones too) that a module's top level defines."""
    names = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name) and n.id.strip("_").isupper()}
    return names


def duplicates(sources: dict[str, str]) -> dict[str, list[str]]:
    """Each name that more than one module defines, with those modules."""
    where = defaultdict(list)
    for module, source in sources.items():
        for name in defined_names(source):
            where[name].append(module)
    return {name: sorted(modules) for name, modules in where.items() if len(modules) > 1}


def test_no_two_modules_define_a_class_or_constant_of_one_name():
    sources = {str(p.relative_to(PACKAGE.parent)): p.read_text() for p in sorted(PACKAGE.rglob("*.py"))}
    assert len(sources) > 50
    assert duplicates(sources) == {}


def test_the_check_finds_a_class_and_a_constant_defined_twice():
    found = duplicates({"a.py": "class Plan:\n    pass\nLIMIT = 1\n_CACHE: dict = {}\nlower = 2\n",
                        "b.py": "class Plan:\n    pass\nLIMIT, OTHER = 1, 2\n_CACHE = {}\nlower = 3\n"})
    assert found == {"Plan": ["a.py", "b.py"], "LIMIT": ["a.py", "b.py"], "_CACHE": ["a.py", "b.py"]}


def test_every_module_opens_with_a_line_of_its_own():
    """A command-line wrapper's first docstring line is not its library module's: each says what it holds."""
    first = defaultdict(list)
    for p in sorted(PACKAGE.rglob("*.py")):
        doc = ast.get_docstring(ast.parse(p.read_text()))
        assert doc, f"{p} has no docstring"
        first[doc.splitlines()[0]].append(str(p.relative_to(PACKAGE.parent)))
    assert {line: paths for line, paths in first.items() if len(paths) > 1} == {}


def test_no_module_is_much_over_400_lines():
    """A module holds one job: one that grows past about 400 lines is split along its jobs."""
    sizes = {str(p.relative_to(PACKAGE.parent)): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert {name: n for name, n in sizes.items() if n > 420} == {}
