"""Numbers that say they are something they are not: each case is a silent wrong result that the harness
once produced, and now refuses in one line or records as what it is.

The seed of a study (--seeds), runs of other settings mixed into one folder, values the trainer clamped,
the chance stop on a tiny evaluation, where each number came from (machine, precision, torch), and
run files that do not belong to their folder. The refusals in one line are in test_bad_input.py.
"""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from ablation import run
from ablation.core.errors import ConfigError
from ablation.core.files import CorruptFile
from ablation.core.layout import ResultsDir
from ablation.reporting import report
from ablation.reporting.tables import load_tables
from ablation.study import expansion
from ablation.training.loop import train

from conftest import FakeTrainer, tiny_args


def study(tiny, out, *extra, seeds=2, train_fn=None):
    argv = [*tiny_args(tiny), "--out", str(out), "--jobs", "1", "--seeds", str(seeds), "--quiet", *extra]
    return run.main(argv, train_fn=train_fn or FakeTrainer())


# --- 2. runs of different settings in one folder -----------------------------------------------


def test_the_runner_refuses_to_add_runs_of_other_settings_to_a_folder(tiny, tmp_path, capsys):
    out = tmp_path / "m"
    assert study(tiny, out, "--variants", "identity", "--set", "steps=6") == 0
    capsys.readouterr()
    with pytest.raises(ConfigError, match=r"--out .*m holds runs made with steps=6.*this command sets steps=8, lr=0.2"):
        run.run_cli(run.build_parser().parse_args([*tiny_args(tiny), "--out", str(out), "--variants",
                                                   "plain", "--set", "steps=8", "--set", "lr=0.2"]),
                    train_fn=FakeTrainer())
    # the same settings (and runtime keys, which change no number) may add rows
    assert study(tiny, out, "--variants", "plain", "--set", "steps=6", "--set", "checkpoint_every=5") == 0


def mixed_folder(tiny, tmp_path):
    """A folder whose identity row ran 6 steps and whose plain row 8 (as two folders gathered into one would)."""
    out = tmp_path / "mixed"
    assert study(tiny, tmp_path / "a", "--variants", "identity", "--set", "steps=6") == 0
    assert study(tiny, tmp_path / "b", "--variants", "plain", "--set", "steps=8") == 0
    shutil.copytree(tmp_path / "a", out)
    manifest = json.loads((out / "manifest.json").read_text())
    other = json.loads((tmp_path / "b" / "manifest.json").read_text())
    manifest["runs"].update(other["runs"])
    for entry in other["runs"].values():
        shutil.copytree(tmp_path / "b" / "runs" / entry["hash"], out / "runs" / entry["hash"])
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


def test_a_claim_over_rows_of_other_settings_cannot_be_tested(tiny, tmp_path):
    out = mixed_folder(tiny, tmp_path)
    report.build(out)
    text = (out / "README.md").read_text()
    claim = next(line for line in text.splitlines() if "identity beats plain" in line)
    assert claim.startswith("- CANNOT BE TESTED"), claim
    assert "steps" in claim and "differ" in claim, claim


def test_the_scale_table_shows_each_rows_settings_when_rows_differ(tiny, tmp_path):
    out = mixed_folder(tiny, tmp_path)
    report.build(out)
    text = (out / "README.md").read_text()
    scale = text.split("## Scale of the runs")[1].split("\n## ")[0]
    assert "| tiny: identity |" in scale and "| tiny: plain |" in scale, scale
    assert "6 iterations" in scale and "8 iterations" in scale, scale


# --- 4. the chance stop on a tiny evaluation --------------------------------------------------


def test_the_chance_stop_does_not_fire_on_an_evaluation_of_one_image(tmp_path):
    cfg = {"dataset": "synthetic", "data_dir": str(tmp_path / "data"), "arch": "resnet8", "width": 4, "steps": 40,
           "milestones": [], "evals": 2, "eval_subset": 1, "quiet": True, "threads": 1, "batch_size": 32}
    s = train(cfg, tmp_path / "run")
    assert s["status"] == "ok", s["reason"]
    assert s["iterations"] == 40


def test_the_chance_stop_still_fires_on_a_large_enough_evaluation(tmp_path):
    """lr so small that nothing is learnt: at chance on all 256 test images, the stop holds."""
    cfg = {"dataset": "synthetic", "data_dir": str(tmp_path / "data"), "arch": "resnet8", "width": 4, "steps": 40,
           "milestones": [], "evals": 4, "quiet": True, "threads": 1, "batch_size": 32, "lr": 1e-12,
           "shortcut": "plain", "fc_bias_init": "zero"}
    s = train(cfg, tmp_path / "run")
    assert s["status"] == "fail" and "chance" in s["reason"], s


