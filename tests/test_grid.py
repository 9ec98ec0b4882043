"""Backends on one machine (runs spread over GPUs), the in-flight display, and the dry run's cost."""

import io
import json
import os
import time

import pytest

from ablation.study import cost
from ablation.study import pool
from ablation.study import backends
from ablation.core import locks
from ablation.study import progress
from ablation.core.errors import ConfigError
from ablation.training.config import validate_config


def test_visible_gpus_follow_the_parents_cuda_visible_devices():
    assert pool.visible_gpus(3, None) == ["0", "1", "2"]
    assert pool.visible_gpus(2, "4, 6") == ["4", "6"]
    assert pool.visible_gpus(1, "GPU-abc,GPU-def") == ["GPU-abc"]  # torch counts what it can open
    assert pool.visible_gpus(0, "") == []


def test_gpu_slots_put_jobs_per_gpu_and_spread_the_first_workers():
    assert pool.gpu_slots(["0", "1"], 2) == ["0", "1", "0", "1"]
    assert pool.gpu_slots(["3"], 4) == ["3"] * 4
    slots = pool.gpu_slots([str(i) for i in range(8)], 3)
    assert len(slots) == 24 and all(slots.count(str(i)) == 3 for i in range(8))
    assert sorted(slots[:8]) == [str(i) for i in range(8)]  # with 8 runs left, one on each GPU


