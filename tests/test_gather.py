"""Gathering finished runs from several results folders into one (no training)."""

import json

import pandas as pd
import pytest

from ablation import gather
from ablation.core.layout import ResultsDir
from ablation.reporting.tables import load_tables
from ablation.study.expansion import expand


def _fake(folder, run, finished=True):
    d = folder / "runs" / run.hash
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps(run.config))
    (d / "checkpoint.pt").write_bytes(b"weights")
    (d / "claim.json").write_text("{}")  # the source's own claim: not copied
    if finished:
        (d / "summary.json").write_text(json.dumps({"status": "ok", "final_test_error": 10.0 + run.seed}))


def test_finished_runs_are_copied_and_listed_nothing_else(tmp_path, capsys, exps, presets):
    lad = exps["depth_ladder"]
    runs = {(r.variant, r.seed): r for r in expand(exps, [lad.variant("original@20"), lad.variant("original@110")],
                                                        presets["quick"], seeds=2)}
    a, b, out = tmp_path / "d20", tmp_path / "d110", tmp_path / "all"
    _fake(a, runs[("original@20", 0)])
    _fake(a, runs[("original@20", 1)])
    _fake(b, runs[("original@110", 0)])
    _fake(b, runs[("original@110", 1)], finished=False)  # still training there
    argv = [str(a), str(b), "--out", str(out), "--experiment", "depth_ladder", "--variants",
            "original@20,original@110", "--seeds", "2"]
    assert gather.main(argv) == 0
    assert "4 runs: 3 copied, 0 from a source's runs.csv, 0 already in" in capsys.readouterr().out
    manifest = ResultsDir(out).read_manifest()
    assert sorted((v["variant"], v["seed"]) for v in manifest["runs"].values()) == [
        ("original@110", 0), ("original@20", 0), ("original@20", 1)]
    assert manifest["experiments"]["depth_ladder"]["axis"]["rows_of"] == ["identity_mappings"]
    for key in (("original@20", 0), ("original@20", 1), ("original@110", 0)):
        h = runs[key].hash
        assert sorted(p.name for p in (out / "runs" / h).iterdir()) == ["checkpoint.pt", "config.json", "summary.json"]
        assert (a / "runs" / h).exists() or (b / "runs" / h).exists()  # copied, not moved
    assert not (out / "runs" / runs[("original@110", 1)].hash).exists()
    # once the last run finishes there, the same command adds it and keeps the others
    (b / "runs" / runs[("original@110", 1)].hash / "summary.json").write_text(
        json.dumps({"status": "ok", "final_test_error": 11.0}))
    assert gather.main(argv) == 0
    assert "4 runs: 1 copied, 0 from a source's runs.csv, 3 already in" in capsys.readouterr().out
    assert len(ResultsDir(out).read_manifest()["runs"]) == 4


def test_a_source_without_runs_is_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    argv = [str(tmp_path / "empty"), "--out", str(tmp_path / "o"), "--experiment", "depth_ladder"]
    assert gather.main(argv) == 2
    err = capsys.readouterr().err
    assert "holds neither runs/ nor runs.csv" in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_a_run_kept_only_in_a_reports_tables_is_carried_by_its_lines(tmp_path, capsys, exps, presets):
    """Results committed without their run folders (results/reference/*): the report reads runs.csv by hash."""
    [run] = expand(exps, [exps["depth_ladder"].variant("original@32")], presets["quick"], seeds=1)
    [same] = expand(exps, [exps["identity_mappings"].variant("original")], presets["quick"], seeds=1)
    assert same.hash == run.hash  # the quick study's own row is the ladder's depth 32
    src = tmp_path / "study"
    src.mkdir()
    pd.DataFrame([{"experiment": "identity_mappings", "variant": "original", "seed": 0, "hash": run.hash,
                   "status": "ok", "final_test_error": 15.5, "arch": "resnet32"},
                  {"experiment": "identity_mappings", "variant": "conv1x1", "seed": 0, "hash": "other",
                   "status": "ok", "final_test_error": 19.0, "arch": "resnet32"}]).to_csv(src / "runs.csv", index=False)
    pd.DataFrame([{"hash": run.hash, "iteration": 500, "test_error": 15.5},
                  {"hash": "other", "iteration": 500, "test_error": 19.0}]).to_csv(src / "history.csv", index=False)
    out = tmp_path / "all"
    argv = [str(src), "--out", str(out), "--experiment", "depth_ladder", "--variants", "original@32", "--seeds", "1"]
    assert gather.main(argv) == 0
    assert "1 runs: 0 copied, 1 from a source's runs.csv" in capsys.readouterr().out
    assert list(pd.read_csv(out / "runs.csv")["hash"]) == [run.hash]  # that run's lines only
    assert list(pd.read_csv(out / "history.csv")["iteration"]) == [500]
    _, runs, history = load_tables(out)
    assert runs.iloc[0]["variant"] == "original@32" and runs.iloc[0]["final_test_error"] == 15.5
    assert len(history) == 1
    assert gather.main(argv) == 0  # again: its lines replaced, not doubled
    assert len(pd.read_csv(out / "runs.csv")) == 1


