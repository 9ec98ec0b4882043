"""What is on disk may be damaged or may not fit: one test per corrupt-file kind, and a full disk.

An unreadable summary means "not finished" (the run trains again); any other unreadable file is
one line naming it; a dataset cache that loads but does not match is rebuilt; a full disk is
one line naming the file, leaves no temporaries, and the same command resumes once there is room.
"""

import errno
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from ablation import report, run
from ablation.training import data
from ablation import train as trainer
from ablation.core.layout import ResultsDir

from conftest import FakeTrainer, tiny_args

ROOT = Path(__file__).resolve().parent.parent

@pytest.fixture
def study(experiments_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return experiments_dir(batch_size=32, steps=12, checkpoint_every=4)


def invoke(exps, out, fake=None, *extra):
    return run.main([*tiny_args(exps), "--out", str(out), "--jobs", "1", "--quiet", *extra],
                    train_fn=fake)


def one_line(capsys, code, got, *words):
    err = capsys.readouterr().err
    assert got == code, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, err
    return err


def run_dirs(out):
    return sorted((out / "runs").iterdir())


def no_temporaries(*roots):
    return not [p for root in roots for p in Path(root).rglob(".*.tmp*")]


# --- corrupt files ------------------------------------------------------------------------------


def test_an_unreadable_summary_means_not_finished(study, tmp_path, capsys):
    fake, out = FakeTrainer(), tmp_path / "out"
    assert invoke(study, out, fake) == 0
    broken = run_dirs(out)[0]
    (broken / "summary.json").write_text('{"status": "ok", "final_te')
    assert invoke(study, out, fake) == 0
    assert fake.run_names[2:] == [broken.name]  # trained again, the other run left alone
    assert json.loads((broken / "summary.json").read_text())["status"] == "ok"


def test_an_unreadable_config_of_a_finished_run_is_one_line_naming_it(study, tmp_path, capsys):
    fake, out = FakeTrainer(), tmp_path / "out"
    assert invoke(study, out, fake) == 0
    capsys.readouterr()
    config = run_dirs(out)[0] / "config.json"
    config.write_bytes(b"\x00\xffgarbage")
    one_line(capsys, 2, invoke(study, out, fake), str(config), "unreadable")
    one_line(capsys, 2, report.main([str(out)]), str(config), "delete the run folder")
    # and the trainer will not resume a run whose config it cannot read
    one_line(capsys, 2, trainer.main(["dataset=synthetic", f"out={config.parent}"]), str(config))


@pytest.mark.parametrize("text", ["{not json", "[]", '{"experiments": {"tiny": 1}, "runs": {}}',
                                  '{"experiments": {}, "runs": {"a": {"hash": "../../etc"}}}'])
def test_an_unreadable_manifest_is_one_line_naming_it(study, tmp_path, capsys, text):
    fake, out = FakeTrainer(), tmp_path / "out"
    assert invoke(study, out, fake) == 0
    capsys.readouterr()
    (out / "manifest.json").write_text(text)
    one_line(capsys, 2, invoke(study, out, fake, "--force"), str(out / "manifest.json"))
    one_line(capsys, 2, report.main([str(out)]), str(out / "manifest.json"))
    assert len(fake.calls) == 2  # --force trained nothing: the refusal came first


def test_a_torn_line_in_the_invocation_log_is_skipped_and_the_next_one_stays_whole(study, tmp_path):
    fake, out = FakeTrainer(), tmp_path / "out"
    assert invoke(study, out, fake) == 0
    with open(out / "invocations.jsonl", "a") as f:
        f.write('{"command": "python -m ablation.run", "wall_')  # a kill in mid-write
    assert invoke(study, out, fake) == 0
    lines = (out / "invocations.jsonl").read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[2])["trained"] == 0
    assert len(ResultsDir(out).read_invocations()) == 2
    assert "## How these numbers were made" in (out / "README.md").read_text()


