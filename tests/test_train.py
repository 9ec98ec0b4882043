import json
import subprocess
import sys

import pytest
import torch

from ablation.training import config as C
from ablation import train as train_cli
from ablation.training import loop as T
from ablation.core.errors import ConfigError

SUMMARY_KEYS = {"status", "reason", "final_test_error", "best_test_error", "final_train_error", "params", "flops",
                "iterations", "epochs", "time_s", "images_per_s", "device", "threads", "machine", "precision", "torch",
                "config_hash", "outcome_rule", "test_loss_unstable_at"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("data"))


def tiny(data_dir, **over):
    """A few seconds of training: resnet8 at width 4 on the synthetic set."""
    cfg = {"dataset": "synthetic", "data_dir": data_dir, "arch": "resnet8", "width": 4, "batch_size": 64,
           "steps": 36, "milestones": [], "evals": 6, "eval_batch_size": 256, "checkpoint_every": 1000,
           "quiet": True, "threads": 1, "grad_norm_points": [0.0, 0.5, 1.0],
           "fail_chance_fraction": 0.5}
    return {**cfg, **over}


def history(run_dir):
    return [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]


def without_timing(records):
    return [{k: v for k, v in r.items() if k not in ("wall_time", "images_per_s")} for r in records]


@pytest.fixture(scope="module")
def baseline(tmp_path_factory, data_dir):
    run = tmp_path_factory.mktemp("baseline")
    return run, T.train(tiny(data_dir, checkpoint_every=5), run)


def test_loss_falls_and_files_follow_the_contract(baseline, data_dir):
    run, summary = baseline
    hist = history(run)
    assert summary["status"] == "ok" and summary["reason"] is None
    assert set(summary) == SUMMARY_KEYS
    assert hist[-1]["train_loss"] < 0.5 * hist[0]["train_loss"]
    assert summary["final_test_error"] < 40  # percent; chance is 75
    assert summary["best_test_error"] == min(h["test_error"] for h in hist)
    assert summary["iterations"] == 36 and summary["params"] > 0 and summary["flops"] > 0
    assert summary["threads"] == 1  # tiny() asks for one
    assert [h["iteration"] for h in hist] == [1, 6, 12, 18, 24, 30, 36]
    for key in ("iteration", "epoch", "lr", "train_loss", "train_error", "test_loss", "test_error", "wall_time",
                "images_per_s"):
        assert all(key in h for h in hist)
    assert [len(h.get("grad_norms", [])) for h in hist] == [3, 0, 0, 3, 0, 0, 3]  # resnet8: three units
    assert json.loads((run / "config.json").read_text()) == C.validate_config(tiny(data_dir, checkpoint_every=5))


def test_finished_run_is_returned_without_training(baseline, monkeypatch):
    run, summary = baseline
    monkeypatch.setattr(T, "build", lambda *a: pytest.fail("trained again"))
    assert T.train(tiny("unused"), run) == summary


class Killed(Exception):
    pass


def kill_at(n):
    """A callback that stops the run like a kill -9 right after iteration ``n``."""
    def callback(it):
        if it == n:
            raise Killed
    return callback


def test_interrupted_run_resumes_to_the_same_result(baseline, data_dir, tmp_path):
    ref_run, ref = baseline
    with pytest.raises(Killed):  # after the checkpoint at 5 and the record at 8: that record is redone
        T.train(tiny(data_dir, checkpoint_every=5), tmp_path, callback=kill_at(9))
    assert not (tmp_path / "summary.json").exists()
    with pytest.raises(Killed):  # killed exactly at a checkpoint
        T.train(tiny(data_dir, checkpoint_every=5), tmp_path, callback=kill_at(15))
    summary = T.train(tiny(data_dir, checkpoint_every=5), tmp_path)
    timing = ("time_s", "images_per_s")
    assert {k: v for k, v in summary.items() if k not in timing} == {k: v for k, v in ref.items() if k not in timing}
    assert without_timing(history(tmp_path)) == without_timing(history(ref_run))
    a = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    b = torch.load(ref_run / "checkpoint.pt", weights_only=True)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in b["model"])
    assert torch.equal(a["rng"]["aug"], b["rng"]["aug"])


