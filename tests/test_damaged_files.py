"""A damaged file is one line naming it, and nothing else is deleted or rewritten because of it.

Damaged: cut short, of another shape than its writer writes, with values out of range, or an empty JSON object.
A run whose record is damaged is not done: the runner trains it again, and the report refuses and says why.
The committed reference study is the material: its run folders are absent, so its runs.csv is the record.
"""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from ablation import report, run
from ablation.core.layout import ResultsDir, RunDir

from conftest import FakeTrainer, tiny_args
from test_bad_input import snapshot

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "results" / "reference" / "quick-amd-epyc"


@pytest.fixture
def copy(tmp_path):
    """The shipped quick reference as a study of the user's own (no reference.toml), without run folders."""
    out = tmp_path / "study"
    shutil.copytree(SHIPPED, out)
    (out / "reference.toml").unlink()
    return out


def refused(capsys, out: Path, argv, *words):
    before = snapshot(out)
    code = report.main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    for w in words:
        assert w in err, err
    assert snapshot(out) == before, "a damaged file made the report write or delete something"
    return err


def test_a_truncated_runs_csv_deletes_no_record(copy, capsys):
    """runs.csv cut at 20,000 bytes: no run becomes 'not run', history.csv and lesion.csv keep every line."""
    data = (copy / "runs.csv").read_bytes()
    (copy / "runs.csv").write_bytes(data[:20000])
    refused(capsys, copy, [copy], f"{copy / 'runs.csv'} is damaged (cut short: its last line is not whole)",
            "nothing was written")


def test_a_runs_csv_cut_at_a_line_end_deletes_no_record(copy, capsys):
    lines = (copy / "runs.csv").read_text().splitlines(keepends=True)
    (copy / "runs.csv").write_text("".join(lines[:40]))
    refused(capsys, copy, [copy], f"{copy / 'runs.csv'} lacks run ", f"whose points {copy / 'history.csv'} holds")


@pytest.mark.parametrize("name, edit, words", [
    ("runs.csv", lambda t: t.replace(",ok,,15.32,", ",ok,,1532.0,", 1), "final_test_error 1532.0 is not between 0 and 100"),
    ("runs.csv", lambda t: t.replace(",ok,,15.32,", ",okay,,15.32,", 1), "status 'okay' is not one of"),
    ("runs.csv", lambda t: t.replace("experiment,variant,seed", "experiment,variant", 1),
     "fields where its header has"),
    ("history.csv", lambda t: t[: t.index("\n", 5000)] + "\nabc,1\n", "record"),
    ("history.csv", lambda t: t.replace(",92.1875,", ",-92.1875,", 1), "train_error -92.1875 is not between 0 and 100"),
    ("lesion.csv", lambda t: t[:3000], "cut short"),
    ("lesion.csv", lambda t: t.replace(",intact,0,0,-1,-1,False,,15.2", ",intact,0,0,-1,-1,False,,152", 1),
     "test_error 152.0 is not between 0 and 100"),
    ("runs.csv", lambda t: "", "empty"),
])
def test_a_damaged_table_is_one_line_naming_it(copy, capsys, name, edit, words):
    path = copy / name
    path.write_text(edit(path.read_text()))
    refused(capsys, copy, [copy], f"{path} is damaged", words)


def test_the_intact_copy_reports_every_run(copy):
    """The control of the tests above: the same copy, undamaged, reports every run as the reference does."""
    assert report.main([str(copy), "--quiet"]) == 0
    assert not (pd.read_csv(copy / "runs.csv")["status"] == "not run").any()


# --- run folders ----------------------------------------------------------------------------------


@pytest.fixture
def done(tiny, tmp_path):
    fake, out = FakeTrainer(), tmp_path / "out"
    argv = [*tiny_args(tiny), "--out", str(out), "--jobs", "1", "--quiet"]
    assert run.main(argv, train_fn=fake) == 0
    return out, argv, fake


@pytest.mark.parametrize("text, why", [
    ("{}", "status None is not one of"),
    ('{"status": "ok"}', "no final_test_error"),
    ('{"status": "ok", "final_test_error": 1e9}', "final_test_error 1000000000.0 is not between 0 and 100"),
    ('{"status": "ok", "final_test_error": "abc"}', "final_test_error 'abc' is not a number"),
    ('{"status": "ok", "final_test_error": 12.0, "iterations": -5}', "iterations -5 is not >= 0"),
    ("[1, 2]", "not a JSON object"),
])
def test_a_run_whose_summary_is_damaged_is_not_done(done, capsys, text, why):
    out, argv, fake = done
    victim = sorted((out / "runs").iterdir())[0]
    (victim / "summary.json").write_text(text)
    assert not RunDir(victim).is_finished()
    refused(capsys, out, [out], f"{victim / 'summary.json'} is damaged ({why}", "so the run is not finished")
    assert run.main(argv, train_fn=fake) == 0  # the runner trains it again, and only it
    assert fake.run_names[2:] == [victim.name]
    assert RunDir(victim).is_finished()


def test_a_history_point_out_of_range_is_one_line_naming_it(done, capsys):
    out, _, _ = done
    history = sorted((out / "runs").iterdir())[0] / "history.jsonl"
    points = [json.loads(x) for x in history.read_text().splitlines()]
    points[1]["test_error"] = 1e9
    history.write_text("".join(json.dumps(p) + "\n" for p in points))
    refused(capsys, out, [out], f"{history} is damaged (point 2: test_error 1000000000.0 is not between 0 and 100)")


def test_a_manifest_with_a_negative_seed_is_one_line(done, capsys):
    out, _, _ = done
    manifest = json.loads((out / "manifest.json").read_text())
    next(iter(manifest["runs"].values()))["seed"] = -1
    (out / "manifest.json").write_text(json.dumps(manifest))
    refused(capsys, out, [out], f"{out / 'manifest.json'} is unreadable or not a results manifest")


def test_an_invocation_line_of_other_types_is_skipped_not_a_traceback(done):
    out, _, _ = done
    with open(out / "invocations.jsonl", "a") as f:
        f.write(json.dumps({"command": "x", "finished": "now", "wall_s": "forever-and-a-day", "machine": "m", "jobs": 1,
                            "trained": 1, "skipped": 0, "errors": 0, "interrupted": False}) + "\n")
    assert report.main([str(out), "--quiet"]) == 0
    assert len(ResultsDir(out).read_invocations()) == 1
    assert "forever-and-a-day" not in (out / "README.md").read_text()


def test_a_checkpoint_whose_counters_lie_outside_the_schedule_starts_the_run_over(tmp_path, capsys):
    """A checkpoint that loads but says iteration 10^9 of a 4-iteration run would end the run at once, as finished."""
    import torch

    from ablation.training.loop import train

    cfg = {"dataset": "synthetic", "data_dir": str(tmp_path / "data"), "arch": "resnet8", "width": 4, "batch_size": 32,
           "steps": 4, "milestones": [], "evals": 2, "checkpoint_every": 2, "quiet": True, "threads": 1}
    out = tmp_path / "run"
    first = train(cfg, out)
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)
    checkpoint["state"]["it"] = 10**9
    torch.save(checkpoint, out / "checkpoint.pt")
    (out / "summary.json").unlink()
    capsys.readouterr()
    again = train(cfg, out)
    assert "unreadable checkpoint" in capsys.readouterr().err
    assert again["iterations"] == 4 and again["final_test_error"] == first["final_test_error"]