def test_a_copied_runs_lesion_study_comes_with_it(tmp_path, capsys, exps, presets):
    """The report's lesion study of a run is measured on its checkpoint, which is copied with its time: the
    source's lesion lines stay valid and are not measured again."""
    [run] = expand(exps, [exps["depth_ladder"].variant("original@20")], presets["quick"], seeds=1)
    src, out = tmp_path / "d20", tmp_path / "all"
    _fake(src, run)
    lines = [{"hash": run.hash, "stamp": "s", "kind": "intact", "k": 0, "test_error": 15.0},
             {"hash": "other", "stamp": "t", "kind": "intact", "k": 0, "test_error": 19.0}]
    pd.DataFrame(lines).to_csv(src / "lesion.csv", index=False)
    argv = [str(src), "--out", str(out), "--experiment", "depth_ladder", "--variants", "original@20", "--seeds", "1"]
    assert gather.main(argv) == 0
    assert "1 runs: 1 copied" in capsys.readouterr().out
    carried = pd.read_csv(out / "lesion.csv")
    assert list(carried["hash"]) == [run.hash] and list(carried["test_error"]) == [15.0]
    assert (out / "runs" / run.hash / "checkpoint.pt").stat().st_mtime_ns == \
        (src / "runs" / run.hash / "checkpoint.pt").stat().st_mtime_ns


# --- every merge says which number it kept ---------------------------------------------------------


def _two_copies(tmp_path, exps, presets):
    """One run (hash) finished in two sources with different numbers: trained twice, on two machines."""
    [run] = expand(exps, [exps["depth_ladder"].variant("original@20")], presets["quick"], seeds=1)
    a, b = tmp_path / "a", tmp_path / "b"
    _fake(a, run)
    _fake(b, run)
    (b / "runs" / run.hash / "summary.json").write_text(json.dumps({"status": "ok", "final_test_error": 69.53}))
    (a / "runs" / run.hash / "summary.json").write_text(json.dumps({"status": "ok", "final_test_error": 75.0}))
    return run, a, b


def test_conflicting_copies_of_one_run_are_refused_whatever_the_order(tmp_path, capsys, exps, presets):
    run, a, b = _two_copies(tmp_path, exps, presets)
    out = tmp_path / "all"
    for sources in ([a, b], [b, a]):
        argv = [*map(str, sources), "--out", str(out), "--experiment", "depth_ladder", "--variants", "original@20",
                "--seeds", "1"]
        assert gather.main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"run {run.hash} (depth_ladder:original@20 seed 0) differs between" in err
        assert "final test error 75.0" in err and "final test error 69.53" in err and "--prefer" in err, err
        assert not out.exists()


