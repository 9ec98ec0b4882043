"""tensorboard=true: a run's history points as TensorBoard scalars next to history.jsonl."""

import importlib.util
import json

import pytest

from ablation.training import tensorboard_events as board
from ablation.training import config as C
from ablation.training import loop as T
from ablation.core.errors import ConfigError


def cfg(tmp_path, **over):
    return {"dataset": "synthetic", "data_dir": str(tmp_path / "data"), "arch": "resnet8", "width": 4,
            "batch_size": 64, "steps": 12, "milestones": [], "evals": 3, "checkpoint_every": 1000, "quiet": True,
            "threads": 1, "shortcut": "exclusive-gate", "shortcut_args": {"b": -2.0}, "fail_chance_fraction": None,
            **over}


def test_off_by_default_and_not_part_of_the_run_hash():
    key = C.SCHEMA["tensorboard"]
    assert key.default is False and key.runtime


def test_on_without_the_package_is_one_clear_line(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    with pytest.raises(ConfigError, match="tensorboard=true needs the tensorboard package: pip install tensorboard"):
        C.validate_config(cfg(tmp_path, tensorboard=True))
    C.validate_config(cfg(tmp_path))  # off: never looked for


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None,
                    reason="the optional tensorboard package is not installed (pip install tensorboard)")
def test_each_history_point_becomes_scalars(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    T.train(cfg(tmp_path, tensorboard=True), run)
    assert list(run.glob("events.out.tfevents.*"))
    events = EventAccumulator(str(run))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {*board.SCALARS.values(), "gate_mean/stage0", "gate_mean/stage2"} <= tags
    hist = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    logged = events.Scalars("error/test")
    assert [e.step for e in logged] == [h["iteration"] for h in hist]
    assert [e.value for e in logged] == pytest.approx([h["test_error"] for h in hist])
    assert events.Scalars("gate_mean/stage1")[-1].value == pytest.approx(hist[-1]["gate_mean"]["1"])


def test_off_writes_no_event_files(tmp_path):
    run = tmp_path / "run"
    T.train(cfg(tmp_path, steps=4, evals=1), run)
    assert not list(run.glob("events.out.tfevents.*"))


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None,
                    reason="the optional tensorboard package is not installed (pip install tensorboard)")
def test_a_resumed_run_records_each_point_once(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    c = cfg(tmp_path, tensorboard=True, evals=6, checkpoint_every=4)

    def stop(it):
        if it == 7:  # points at 2, 4, 6 recorded; the checkpoint holds iteration 4
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        T.train(c, run, callback=stop)
    T.train(c, run)
    events = EventAccumulator(str(run))
    events.Reload()
    hist = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert [h["iteration"] for h in hist] == [1, 2, 4, 6, 8, 10, 12]  # 1: the first gradient-norm point
    assert [e.step for e in events.Scalars("error/test")] == [h["iteration"] for h in hist]
