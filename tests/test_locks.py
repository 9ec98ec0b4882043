"""A run's claim: one trainer at a time, stale claims taken over by exactly one contender."""

import json
import multiprocessing as mp
import os
import subprocess
import sys
import time

import pytest

from ablation.core import locks
from ablation.core.locks import RunClaim, ClaimLost, RunBusy


def _stale_claim(run_dir, host="elsewhere", pid=1, age_s=3600):
    path = run_dir / locks.CLAIM
    run_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"host": host, "pid": pid, "token": "old"}))
    past = time.time() - age_s
    os.utime(path, (past, past))


def test_a_live_claim_refuses_a_second_trainer_and_is_released(tmp_path):
    with RunClaim(tmp_path) as first:
        assert (tmp_path / locks.CLAIM).exists()
        with pytest.raises(RunBusy, match="another process"):
            RunClaim(tmp_path).acquire()
        first.ensure()
    assert not (tmp_path / locks.CLAIM).exists()
    with RunClaim(tmp_path):  # free again
        pass


def test_claim_of_a_dead_process_on_this_host_is_taken_over_at_once(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    _stale_claim(tmp_path, host=locks.socket.gethostname(), pid=int(dead.stdout), age_s=0)
    with RunClaim(tmp_path) as c:
        assert json.loads((tmp_path / locks.CLAIM).read_text())["token"] == c.token


def test_a_fresh_claim_from_another_host_is_respected_and_an_old_one_is_not(tmp_path):
    _stale_claim(tmp_path, age_s=1)
    with pytest.raises(RunBusy):
        RunClaim(tmp_path).acquire()
    _stale_claim(tmp_path, age_s=locks.STALE_S + 5)
    with RunClaim(tmp_path):
        pass


def test_the_owner_whose_claim_was_taken_over_stops_writing(tmp_path):
    mine = RunClaim(tmp_path).acquire()
    _stale_claim(tmp_path)  # as if another process had taken it over after a long pause of ours
    with pytest.raises(ClaimLost):
        mine.ensure()
    mine.release()
    assert (tmp_path / locks.CLAIM).exists()  # the new owner's claim is left alone


def _contend(run_dir, start, results, everyone_tried):
    while time.time() < start:
        time.sleep(0.001)
    try:
        c = RunClaim(run_dir).acquire()
        results.put("won")
        everyone_tried.wait(120)  # hold it until every contender has tried, however late it started
        c.release()
    except RunBusy:
        results.put("busy")


def test_exactly_one_of_several_processes_takes_over_a_stale_claim(tmp_path):
    _stale_claim(tmp_path)
    ctx = mp.get_context("spawn")
    results, start, everyone_tried = ctx.Queue(), time.time() + 3, ctx.Event()
    procs = [ctx.Process(target=_contend, args=(tmp_path, start, results, everyone_tried)) for _ in range(4)]
    for p in procs:
        p.start()
    outcomes = sorted(results.get(timeout=120) for _ in procs)
    everyone_tried.set()
    for p in procs:
        p.join(60)
    assert outcomes == ["busy", "busy", "busy", "won"]


def test_heartbeat_keeps_the_claim_fresh(tmp_path, monkeypatch):
    monkeypatch.setattr(locks, "HEARTBEAT_S", 0.05)
    with RunClaim(tmp_path):
        past = time.time() - 1000
        os.utime(tmp_path / locks.CLAIM, (past, past))
        time.sleep(0.3)
        assert locks.read_claim(tmp_path)["age_s"] < 5


# --- a heartbeat stamped in the future (another host whose clock runs ahead) ------------------------


def _future_claim(run_dir, ahead_s=3e8):
    _stale_claim(run_dir, age_s=-ahead_s)  # touch -d 2030-01-01, as seen from a host whose clock is behind


def test_a_future_heartbeat_that_never_changes_is_taken_over(tmp_path, monkeypatch):
    monkeypatch.setattr(locks, "STALE_S", 0.6)
    monkeypatch.setattr(locks, "HEARTBEAT_S", 0.4)
    _future_claim(tmp_path)
    t = time.monotonic()
    with RunClaim(tmp_path) as c:
        assert json.loads((tmp_path / locks.CLAIM).read_text())["token"] == c.token
    assert time.monotonic() - t >= 0.6  # judged by watching it, for STALE_S of this process's clock


def test_a_future_heartbeat_that_changes_is_a_live_owner(tmp_path, monkeypatch):
    import threading

    monkeypatch.setattr(locks, "STALE_S", 1.0)
    monkeypatch.setattr(locks, "HEARTBEAT_S", 0.4)
    _future_claim(tmp_path)
    stop = threading.Event()

    def beat():  # the owner on the skewed host: its heartbeat moves, always ahead of ours
        ahead = time.time() + 3e8
        while not stop.wait(0.1):
            ahead += 0.1
            os.utime(tmp_path / locks.CLAIM, (ahead, ahead))

    owner = threading.Thread(target=beat)
    owner.start()
    try:
        with pytest.raises(RunBusy, match="ahead of this host's clock") as busy:
            RunClaim(tmp_path).acquire()
    finally:
        stop.set()
        owner.join()
    assert json.loads((tmp_path / locks.CLAIM).read_text())["token"] == "old"
    assert "-" not in str(busy.value).split("(")[-1], str(busy.value)  # no negative age


def test_a_future_heartbeat_is_described_without_a_negative_age(tmp_path):
    _future_claim(tmp_path, ahead_s=97278837)
    text = locks.describe(locks.read_claim(tmp_path))
    assert "97278837s ahead of this host's clock" in text and "-" not in text, text
