"""A user's study beside the shipped reference: which rows agree, and the reference never changes."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from ablation.reporting import reference as ref
from ablation.reporting import report
from ablation.core.errors import ConfigError

from test_report import NUMBERS, results  # noqa: F401  (the fixture: a made-up study of 2 seeds)

ROOT = Path(__file__).resolve().parent.parent


def make_reference(study: Path, where: Path, preset="quick") -> Path:
    """A reference study made of ``study``'s CSVs, as shipped: no run folders, a reference.toml."""
    report.build(study, reference=where / "none")
    dest = where / "refs" / "made-here"
    shutil.copytree(study, dest, ignore=shutil.ignore_patterns("runs"))
    (dest / "reference.toml").write_text(f'preset = "{preset}"\nmachine = "test machine"\n'
                                         'precision = "float32"\ntorch = "0.0"\n')
    return dest.parent


def shift(study: Path, variant: str, by: float) -> None:
    """Add ``by`` to the final test error of every seed of ``variant``: same settings, other numbers."""
    manifest = json.loads((study / "manifest.json").read_text())
    for entry in manifest["runs"].values():
        if entry["variant"] == variant:
            f = study / "runs" / entry["hash"] / "summary.json"
            summary = json.loads(f.read_text())
            summary["final_test_error"] += by
            f.write_text(json.dumps(summary))


def test_prediction_interval_for_one_seed_and_welch_for_several():
    reference = [10.0, 11.0, 10.5, 10.2, 10.8]  # mean 10.5, s 0.39, t(4) 2.776: 10.5 +- 1.19
    assert ref.agree([11.5], reference)[0] == ref.CONSISTENT
    assert ref.agree([11.8], reference)[0] == ref.DIFFERS
    assert ref.agree([9.0], reference)[0] == ref.DIFFERS  # two-sided
    assert ref.agree([10.4, 10.6, 10.5], reference)[0] == ref.CONSISTENT
    verdict, p = ref.agree([12.4, 12.6, 12.5], reference)
    assert verdict == ref.DIFFERS and p < 0.05
    assert ref.agree([10.0], [10.5]) == (ref.NO_TEST, None)  # one reference seed has no spread to test against
    assert ref.agree([], reference) == (ref.NO_TEST, None)


def test_rows_beside_the_reference(results, tmp_path):  # noqa: F811
    refs = make_reference(results, tmp_path)
    shift(results, "conv1x1", 30.0)  # far outside the reference's seeds
    report.build(results, reference=refs)
    text = (results / "README.md").read_text()
    assert "## Beside the reference study `made-here`" in text and "test machine" in text
    lines = {l.split("|")[1].strip(): l for l in text.splitlines() if l.startswith("| identity_mappings:")}
    assert "| consistent" in lines["identity_mappings:original"]
    assert "| differs" in lines["identity_mappings:conv1x1"]
    table = (results / "reference.csv").read_text()
    assert "made-here,identity_mappings,conv1x1,2," in table


def test_other_settings_are_not_compared(results, tmp_path):  # noqa: F811
    refs = make_reference(results, tmp_path)
    runs = json.loads((refs / "made-here" / "manifest.json").read_text())
    for entry in runs["runs"].values():
        entry["hash"] = "0" * 12  # as if the reference had run with other settings
    (refs / "made-here" / "manifest.json").write_text(json.dumps(runs))
    csv = (refs / "made-here" / "runs.csv").read_text().splitlines()
    head = csv[0].split(",")
    i = head.index("hash")
    rows = [l.split(",") for l in csv[1:]]
    for r in rows:
        r[i] = "0" * 12
    (refs / "made-here" / "runs.csv").write_text("\n".join([csv[0], *(",".join(r) for r in rows)]) + "\n")
    report.build(results, reference=refs)
    text = (results / "README.md").read_text()
    assert "| identity_mappings:original |" in text and "other settings" in text
    assert "| consistent" not in text


def test_a_reference_of_another_preset_is_one_line_and_a_reference_is_never_beside_itself(results, tmp_path,  # noqa: F811
                                                                                          monkeypatch):
    refs = make_reference(results, tmp_path, preset="paper")
    with pytest.raises(ConfigError, match=r"holds no reference study of preset quick besides this folder, only "
                                          r"made-here \(preset paper\)"):
        report.build(results, reference=refs)
    refs = make_reference(results, tmp_path / "again")
    monkeypatch.setattr(ref, "REFERENCE_ROOT", refs)
    report.build(refs / "made-here", write_reference=True)  # the reference's own report: nothing to set beside it
    assert "Beside the reference" not in (refs / "made-here" / "README.md").read_text()


def test_a_bad_reference_file_is_one_line(tmp_path, capsys):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "reference.toml").write_text('preset = "quick"\nmachine = 3\n')
    with pytest.raises(ConfigError, match="machine must be a str"):
        ref.references_for("quick", tmp_path / "elsewhere", tmp_path)


def test_the_shipped_reference_is_tracked_and_a_new_study_is_not():
    shipped = ref.references_for("quick", ROOT / "results" / "quick")
    assert {"quick-amd-epyc", "modern-quick-amd-epyc"} <= {r.name for r in shipped}
    assert shipped[0].precision.startswith("float32")
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    ignored = subprocess.run(["git", "check-ignore", "-q", "results/quick/runs.csv"], cwd=ROOT)
    assert ignored.returncode == 0  # the runner's default --out for the quick preset
    kept = subprocess.run(["git", "check-ignore", "-q", "results/reference/quick-amd-epyc/rows.csv"], cwd=ROOT)
    assert kept.returncode == 1
