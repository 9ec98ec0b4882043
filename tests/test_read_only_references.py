"""A reference study is read-only: run, train, gather and report never write into it unless a documented flag says so.

A reference is a folder holding ``reference.toml``, or anything under ``results/reference/``. The refusal is one
line saying where the user's own results go; the maintainers' flag is ``--write-reference`` (report and gather).
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import ablation
from ablation import gather, report, run
from ablation import train as trainer
from ablation.core.errors import ConfigError
from ablation.core.layout import ResultsDir

from conftest import FakeTrainer, tiny_args, tiny_options
from test_bad_input import NeverTrain, snapshot

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "results" / "reference" / "quick-amd-epyc"
TOML = 'preset = "quick"\nmachine = "test machine"\nprecision = "float32"\ntorch = "0.0"\n'


def one_line(capsys, code, *words) -> str:
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    for w in words:
        assert w in err, err
    return err


@pytest.fixture
def reference(tiny, tmp_path, capsys):
    """A finished tiny study made into a reference study: its folder holds reference.toml."""
    out = tmp_path / "made"
    assert run.main([*tiny_args(tiny), "--out", str(out), "--jobs", "1", "--quiet"],
                    train_fn=FakeTrainer()) == 0
    (out / "reference.toml").write_text(TOML)
    capsys.readouterr()
    return out


def _git_status(path: Path) -> str | None:
    if not (ROOT / ".git").exists():
        return None
    return subprocess.run(["git", "status", "--porcelain", "--", str(path)], cwd=ROOT, capture_output=True,
                          text=True).stdout


def test_a_run_into_the_shipped_reference_is_refused_and_git_sees_no_change(tiny, capsys):
    before, status = snapshot(SHIPPED), _git_status(SHIPPED)
    code = run.main([*tiny_args(tiny), "--variants", "identity", "--set", "steps=4",
                     "--out", str(SHIPPED)], train_fn=NeverTrain())
    one_line(capsys, code, f"--out {SHIPPED} is in the reference study {SHIPPED} (it holds reference.toml), which is "
             "never written; your own runs go to results/tiny (the default --out)")
    assert snapshot(SHIPPED) == before and _git_status(SHIPPED) == status


def test_the_command_that_overwrote_a_reference_is_refused_before_it_trains(tmp_path):
    """The very command that rewrote 17 tracked files, on a copy of the reference at the same relative path."""
    shutil.copytree(SHIPPED, tmp_path / "results" / "reference" / "quick-amd-epyc")
    before = snapshot(tmp_path)
    done = subprocess.run([sys.executable, "-m", "ablation.run", "--variants", "original", "--dataset", "synthetic",
                           "--set", "steps=20", "--out", "results/reference/quick-amd-epyc"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "is in the reference study" in done.stderr and "your own runs go to results/quick" in done.stderr
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("where", ["holds-toml", "under-results-reference"])
def test_run_and_study_refuse_any_reference_folder(tiny, tmp_path, capsys, where):
    if where == "holds-toml":
        out = tmp_path / "ref"
        out.mkdir()
        (out / "reference.toml").write_text(TOML)
    else:
        out = tmp_path / "results" / "reference" / "new-one"  # not there yet: a new reference is one too
    before = snapshot(tmp_path)
    one_line(capsys, run.main([*tiny_args(tiny), "--out", str(out)], train_fn=NeverTrain()),
             "which is never written")
    with pytest.raises(ConfigError, match="which is never written; your own runs go to results/tiny"):
        ablation.Study(**tiny_options(tiny), out=out)
    assert snapshot(tmp_path) == before


def test_train_refuses_a_run_folder_inside_a_reference(reference, tmp_path, capsys):
    out = reference / "runs" / "newrun"
    before = snapshot(reference)
    words = ["dataset=synthetic", "arch=resnet8", "width=4", "steps=2", "milestones=[]", "evals=1",
             f"data_dir={tmp_path / 'data'}"]
    one_line(capsys, trainer.main([*words, f"out={out}"]), f"out= {out} is in the reference study {reference}",
             "train into a folder of your own")
    with pytest.raises(ConfigError, match="is in the reference study"):
        ablation.train({"dataset": "synthetic", "arch": "resnet8", "steps": 2, "milestones": []}, out)
    from ablation.training.loop import train

    with pytest.raises(ConfigError, match="is in the reference study"):  # the trainer itself, as a worker calls it
        train({"dataset": "synthetic", "arch": "resnet8", "width": 4, "steps": 2, "milestones": [], "evals": 1,
               "data_dir": str(tmp_path / "data")}, out)
    assert snapshot(reference) == before


def test_report_rebuilds_a_reference_only_with_its_flag(reference, capsys):
    before = snapshot(reference)
    one_line(capsys, report.main([str(reference)]), f"{reference} is in the reference study {reference}",
             "a reference's own is rebuilt with --write-reference")
    assert snapshot(reference) == before
    (reference / "README.md").unlink()
    assert report.main([str(reference), "--write-reference", "--quiet"]) == 0
    assert (reference / "README.md").is_file()


def test_gather_into_a_reference_only_with_its_flag(reference, tmp_path, capsys, tiny):
    dest = tmp_path / "results" / "reference" / "gathered"
    argv = [str(reference), "--out", str(dest), "--experiments", str(tiny), "--preset", "tiny",
            "--experiment", "tiny"]
    one_line(capsys, gather.main(argv), f"--out {dest} is in the reference study {dest} (it lies under "
             "results/reference/)", "a new reference study is gathered with --write-reference")
    assert not dest.exists()
    assert gather.main([*argv, "--write-reference"]) == 0
    assert len(ResultsDir(dest).read_manifest()["runs"]) == 2


def test_reading_a_reference_from_python_writes_no_cache_there(reference):
    """The report's caches (lesion.csv, ...) are computed for a reference opened by ablation.load, never written."""
    from ablation.core.layout import reference_writes
    from ablation.reporting.tables import keep_table

    results = ResultsDir(reference)
    assert results.protected()
    keep_table(results, results.lesion_csv, "hash\n")
    assert not results.lesion_csv.exists()
    with reference_writes(reference):
        assert not results.protected()
    assert results.protected()
    before = snapshot(reference)
    study = ablation.load(reference)
    assert len(study.runs) == 2 and study.figures()
    assert snapshot(reference) == before


def test_a_folder_of_ours_is_not_a_reference(tmp_path):
    from ablation.core.layout import reference_study

    assert reference_study(tmp_path / "results" / "quick") is None
    assert reference_study(tmp_path / "results" / "reference-mine") is None
    assert reference_study(tmp_path / "results" / "reference" / "x" / "runs" / "abc") == \
        tmp_path / "results" / "reference" / "x"
    (tmp_path / "link").symlink_to(SHIPPED)
    assert reference_study(tmp_path / "link") is not None  # a link to a reference is one