def test_a_run_dir_is_not_reused_for_another_config(baseline, data_dir, tmp_path):
    with pytest.raises(Killed):
        T.train(tiny(data_dir, checkpoint_every=5), tmp_path, callback=kill_at(6))
    with pytest.raises(ConfigError, match="different lr"):
        T.train(tiny(data_dir, checkpoint_every=5, lr=0.05), tmp_path)


def test_corrupt_checkpoint_warns_once_and_starts_over(baseline, data_dir, tmp_path, capsys):
    ref_run, ref = baseline
    with pytest.raises(Killed):
        T.train(tiny(data_dir, checkpoint_every=5), tmp_path, callback=kill_at(12))
    (tmp_path / "checkpoint.pt").write_bytes(b"\x80garbage")
    (tmp_path / ".checkpoint.pt.tmp999").write_bytes(b"half a file")
    summary = T.train(tiny(data_dir, checkpoint_every=5), tmp_path)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning:") and "checkpoint" in err[0]
    assert summary["status"] == "ok" and summary["final_test_error"] == ref["final_test_error"]
    assert without_timing(history(tmp_path)) == without_timing(history(ref_run))
    assert not list(tmp_path.glob(".*.tmp*"))


def test_huge_learning_rate_diverges_without_raising(data_dir, tmp_path):
    summary = T.train(tiny(data_dir, lr=1e4, steps=40, evals=10), tmp_path)
    assert summary["status"] == "diverged" and summary["reason"]
    assert summary["iterations"] < 40  # stopped early
    assert (tmp_path / "summary.json").exists()


def test_without_the_chance_stop_only_a_non_finite_loss_ends_a_run(data_dir, tmp_path):
    """The paper preset's fail_chance_fraction=null: a run at chance trains to the end; a NaN training loss still
    ends it, as diverged."""
    stuck = dict(lr=1e-12, evals=4)  # never leaves chance
    stopped = T.train(tiny(data_dir, **stuck), tmp_path / "stopped")
    assert stopped["status"] == "fail" and "chance" in stopped["reason"] and stopped["iterations"] < 36
    kept = T.train(tiny(data_dir, **stuck, fail_chance_fraction=None), tmp_path / "kept")
    assert kept["status"] == "ok" and kept["iterations"] == 36 and kept["final_train_error"] > 60
    # with the rest of the paper preset's options too
    paper = dict(normalize="pixel-mean", pad_fill="mean", fc_bias_init="zero", bf16=False, fail_chance_fraction=None)
    nan = T.train(tiny(data_dir, **paper, lr=1e4, steps=40, evals=10), tmp_path / "nan")
    assert nan["status"] == "diverged" and "not finite" in nan["reason"] and nan["iterations"] < 40


def test_warmup_then_milestones(data_dir, tmp_path):
    T.train(tiny(data_dir, warmup_lr=0.01, steps=40, evals=40, milestones=[30], gamma=0.5), tmp_path)
    lrs = {h["iteration"]: h["lr"] for h in history(tmp_path)}
    assert lrs[1] == 0.01 and lrs[20] == 0.01  # the first error check is at iteration 20
    assert lrs[25] == 0.1 and lrs[30] == 0.1 and lrs[31] == 0.05


def test_epoch_schedule_adam_and_gate_means(data_dir, tmp_path):
    summary = T.train(tiny(data_dir, schedule_unit="epochs", steps=0.5, batch_size=128, evals=2,
                           shortcut="exclusive-gate", shortcut_args={"b": -2.0}, train_subset=512,
                           optimizer="adam", lr=1e-3,
                           fail_chance_fraction=None), tmp_path)
    hist = history(tmp_path)
    assert summary["iterations"] == 2 and summary["epochs"] == 0.5
    assert set(hist[-1]["gate_mean"]) == {"0", "1", "2"}
    assert all(0 < g < 1 for g in hist[-1]["gate_mean"].values())


