"""The README's "From Python" snippet and examples/quickstart.ipynb run as a user would run them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "quickstart.ipynb"


def from_python_snippet() -> str:
    """The code block of the README's "From Python" section (fenced ``py``, so that test_readme's exec of every
    ``python`` block does not train a study in the repository's own folder)."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("\n## From Python\n"):]
    section = section[: section.index("\n## ", 1)]
    blocks = re.findall(r"```py\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the section holds one snippet"
    return blocks[0]


@pytest.mark.slow
def test_the_readme_from_python_snippet_runs(tmp_path, monkeypatch, capsys):
    # slow: four runs on two worker processes, a report and one run: about a minute on a shared 2-core machine
    monkeypatch.chdir(tmp_path)
    exec(compile(from_python_snippet(), "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "verdict" in out and "constant scaling" in out and (tmp_path / "errors.png").stat().st_size > 0
    assert (tmp_path / "results/from-python/README.md").is_file()
    assert json.loads((tmp_path / "results/one-run/summary.json").read_text())["iterations"] == 20


def test_the_notebook_is_committed_without_outputs():
    nb = json.loads(NOTEBOOK.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert len(code) >= 8
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in code)


@pytest.mark.slow
def test_the_notebook_runs_top_to_bottom(tmp_path):
    # slow: the notebook's own small study on Fashion-MNIST (see the README for its run time)
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = json.dumps([o.get("data", {}).get("text/html", "") + o.get("text", "") for o in outputs])
    assert "1,727,962 parameters" in text  # ResNet-110 with identity shortcuts: He 2016's 1.7M
    assert "shortcut 'learned-scale'" in text and "identity_mappings_errors" in text
    assert any("image/png" in o.get("data", {}) for o in outputs), "the figures are drawn"
    assert (tmp_path / "results/quickstart/README.md").is_file()