def test_prefer_names_the_copy_that_wins_and_the_manifest_records_it(tmp_path, capsys, exps, presets):
    run, a, b = _two_copies(tmp_path, exps, presets)
    out = tmp_path / "all"
    argv = [str(a), str(b), "--out", str(out), "--experiment", "depth_ladder", "--variants", "original@20",
            "--seeds", "1", "--prefer", str(b)]
    assert gather.main(argv) == 0
    assert "1 whose copies differed kept from --prefer" in capsys.readouterr().out
    assert json.loads((out / "runs" / run.hash / "summary.json").read_text())["final_test_error"] == 69.53
    merges = ResultsDir(out).read_manifest()["merges"]
    assert merges[run.hash] == {"run": "depth_ladder:original@20:0", "kept": str(b), "over": [str(a)],
                                "by": "--prefer"}
    # a later gather that meets the other copy again keeps what is there only when told so
    argv = [str(a), "--out", str(out), "--experiment", "depth_ladder", "--variants", "original@20", "--seeds", "1"]
    assert gather.main(argv) == 2
    assert f"differs between {out} (ok, final test error 69.53) and {a}" in capsys.readouterr().err
    assert gather.main([*argv, "--prefer", str(out)]) == 0
    assert json.loads((out / "runs" / run.hash / "summary.json").read_text())["final_test_error"] == 69.53


def test_prefer_must_name_a_folder_of_the_gather(tmp_path, capsys, exps, presets):
    _, a, b = _two_copies(tmp_path, exps, presets)
    argv = [str(a), "--out", str(tmp_path / "all"), "--experiment", "depth_ladder", "--prefer", str(b)]
    assert gather.main(argv) == 2
    assert f"--prefer {b} is none of the sources nor --out" in capsys.readouterr().err


def test_a_destination_of_other_settings_is_refused(tmp_path, capsys, exps, presets):
    [run] = expand(exps, [exps["depth_ladder"].variant("original@20")], presets["quick"], seeds=1)
    src, out = tmp_path / "src", tmp_path / "all"
    _fake(src, run)
    (out / "runs" / "abc").mkdir(parents=True)
    theirs = {"experiments": {"depth_ladder": {"name": "depth_ladder", "title": "t", "rows": []}},
              "runs": {"depth_ladder:original@20:0": {"experiment": "depth_ladder", "variant": "original@20",
                                                       "seed": 0, "hash": "abc"}},
              "preset": "quick", "overrides": {"steps": 20}}
    (out / "manifest.json").write_text(json.dumps(theirs))
    argv = [str(src), "--out", str(out), "--experiment", "depth_ladder", "--variants", "original@20", "--seeds", "1"]
    assert gather.main(argv) == 2
    assert 'holds runs made with steps=20 (preset quick); this command sets no settings over the preset' in \
        capsys.readouterr().err
    assert json.loads((out / "manifest.json").read_text()) == theirs and not (out / "runs" / run.hash).exists()


def test_the_setting_check_and_the_manifest_are_one_step_under_the_lock(tmp_path, capsys, exps, presets):
    """Another invocation makes the folder one of other settings after gather first looked: refused under the lock."""
    from ablation.reporting.tables import carry_tables, stored_tables
    from ablation.study.gather import gather as gather_runs

    [run] = expand(exps, [exps["depth_ladder"].variant("original@20")], presets["quick"], seeds=1)
    src, out = tmp_path / "src", tmp_path / "all"
    _fake(src, run)
    theirs = {"experiments": {}, "runs": {"x:y:0": {"experiment": "x", "variant": "y", "seed": 0, "hash": "abc"}},
              "preset": "quick", "overrides": {"steps": 20}}
    theirs["experiments"]["x"] = {"name": "x", "title": "t", "rows": []}

    def read_then_race(home):  # the other invocation writes its manifest while this one reads its sources
        if not (out / "manifest.json").exists():
            out.mkdir(exist_ok=True)
            (out / "manifest.json").write_text(json.dumps(theirs))
        return stored_tables(home)

    from ablation.core.errors import ConfigError

    with pytest.raises(ConfigError, match="holds runs made with steps=20"):
        gather_runs([src], out, "depth_ladder", "original@20", seeds=1, tables=(read_then_race, carry_tables))
    assert json.loads((out / "manifest.json").read_text()) == theirs and not (out / "runs").exists()
