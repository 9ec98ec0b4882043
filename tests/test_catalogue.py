"""The user's experiment files: found in ./experiments or the folders of --experiments, beside the shipped ones."""

from __future__ import annotations

import pytest

from ablation import run
from ablation.api import pipeline
from ablation.core.errors import ConfigError
from ablation.study import catalogue
from ablation.study.listing import arch_map_line

from conftest import tiny_toml, write_experiments


def _list(capsys, *argv) -> dict[str, str]:
    """``--list``'s experiment and preset lines, by name."""
    assert run.main([*argv, "--list"]) == 0
    lines = [line.strip() for line in capsys.readouterr().out.splitlines() if line.startswith("  ") and ": " in line
             and not line.startswith("    ")]
    return {line.split(":")[0]: line for line in lines}


def test_a_file_in_experiments_of_the_folder_one_runs_in_is_found_beside_the_shipped_ones(tmp_path, monkeypatch,
                                                                                          capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "tiny.toml").write_text(tiny_toml())
    listed = _list(capsys)
    assert listed["tiny"].endswith("[experiments/tiny.toml]")
    assert listed["degradation"].endswith("[shipped]") and listed["quick"].endswith("[shipped]")
    # the user's experiment runs under the shipped presets
    plan = pipeline.plan(experiment="tiny", preset="quick")
    assert {r.variant for r in plan.runs} == {"identity", "plain"}
    assert {r.config["steps"] for r in plan.runs} == {500}  # the quick preset's, over the file's [base]
    assert plan.preset.name == "quick"


def test_experiments_may_name_several_folders_which_take_the_place_of_experiments(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_experiments(tmp_path / "experiments", tmp_path / "data")  # not read where --experiments is given
    mine, lab = tmp_path / "mine", tmp_path / "lab"
    mine.mkdir()
    lab.mkdir()
    (mine / "mine.toml").write_text(tiny_toml().replace('name = "tiny"', 'name = "mine"'))
    (lab / "lab.toml").write_text(tiny_toml().replace('name = "tiny"', 'name = "lab"'))
    (lab / "presets.toml").write_text('[lab-preset]\ndescription = "the lab\'s"\nsteps = 3\n')
    listed = _list(capsys, "--experiments", str(mine), "--experiments", str(lab))
    assert listed["mine"].endswith(f"[{mine / 'mine.toml'}]") and listed["lab"].endswith(f"[{lab / 'lab.toml'}]")
    assert listed["lab-preset"].endswith(f"[{lab / 'presets.toml'}]")
    assert "tiny" not in listed and "identity_mappings" in listed
    plan = pipeline.plan(experiment="mine", preset="lab-preset", experiments=[mine, lab])
    assert {r.config["steps"] for r in plan.runs} == {3}


@pytest.mark.parametrize("kind", ["experiment", "preset"])
def test_a_users_file_with_the_name_of_a_shipped_one_is_refused_naming_both(kind, tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    if kind == "experiment":
        (folder / "mine.toml").write_text(tiny_toml().replace('name = "tiny"', 'name = "degradation"'))
        yours, shipped = folder / "mine.toml", catalogue.SHIPPED / "degradation.toml"
    else:
        (folder / "presets.toml").write_text('[quick]\ndescription = "mine"\n')
        yours, shipped = folder / "presets.toml", catalogue.SHIPPED / "presets.toml"
    assert run.main(["--experiments", str(folder), "--list"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert str(yours) in err and str(shipped) in err and err.index(str(yours)) < err.index(str(shipped))


def test_two_of_the_users_files_holding_one_name_are_refused_too(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for folder in (a, b):
        folder.mkdir()
        (folder / "tiny.toml").write_text(tiny_toml())
    with pytest.raises(ConfigError) as e:
        catalogue.load_experiments([a, b])
    assert str(a / "tiny.toml") in str(e.value) and str(b / "tiny.toml") in str(e.value)


def test_experiments_must_name_folders(tmp_path, capsys):
    assert run.main(["--experiments", str(tmp_path / "nowhere"), "--list"]) == 2
    assert "is not a folder" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="--experiments must name a folder"):
        pipeline.plan(experiments=[3])


def test_the_dry_run_says_which_architectures_the_preset_maps(tmp_path, capsys):
    plan = pipeline.plan(variants="all", out=tmp_path / "o")
    assert arch_map_line(plan.runs, "quick") == ("quick runs resnet20 as resnet8 (2 runs), resnet56 as resnet26 "
                                                 "(2 runs), resnet110 as resnet32 (11 runs): the preset's arch_map, "
                                                 "for its scale")
    assert arch_map_line(pipeline.plan(variants="all", preset="paper", out=tmp_path / "p").runs, "paper") is None
    folder = write_experiments(tmp_path / "mine", tmp_path / "data", '[tiny.arch_map]\nresnet8 = "resnet14"\n')
    assert run.main(["--experiments", str(folder), "--preset", "tiny", "--experiment", "tiny", "--dry-run",
                     "--out", str(tmp_path / "t")]) == 0
    out = capsys.readouterr().out
    assert "\ntiny runs resnet8 as resnet14 (2 runs): the preset's arch_map, for its scale\n" in out
