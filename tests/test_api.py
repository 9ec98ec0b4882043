"""The Python API (ablation.Study, ablation.load, ablation.train) is the command line's code path, as objects."""

from __future__ import annotations

import importlib
import json

import pandas as pd
import pytest

import ablation
from ablation import run
from conftest import FakeTrainer, tiny_args, tiny_options

# what differs between two trainings of the same config: the clock
CLOCK = {"time_s", "images_per_s", "wall_time"}


def _same(a: pd.DataFrame, b: pd.DataFrame, drop=()):
    cols = [c for c in a.columns if c not in CLOCK and c not in drop]
    pd.testing.assert_frame_equal(a[cols].reset_index(drop=True), b[cols].reset_index(drop=True))


def test_the_cli_and_study_run_are_one_code_path(experiments_dir, tmp_path):
    exps = experiments_dir()
    cli, api = FakeTrainer(), FakeTrainer()
    argv = [*tiny_args(exps), "--out", str(tmp_path / "cli"), "--jobs", "1", "--seeds", "3", "--quiet"]
    assert run.main(argv, train_fn=cli) == 0
    ablation.Study(**tiny_options(exps), out=tmp_path / "api", seeds=3).run(jobs=1, progress=False, train_fn=api)
    assert cli.calls == api.calls and cli.run_names == api.run_names  # the same configs into the same folders
    a, b = ablation.load(tmp_path / "cli"), ablation.load(tmp_path / "api")
    _same(a.runs, b.runs)
    _same(a.rows, b.rows)
    assert a.rows.set_index("variant").loc["identity", "test_mean"] == 17.0  # FakeTrainer: 16, 17, 18
    _same(a.findings, b.findings)
    assert list(a.findings["verdict"]) == ["holds"]
    for name in ("manifest.json", "rows.csv", "tables/tiny.md"):
        assert (tmp_path / "cli" / name).read_text() == (tmp_path / "api" / name).read_text().replace(
            str(tmp_path / "api"), str(tmp_path / "cli"))


@pytest.mark.slow
def test_a_tiny_study_through_the_cli_and_through_study_run_gives_the_same_numbers(experiments_dir, tmp_path, capsys):
    # slow: eight real trainings and two reports (lesion and signal studies included), about a minute
    exps = experiments_dir()
    cli, api = tmp_path / "cli", tmp_path / "api"
    assert run.main([*tiny_args(exps), "--out", str(cli), "--jobs", "1", "--seeds", "2", "--quiet"]) == 0
    capsys.readouterr()
    study = ablation.Study(**tiny_options(exps), out=api, seeds=2)
    assert study.run(jobs=1, progress=False) is study
    assert capsys.readouterr() == ("", "")  # progress=False: nothing printed
    a, b = ablation.load(cli), ablation.load(api)
    assert len(a.runs) == 4 and set(a.runs["status"]) <= {"ok", "fail"}
    _same(a.runs, b.runs)
    _same(a.history, b.history)
    _same(a.rows, b.rows)
    _same(a.findings, b.findings)
    _same(study.rows, b.rows)  # the study reads back as load() reads its folder
    assert list(a.findings["says"]) == ["identity beats plain"]
    assert (cli / "runs.csv").read_text() != "" and (api / "README.md").is_file()
    # the report's own files agree too, number for number
    _same(pd.read_csv(cli / "rows.csv"), pd.read_csv(api / "rows.csv"))
    inv = [json.loads(x) for x in (api / "invocations.jsonl").read_text().splitlines()]
    assert inv[-1]["command"].startswith("ablation.Study(") and inv[-1]["trained"] == 4
    fig = study.figure("tiny_errors")
    assert fig.axes and "tiny_errors" in study.figures()
    with pytest.raises(ablation.ConfigError, match="unknown figure 'tiny_eror'"):
        study.figure("tiny_eror")
    html = study._repr_html_()
    verdict = b.findings["verdict"].iloc[0].upper()
    assert f"{verdict}</b>" in html and "identity beats plain" in html and "5.00" in html  # the paper's number