def test_a_broken_runs_csv_is_rebuilt_and_named_where_it_is_needed(study, tmp_path, capsys):
    fake, out = FakeTrainer(), tmp_path / "out"
    assert invoke(study, out, fake) == 0
    (out / "runs.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00garbage")
    assert report.main([str(out)]) == 0  # the run folders are there: runs.csv is rebuilt from them
    assert (out / "runs.csv").read_text().startswith("experiment,")
    shutil.rmtree(out / "runs")  # results committed without their run folders: runs.csv is the record
    (out / "runs.csv").write_text('"unterminated\n')
    capsys.readouterr()
    one_line(capsys, 2, report.main([str(out)]), str(out / "runs.csv"))


def test_an_unreadable_error_record_is_no_error(study, tmp_path):
    fake, out = FakeTrainer(), tmp_path / "out"
    assert invoke(study, out, fake) == 0
    d = run_dirs(out)[0]
    (d / "summary.json").unlink()
    (d / "error.json").write_text("{torn")
    assert report.main([str(out)]) == 0
    import pandas as pd

    runs = pd.read_csv(out / "runs.csv").set_index("hash")
    assert runs.loc[d.name, "status"] == "incomplete"


def test_a_cache_that_loads_but_is_cut_short_is_rebuilt(tmp_path, capsys):
    clean = data.load("synthetic", tmp_path)
    path = tmp_path / "cache" / "synthetic.pt"
    cached = torch.load(path, weights_only=True)
    torch.save({**cached, "train_y": cached["train_y"][:10]}, path)  # loads, but 10 labels for 1024 images
    again = data.load("synthetic", tmp_path)
    assert len(again.train_y) == len(clean.train_y) == 1024 and torch.equal(again.train_x, clean.train_x)
    assert "rebuilding the dataset cache" in capsys.readouterr().err
    flipped = cached["test_y"].clone()
    flipped[0] = (flipped[0] + 1) % 4  # every shape right, one label wrong: only the checksum sees it
    torch.save({**cached, "test_y": flipped}, path)
    assert torch.equal(data.load("synthetic", tmp_path).test_y, clean.test_y)
    assert "checksum does not match" in capsys.readouterr().err
    assert torch.load(path, weights_only=True)["checksum"] == cached["checksum"]


def test_a_finished_run_without_its_config_answers_no_config(tmp_path, capsys):
    """A finished run that no longer says which config it holds must not hand its numbers to any config."""
    cfg = ["dataset=synthetic", f"data_dir={tmp_path / 'data'}", "arch=resnet8", "width=4", "steps=2",
           "milestones=[]", "evals=1", "threads=1", f"out={tmp_path / 'run'}"]
    assert trainer.main(cfg) == 0
    capsys.readouterr()
    (tmp_path / "run" / "config.json").unlink()
    one_line(capsys, 2, trainer.main(cfg), "without config.json")


# --- a full disk --------------------------------------------------------------------------------