# --- 5. where each number came from -------------------------------------------------------------


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("real")
    cfg = {"dataset": "synthetic", "data_dir": str(tmp_path_factory.mktemp("data")), "arch": "resnet8", "width": 4,
           "steps": 4, "milestones": [], "evals": 1, "quiet": True, "threads": 1, "batch_size": 32}
    return train(cfg, out / "run"), out / "run"


def test_the_summary_records_machine_precision_torch_and_its_config_hash(real_run):
    import torch

    summary, path = real_run
    assert summary["torch"] == torch.__version__
    assert summary["precision"] in ("bf16", "float32")
    assert isinstance(summary["machine"], str) and summary["machine"]
    config = json.loads((path / "config.json").read_text())
    assert summary["config_hash"] == expansion.config_hash(config)


class MachineTrainer(FakeTrainer):
    """The fake trainer's runs, as if seed 1 of every row had run on another machine in bf16."""

    def __call__(self, cfg, run_dir):
        summary = super().__call__(cfg, run_dir)
        other = cfg["seed"] == 1
        summary.update(machine="Other CPU" if other else "This CPU", precision="bf16" if other else "float32",
                       torch="2.14.1", config_hash=expansion.config_hash(cfg))
        (Path(run_dir) / "summary.json").write_text(json.dumps(summary))
        return summary


def test_runs_and_rows_carry_provenance_and_a_row_mixing_machines_is_marked(tiny, tmp_path):
    out = tmp_path / "res"
    assert study(tiny, out, "--seeds", "2", train_fn=MachineTrainer()) == 0
    runs, rows = pd.read_csv(out / "runs.csv"), pd.read_csv(out / "rows.csv")
    assert {"machine", "precision", "torch"} <= set(runs.columns)
    assert set(runs["precision"]) == {"bf16", "float32"}
    identity = rows[rows["variant"] == "identity"].iloc[0]
    assert identity["machines"] == "Other CPU; This CPU" and identity["precisions"] == "bf16; float32"
    assert bool(identity["mixed"])
    table = (out / "tables" / "tiny.md").read_text()
    assert "mixed machines" in table, table
    text = (out / "README.md").read_text()
    where = text.split("## Where the runs ran")[1].split("\n## ")[0]
    assert "Other CPU, bf16, torch 2.14.1: seed 1 of tiny:identity, tiny:plain" in where, where
    assert "This CPU, float32, torch 2.14.1: seed 0 of tiny:identity, tiny:plain" in where, where


# --- 6. run files that are not their folder's ---------------------------------------------------


def test_a_summary_copied_from_another_run_is_an_error_naming_the_folder(tiny, tmp_path):
    out = tmp_path / "res"
    assert study(tiny, out, train_fn=MachineTrainer()) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    a, b = (manifest["runs"][f"tiny:{v}:0"]["hash"] for v in ("identity", "plain"))
    shutil.copy(out / "runs" / a / "summary.json", out / "runs" / b / "summary.json")
    with pytest.raises(ConfigError, match=rf"runs/{b}: its summary.json is that of run {a}"):
        load_tables(out)


def test_a_config_edited_after_the_run_is_an_error_naming_the_folder(tiny, tmp_path):
    out = tmp_path / "res"
    assert study(tiny, out, train_fn=MachineTrainer()) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    h = manifest["runs"]["tiny:plain:0"]["hash"]
    config = json.loads((out / "runs" / h / "config.json").read_text())
    (out / "runs" / h / "config.json").write_text(json.dumps({**config, "lr": 0.5}))
    with pytest.raises(ConfigError, match=rf"runs/{h}: its config.json hashes to \w+, not to its folder's name"):
        load_tables(out)


def test_a_summary_without_a_hash_still_reads(tiny, tmp_path):
    """Runs made before summaries carried their hash are read as they are (their config still checked)."""
    out = tmp_path / "res"
    assert study(tiny, out) == 0  # the fake trainer's summaries have no config_hash
    manifest, runs, _ = load_tables(out)
    assert set(runs["status"]) == {"ok"}
    assert ResultsDir(out).read_manifest() == manifest


# --- 7. names that become paths, in a results folder's manifest ---------------------------------------


def test_a_manifest_naming_an_unsafe_experiment_is_refused_and_nothing_is_written_outside(tiny, tmp_path):
    out = tmp_path / "deep" / "er" / "res"
    assert study(tiny, out) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["experiments"]["../../../escaped"] = {**manifest["experiments"]["tiny"], "name": "../../../escaped"}
    for entry in manifest["runs"].values():
        entry["experiment"] = "../../../escaped"
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CorruptFile, match="manifest.json is unreadable or not a results manifest"):
        report.build(out)
    assert not list(tmp_path.rglob("escaped*"))
