"""Findings blocks: text on a page generated from a results folder's tables, and checked against them."""

import shutil
from pathlib import Path

import pytest

from ablation import findings as cli
from ablation.reporting import headlines

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def test_every_findings_block_of_the_shipped_pages_is_the_datas():
    """Every number, verdict and p inside a findings block of README.md and docs/ is what the committed
    tables give today."""
    cache = {}
    stale = {str(p.relative_to(ROOT)): bad for p in PAGES if p.is_file()
             if (bad := headlines.differing(p.read_text(), cache))}
    assert not stale, f"rewrite them with: python -m ablation.findings README.md docs/**/*.md ({stale})"


@pytest.fixture
def page(tmp_path):
    text = ("# t\n\nwords\n<!-- findings: claims quick-amd-epyc identity_mappings -->\n<!-- /findings -->\n"
            "between\n<!-- findings: rows quick-amd-epyc identity_mappings -->\nstale\n<!-- /findings -->\n")
    path = tmp_path / "page.md"
    path.write_text(text)
    return path


def test_a_page_is_filled_from_the_tables_and_then_checks(page, capsys):
    assert cli.main(["--check", str(page)]) == 1
    assert "not the data's" in capsys.readouterr().err
    assert cli.main([str(page)]) == 0
    text = page.read_text()
    assert text.startswith("# t\n\nwords\n") and "\nbetween\n" in text and "stale" not in text
    assert "HOLDS: the 1x1 conv shortcut is worse than identity" in text
    assert "Holm-adjusted p" in text and "a difference of means" in text and "(median)" in text
    assert cli.main(["--check", str(page)]) == 0


def test_one_number_changed_in_a_block_fails_the_check(page):
    cli.main([str(page)])
    text = page.read_text()
    block = text[text.index("HOLDS: the 1x1 conv"):]
    number = next(w for w in block.split() if w.startswith("+") and w[1:2].isdigit())
    digit = next(i for i, c in enumerate(number) if c.isdigit())
    changed = number[:digit] + str((int(number[digit]) + 1) % 10) + number[digit + 1:]
    page.write_text(text.replace(number, changed, 1))
    assert headlines.differing(page.read_text()) == ["claims quick-amd-epyc identity_mappings"]


def test_the_blocks_read_a_folder_without_writing_to_it(tmp_path):
    ref = tmp_path / "ref"
    shutil.copytree(ROOT / "results/reference/modern-quick-amd-epyc", ref)
    (ref / "init_identity.csv").unlink()  # with no run folder either, the identity_at_init claims have nothing
    shutil.rmtree(ref / "runs", ignore_errors=True)  # to read: NOT RUN (a clone has no run folders; a checkout may)
    before = {p: p.read_bytes() for p in ref.rglob("*") if p.is_file()}
    text = headlines.fill(f"<!-- findings: claims {ref} modern -->\n<!-- /findings -->\n")
    assert "- NOT RUN:" in text and "- HOLDS:" in text
    assert {p: p.read_bytes() for p in ref.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("marker, message", [
    ("nonsense quick-amd-epyc", "KIND one of"),
    ("claims no-such-folder identity_mappings", "neither a reference"),
    ("claims quick-amd-epyc no_such_experiment", "has no experiment 'no_such_experiment'"),
])
def test_a_bad_block_is_one_line(tmp_path, marker, message, capsys):
    page = tmp_path / "page.md"
    page.write_text(f"<!-- findings: {marker} -->\n<!-- /findings -->\n")
    assert cli.main([str(page)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_made_counts_each_machine_and_says_which_runs_recorded_none():
    """A folder gathered from runs of two machines, some trained before the machine was recorded, names each with
    its count rather than the one that was recorded."""
    import pandas as pd

    class Folder:
        runs = pd.DataFrame({"status": ["ok", "ok", "ok", "fail"], "time_s": [3600.0, 1800.0, 1800.0, 0.0],
                             "machine": ["Xeon", None, None, "Xeon"], "precision": ["float32"] * 4})

    line = headlines.made(Folder())[0]
    assert line.startswith("4 finished runs; machine: Xeon (2 runs), not recorded (2 runs); precision: float32;")
    assert "2.0 hours" in line