def _numbers(out):
    timing = ("time_s", "images_per_s", "wall_time")
    got = {}
    for d in run_dirs(out):
        s = json.loads((d / "summary.json").read_text())
        h = [json.loads(x) for x in (d / "history.jsonl").read_text().splitlines()]
        got[d.name] = ({k: v for k, v in s.items() if k not in timing},
                       [{k: v for k, v in r.items() if k not in timing} for r in h])
    return got


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_a_full_disk_stops_the_study_in_one_line_and_the_same_command_resumes(study, tmp_path, capsys,
                                                                              monkeypatch, one_thread):
    """ENOSPC at the second checkpoint (simulated): one line naming the checkpoint, exit 2, no temporaries,
    no run marked as an error; with room again, the same command finishes with the usual numbers."""
    whole = tmp_path / "whole"
    assert invoke(study, whole, None, "--set", "threads=1") == 0
    out = tmp_path / "out"
    real, writes = Path.write_bytes, []

    def write_bytes(path, payload):
        if path.name.startswith(".checkpoint.pt.tmp"):
            writes.append(path)
            if len(writes) == 2:  # the disk fills while the second checkpoint is written
                real(path, bytes(payload)[: len(payload) // 2])
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, payload)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    capsys.readouterr()
    err = one_line(capsys, 2, invoke(study, out, None, "--set", "threads=1"), "no space left writing",
                   "checkpoint.pt")
    assert re.search(r"no space left writing \S+/runs/[0-9a-f]{12}/checkpoint\.pt", err)
    assert no_temporaries(out, tmp_path / "data") and not list(out.glob("runs/*/error.json"))
    assert not (out / "runs.csv").exists()
    # the trainer alone says the same in one line
    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    writes.clear()
    one_line(capsys, 2, trainer.main(["dataset=synthetic", f"data_dir={tmp_path / 'data'}", "arch=resnet8",
                                      "width=4", "steps=12", "milestones=[]", "checkpoint_every=4", "threads=1",
                                      f"out={tmp_path / 'single'}"]), "no space left writing", "checkpoint.pt")
    assert no_temporaries(tmp_path / "single")
    monkeypatch.setattr(Path, "write_bytes", real)  # room again
    assert invoke(study, out, None, "--set", "threads=1") == 0
    assert _numbers(out) == _numbers(whole)


def test_a_full_disk_while_the_report_writes_is_one_line_and_leaves_no_temporaries(study, tmp_path, capsys,
                                                                                   monkeypatch):
    fake, out = FakeTrainer(), tmp_path / "out"
    assert invoke(study, out, fake) == 0
    real = Path.write_bytes

    def write_bytes(path, data, *a, **k):  # text is written as its UTF-8 bytes
        if path.name.startswith(".history.csv.tmp"):
            real(path, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data, *a, **k)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    capsys.readouterr()
    one_line(capsys, 2, report.main([str(out)]), f"no space left writing {out / 'history.csv'}")
    assert no_temporaries(out)


def test_temporaries_of_dead_writers_are_swept_and_live_ones_kept(tmp_path):
    from ablation.core.files import sweep_temporaries

    gone = subprocess.Popen(["true"])
    gone.wait()  # a writer that has exited (killed, or stopped by a full disk)
    (tmp_path / f".synthetic.pt.tmp{gone.pid}").write_bytes(b"half")
    (tmp_path / f".synthetic.pt.tmp{os.getpid()}").write_bytes(b"mine, being written")
    sweep_temporaries(tmp_path, only_dead=True)
    assert [p.name for p in tmp_path.iterdir()] == [f".synthetic.pt.tmp{os.getpid()}"]


@pytest.fixture
def small_disk(tmp_path):
    """A 128 KiB tmpfs where the machine allows mounting one (root), else skip: the simulated tests cover it."""
    path = tmp_path / "disk"
    path.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", str(path)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], capture_output=True)


def test_a_real_full_disk(study, small_disk, tmp_path, capsys, one_thread):
    out = small_disk / "out"
    one_line(capsys, 2, invoke(study, out, None, "--set", "threads=1"), "no space left writing")
    assert no_temporaries(small_disk)
    subprocess.run(["mount", "-o", "remount,size=8m", str(small_disk)], check=True)
    assert invoke(study, out, None, "--set", "threads=1") == 0
    filler = small_disk / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True)  # fills the disk
    capsys.readouterr()
    one_line(capsys, 2, report.main([str(out)]), "no space left writing")
    assert no_temporaries(small_disk)


# --- what is loaded ----------------------------------------------------------------------------


def test_torch_load_stays_weights_only_and_nothing_unpickles():
    """Checkpoints and caches may come from elsewhere: weights_only=True loads tensors and plain values only."""
    for path in (ROOT / "ablation").rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"^\s*import pickle|^\s*from pickle|pickle\.loads?\(|import dill|marshal\.loads?\(", text,
                             re.M), path
        for call in re.finditer(r"torch\.load\(", text):
            args = text[call.end(): text.index(")", call.end())]
            assert "weights_only=True" in args, f"{path.name}: torch.load({args})"