def test_validate_config_rejects_bad_input_before_training():
    assert C.validate_config({}) == C.DEFAULTS
    with pytest.raises(ConfigError, match="did you mean 'batch_size'"):
        C.validate_config({"batchsize": 64})
    for bad in ({"lr": "fast"}, {"lr": -1}, {"batch_size": 0}, {"batch_size": True}, {"milestones": [3, 1]},
                {"dataset": "cifar11"}, {"arch": "resnet21"}, {"steps": 1.5}, {"grad_norm_points": [2]},
                {"shortcut_args": {"lam_s": -1}, "shortcut": "scale"}):
        with pytest.raises(ConfigError):
            C.validate_config(bad)


def test_overrides_parse_json_toml_or_string():
    cfg = C.parse_overrides(["lr=0.1", "milestones=[1, 2]", "warmup_lr=null", "arch=resnet20", "quiet=true",
                             "--data-dir=/x", "shortcut_args={b = -6}"])
    assert cfg == {"lr": 0.1, "milestones": [1, 2], "warmup_lr": None, "arch": "resnet20", "quiet": True,
                   "data_dir": "/x", "shortcut_args": {"b": -6}}
    with pytest.raises(ConfigError):
        C.parse_overrides(["lr"])


def test_cli_missing_dataset_is_one_line_and_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "ablation.train", "dataset=cifar10", f"data_dir={tmp_path}",
                           "download=false", f"out={tmp_path / 'run'}"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: dataset 'cifar10' not found") and proc.stderr.count("\n") == 1
    assert "data_dir=DIR" in proc.stderr and "/usr/share/datasets" in proc.stderr and "download" in proc.stderr
    assert "--data-dir" not in proc.stderr  # no such flag
    assert not (tmp_path / "run").exists()


def test_cli_trains_and_prints_the_summary(data_dir, tmp_path, capsys):
    args = [f"{k}={json.dumps(v)}" for k, v in tiny(data_dir, steps=4, evals=1, deterministic=True).items()]
    assert train_cli.main(args + [f"out={tmp_path}"]) == 0
    assert json.loads(capsys.readouterr().out)["iterations"] == 4
    assert train_cli.main(["lr=0.1"]) == 2  # no out=


def test_a_finished_run_refuses_a_different_config_in_one_line(data_dir, tmp_path, capsys):
    """Issue 9, item 1: a finished resnet8 run, then resnet14 at another width and lr into the same out=."""
    out = f"out={tmp_path / 'a'}"
    common = ["dataset=synthetic", f"data_dir={data_dir}", "steps=4", "milestones=[]", "evals=1", "threads=1"]
    assert train_cli.main([*common, "arch=resnet8", "width=8", out]) == 0
    first = json.loads(capsys.readouterr().out)
    assert train_cli.main([*common, "arch=resnet14", "width=16", "lr=0.5", out]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # no summary, least of all the resnet8 one
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert captured.err.startswith(f"error: {tmp_path / 'a'} holds a run with different arch, lr, width")
    assert json.loads((tmp_path / "a" / "summary.json").read_text()) == first  # and it is left as it was


def test_a_start_that_failed_before_training_does_not_block_the_corrected_retry(data_dir, tmp_path, monkeypatch):
    def broken(*args):
        raise RuntimeError("failed in the first step")

    monkeypatch.setattr(T, "step", broken)
    with pytest.raises(RuntimeError):
        T.train(tiny(data_dir, lr=7.0), tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["lr"] == 7.0  # left behind, nothing trained
    monkeypatch.undo()
    summary = T.train(tiny(data_dir, steps=4, evals=1), tmp_path)  # another lr, and other keys too
    assert summary["iterations"] == 4 and json.loads((tmp_path / "config.json").read_text())["lr"] == 0.1