def test_local_backend_sizes_jobs_per_gpu(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    cfgs = [{"device": "auto"}] * 10
    b = pool.local_backend(3, 10, cfgs)
    assert isinstance(b, pool.LocalPool) and b.jobs == 6 and sorted(b.devices) == ["0"] * 3 + ["1"] * 3
    assert b.gpus_per_run == pytest.approx(1 / 3)
    b = pool.local_backend(None, 10, cfgs)  # auto: one run per GPU
    assert b.jobs == 2 and b.devices == ["0", "1"] and b.gpus_per_run == 1.0
    b = pool.local_backend(3, 1, cfgs)  # one run left: in this process
    assert isinstance(b, backends.InProcess)
    assert pool.local_backend(None, 10, [{"device": "cpu"}] * 10).gpus_per_run == 0.0


def _report_device(cfg, run_dir):  # module level: the spawned workers import it
    time.sleep(0.3)  # long enough that every worker takes some runs
    return {"status": "ok", "device": os.environ.get("CUDA_VISIBLE_DEVICES"), "pid": os.getpid()}


def test_a_local_pool_pins_each_worker_to_one_gpu(tmp_path):
    """The assignment itself, without CUDA: each worker process sees exactly its own device."""
    workers = pool.LocalPool(4, train_fn=_report_device, devices=pool.gpu_slots(["0", "1"], 2), per_gpu=2)
    tasks = [backends.Task(f"t{i}", f"h{i}", {}, str(tmp_path / f"r{i}")) for i in range(12)]
    seen = []
    workers.execute(tasks, lambda t, s, sec: seen.append(s))
    assert len(seen) == 12
    by_pid = {}
    for s in seen:
        by_pid.setdefault(s["pid"], set()).add(s["device"])
    assert all(len(d) == 1 for d in by_pid.values())  # a worker never changes GPU
    per_device = [d for ds in by_pid.values() for d in ds]
    assert set(per_device) == {"0", "1"} and max(per_device.count("0"), per_device.count("1")) <= 2


# --- in flight ------------------------------------------------------------------------------------


def _task(tmp_path, steps=100, batch=10):
    cfg = validate_config({"dataset": "synthetic", "steps": steps, "batch_size": batch})
    return backends.Task("tiny:identity:0", "abc", cfg, str(tmp_path / "run"))


def test_a_run_in_flight_shows_where_how_far_and_how_fast(tmp_path):
    t = _task(tmp_path)
    assert progress.flight(t) is None  # nobody trains it
    with locks.RunClaim(t.run_dir, device="cuda:3"):
        f = progress.flight(t)
        assert (f.iteration, f.total, f.images_per_s, f.eta_s) == (0, 100, None, None)
        assert f.line().endswith("it 0/100  starting  ETA ?")
        with open(os.path.join(t.run_dir, "history.jsonl"), "w") as h:
            h.write(json.dumps({"iteration": 40, "images_per_s": 20.0}) + "\n")
        f = progress.flight(t)
        assert f.where == f"{locks.socket.gethostname()}/cuda:3"
        assert f.eta_s == pytest.approx((100 - 40) * 10 / 20.0)  # 30 s
        assert f.line() == f"tiny:identity:0  {f.where}  it 40/100  20 img/s  ETA 30s"
        assert progress.in_flight([t], done=set()) == [f] and progress.in_flight([t], done={"abc"}) == []
    assert progress.flight(t) is None  # released


def test_the_watcher_writes_runs_in_flight_to_a_log(tmp_path):
    t = _task(tmp_path)
    log = io.StringIO()
    with locks.RunClaim(t.run_dir, device="cpu"):
        with progress.Watcher([t], set(), file=log, period_s=0.05):
            time.sleep(0.4)
    assert "  in flight: tiny:identity:0  " in log.getvalue() and "it 0/100" in log.getvalue()


@pytest.mark.parametrize("dataset, over", [
    ("synthetic", {"steps": 7}),
    ("synthetic", {"schedule_unit": "epochs", "steps": 2, "batch_size": 100}),  # 10 steps an epoch, 24 images left
    ("synthetic", {"schedule_unit": "epochs", "steps": 0.5, "train_subset": 300, "batch_size": 64}),
    ("fashion-mnist", {"schedule_unit": "epochs", "steps": 1.5, "batch_size": 128, "milestones": [0.5, 1]}),
    ("fashion-mnist", {"schedule_unit": "epochs", "steps": 1, "val_split": 5000, "batch_size": 1000}),
    ("cifar2", {"schedule_unit": "epochs", "steps": 3, "batch_size": 128}),
])
def test_the_cost_counts_the_iterations_and_images_the_trainers_schedule_runs(dataset, over):
    from ablation.training.data import DATASETS
    from ablation.training.schedule import Schedule

    cfg = validate_config({"dataset": dataset, **over})
    info = DATASETS[dataset]
    n = cfg["train_subset"] or info.train_images - cfg["val_split"]  # what the trainer loads (tests/test_data.py)
    plan = Schedule.of(cfg, n)
    batch = min(cfg["batch_size"], n)
    assert cost.total_iterations(cfg) == plan.total
    assert cost.images_seen(cfg) == plan.total * batch  # whole batches: an epoch's partial batch is never drawn
    if cfg["schedule_unit"] == "epochs":
        assert plan.ipe == n // batch and plan.total == round(cfg["steps"] * (n // batch))


def test_a_schedule_shorter_than_one_iteration_is_refused_where_the_trainer_would_run_one():
    from ablation.training.length import run_length

    over = {"dataset": "synthetic", "schedule_unit": "epochs", "batch_size": 100}  # 10 iterations an epoch
    assert run_length(validate_config({**over, "steps": 0.1})).iterations == 1
    with pytest.raises(ConfigError, match="less than one iteration"):
        validate_config({**over, "steps": 0.04})


# --- the dry run's cost ---------------------------------------------------------------------------


def test_plan_divides_by_runs_at_once_but_never_below_the_longest_run():
    p = cost.plan([3600e9, 3600e9, 7200e9], rate=1e9, jobs=2, gpus_per_run=0.25)
    assert p["run_hours"] == pytest.approx(4.0) and p["gpu_hours"] == pytest.approx(1.0)
    assert p["wall_s"] == pytest.approx(7200)  # 4 h over 2 slots = 2 h, the longest run alone
    assert cost.plan([3600e9] * 4, 1e9, 4, 0)["wall_s"] == pytest.approx(3600)
    assert cost.slots(cpus=16, gpus=4, cpus_per_run=2, gpus_per_run=0.25) == 8
    assert cost.slots(cpus=64, gpus=4, cpus_per_run=2, gpus_per_run=0.25) == 16
    assert cost.slots(cpus=2, gpus=0, cpus_per_run=1, gpus_per_run=0) == 2


def test_measure_rate_times_the_runs_own_net_and_leaves_the_process_as_it_was():
    import torch

    before = torch.get_num_threads()
    cfg = validate_config({"dataset": "synthetic", "arch": "resnet8", "width": 4, "batch_size": 32, "threads": 1})
    m = cost.measure_rate(cfg, seconds=0.2)
    assert m["threads"] == 1 and m["device"] == "cpu" and m["steps"] >= 1 and m["arch"] == "resnet8"
    flops = cost.estimate([cfg])[0]["flops"]
    assert m["flops_per_s"] == pytest.approx(3 * flops * m["images_per_s"])
    assert torch.get_num_threads() == before