@pytest.mark.parametrize("options, argv", [
    ({"variants": "orignal"}, ["--variants", "orignal"]),
    ({"preset": "quik"}, ["--preset", "quik"]),
    ({"seeds": 0}, ["--seeds", "0"]),
    ({"depth": 21}, ["--depth", "21"]),
    ({"set": {"stepz": 3}}, ["--set", "stepz=3"]),
    ({"set": {"lr": "fast"}}, ["--set", "lr=fast"]),
    ({"dataset": "mnist"}, ["--dataset", "mnist"]),
])
def test_bad_options_raise_the_command_lines_words_and_print_nothing(options, argv, experiments_dir, tmp_path,
                                                                      capsys):
    exps = experiments_dir()
    assert run.main([*tiny_args(exps), "--out", str(tmp_path / "o"), *argv]) == 2
    line = capsys.readouterr().err
    with pytest.raises(ablation.ConfigError) as e:
        ablation.Study(**{**tiny_options(exps), **options}, out=tmp_path / "o").run(progress=False)
    assert line == f"error: {e.value}\n"
    assert capsys.readouterr() == ("", "") and not (tmp_path / "o").exists()


def test_bad_run_options_raise_too(experiments_dir, tmp_path):
    study = ablation.Study(**tiny_options(experiments_dir()), out=tmp_path / "o")
    with pytest.raises(ablation.ConfigError, match="--jobs must be >= 1, got 0"):
        study.run(jobs=0)
    with pytest.raises(ablation.ConfigError, match="--address applies to --backend ray only"):
        study.dry_run(address="auto")


def test_dry_run_is_the_grid_as_a_table_and_trains_nothing(experiments_dir, tmp_path):
    study = ablation.Study(**tiny_options(experiments_dir()), out=tmp_path / "o", seeds=2)
    grid = study.dry_run(jobs=1)
    assert list(grid["variant"]) == ["identity", "identity", "plain", "plain"]
    assert set(grid["status"]) == {"to train"} and (grid["gflop"] > 0).all()
    assert grid.attrs["cost"]["run_hours"] > 0 and not (tmp_path / "o" / "runs").exists()
    assert "nothing trained yet" in study._repr_html_()


def test_ctrl_c_stops_the_study_keeps_the_checkpoint_and_the_same_call_resumes(experiments_dir, tmp_path):
    fake = FakeTrainer(interrupt_on="plain")
    study = ablation.Study(**tiny_options(experiments_dir()), out=tmp_path / "o")
    with pytest.raises(KeyboardInterrupt, match="1 of 2 runs finished this time"):
        study.run(jobs=1, progress=False, train_fn=fake)
    assert study.dry_run(jobs=1).set_index("variant")["status"].to_dict() == {"identity": "done", "plain": "resume"}
    study.run(jobs=1, progress=False, train_fn=fake)
    assert len(fake.resumed) == 1 and set(study.runs["status"]) == {"ok"}
    assert list(study.rows["ours"]) == [16.0, 36.0]  # FakeTrainer's errors, read back


def test_train_returns_the_summary_and_the_history_and_resumes(tmp_path, capsys):
    cfg = {"dataset": "synthetic", "data_dir": str(tmp_path / "data"), "arch": "resnet8", "width": 4, "steps": 6,
           "milestones": [], "evals": 2, "threads": 1}
    summary, history = ablation.train(cfg, tmp_path / "run")
    assert summary["status"] == "ok" and summary["iterations"] == 6
    stored = [json.loads(x) for x in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    assert list(history["iteration"]) == [h["iteration"] for h in stored] and stored[-1]["iteration"] == 6
    assert history["test_error"].iloc[-1] == summary["final_test_error"]
    assert importlib.import_module("ablation.train") is ablation.train  # the command line's module, callable
    again = ablation.train(cfg, tmp_path / "run")  # finished: read back, not trained again
    assert again.summary == summary
    assert capsys.readouterr() == ("", "")
    with pytest.raises(ablation.ConfigError, match="unknown config key"):
        ablation.train({"stepz": 1}, tmp_path / "other")


def test_load_opens_the_shipped_reference_by_name():
    ref = ablation.load("quick-amd-epyc")
    rows = ref.rows.set_index(["experiment", "variant"])
    assert rows.loc[("identity_mappings", "original"), "seeds"] == 5
    assert rows.loc[("identity_mappings", "original"), "paper"] == 6.61
    found = ref.findings
    assert {"holds", "not significant"} <= set(found["verdict"])
    with pytest.raises(ablation.ConfigError, match="shipped reference: .*quick-amd-epyc"):
        ablation.load("no-such-study")
