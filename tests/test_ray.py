"""The study on a real (local) Ray cluster of two one-CPU nodes: the same numbers as the local backend,
a killed worker's run retried and resumed, two drivers training each run once, a clean Ctrl-C."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed here (pip install -e '.[ray]'; CI installs it)")

from ablation.study import experiments as ex  # noqa: E402
from ablation.study import expansion  # noqa: E402
from ablation import run  # noqa: E402
from ablation.study import grid  # noqa: E402
from ablation.study import backends  # noqa: E402
from ablation.core import locks  # noqa: E402
from ablation.training import loop as trainer  # noqa: E402
from ablation.core.errors import ConfigError  # noqa: E402
from ablation.study.ray_backend import RayBackend, _probe  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
from conftest import tiny_args, tiny_grid as _grid  # noqa: E402

pytestmark = pytest.mark.slow  # a Ray cluster per module, minutes of training


@pytest.fixture(scope="module")
def cluster():
    """Two nodes of one CPU each, on this machine: one Ray start for the whole module."""
    from ray.cluster_utils import Cluster

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no report home from a test
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    c.add_node(num_cpus=1)
    c.wait_for_nodes()
    ray.init(address=c.address, logging_level="WARNING")
    yield c
    ray.shutdown()
    c.shutdown()


def _curve(run_dir):
    """The history without its clock: what must be identical between two ways of training a run."""
    return [{k: v for k, v in h.items() if k not in ("wall_time", "images_per_s")}
            for h in map(json.loads, (Path(run_dir) / "history.jsonl").read_text().splitlines())]


def _summary(run_dir):
    s = json.loads((Path(run_dir) / "summary.json").read_text())
    return {k: s[k] for k in ("status", "final_test_error", "best_test_error", "final_train_error", "iterations")}


def test_a_grid_on_ray_ends_with_the_numbers_of_the_local_backend(cluster, tiny, tmp_path):
    runs = [ex.Run(r.experiment, r.variant, r.seed, c, expansion.config_hash(c)) for r in _grid(tiny, seeds=2)
            for c in [{**r.config, "steps": 30, "evals": 3}]]
    local = grid.run_grid(runs, tmp_path / "local", jobs=2, quiet=True)  # two processes, one thread each
    with RayBackend(configs=[r.config for r in runs]) as backend:
        assert backend.jobs == 2 and backend.threads() == 1 and len(backend.nodes) == 2
        backend.check_storage(tmp_path / "ray")
        on_ray = grid.run_grid(runs, tmp_path / "ray", quiet=True, backend=backend)
    assert not list((tmp_path / "ray").glob(".storage-check*"))  # the check leaves nothing behind
    assert (local["trained"], on_ray["trained"], on_ray["errors"]) == (4, 4, 0)
    for r in runs:
        a, b = tmp_path / "local/runs" / r.hash, tmp_path / "ray/runs" / r.hash
        assert _curve(a) == _curve(b) and _summary(a) == _summary(b)
        assert not (b / "claim.json").exists()
    assert ray.is_initialized()  # a connection it did not open is left open


def test_a_killed_worker_is_retried_and_its_run_resumes_from_the_checkpoint(cluster, tiny, tmp_path):
    [r] = [r for r in _grid(tiny) if r.variant == "identity"]
    cfg = {**r.config, "steps": 300, "evals": 12, "checkpoint_every": 25}
    r = ex.Run(r.experiment, r.variant, 7, cfg, expansion.config_hash(cfg))
    out, run_dir = tmp_path / "out", tmp_path / "out/runs" / r.hash
    result = {}
    with RayBackend(configs=[cfg]) as backend:
        driver = threading.Thread(target=lambda: result.update(grid.run_grid([r], out, quiet=True, backend=backend)))
        driver.start()
        deadline = time.time() + 240
        while time.time() < deadline:  # wait for a checkpoint that holds at least one history point
            if (run_dir / "checkpoint.pt").exists():
                import torch

                try:
                    kept = torch.load(run_dir / "checkpoint.pt", weights_only=True)["state"]["history_len"]
                except Exception:  # caught between the temporary and the rename
                    continue
                if kept >= 1:
                    break
            time.sleep(0.05)
        before = (run_dir / "history.jsonl").read_text().splitlines()[:kept]
        owner = locks.read_claim(run_dir)
        assert not (run_dir / "summary.json").exists()
        os.kill(owner["pid"], signal.SIGKILL)  # the worker process dies mid-run
        driver.join(300)
    assert result["trained"] == 1 and result["errors"] == 0, result
    after = (run_dir / "history.jsonl").read_text().splitlines()
    assert after[:kept] == before  # resumed: the points before the checkpoint were kept, clock and all
    assert locks.read_claim(run_dir) is None
    whole = tmp_path / "whole"
    trainer.train({**cfg, "threads": 1}, whole)
    assert _curve(run_dir) == _curve(whole) and _summary(run_dir) == _summary(whole)


def _driver(tiny, out, cluster, *extra):
    argv = [sys.executable, "-m", "ablation.run", *tiny_args(tiny), "--out", str(out), "--backend",
            "ray", "--address", cluster.address, *extra]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_two_drivers_on_one_ray_cluster_train_each_run_once(cluster, tiny, tmp_path):
    out = tmp_path / "shared"
    drivers = [_driver(tiny, out, cluster, "--seeds", "2", "--set", "steps=40", "--set", "evals=2", "--quiet")
               for _ in range(2)]
    for d in drivers:
        _, err = d.communicate(timeout=600)
        assert d.returncode == 0, err
    trained = [json.loads(line)["trained"] for line in (out / "invocations.jsonl").read_text().splitlines()]
    assert len(trained) == 2 and sum(trained) == 4
    curves = [[h["iteration"] for h in _curve(d)] for d in (out / "runs").iterdir()]
    # one trainer each: no interleaved or repeated points, the same points in every run
    assert len(curves) == 4 and all(c == sorted(set(c)) and c == curves[0] and c[-1] == 40 for c in curves)
    assert not list((out / "runs").glob("*/claim.json"))


def test_ctrl_c_cancels_the_runs_and_prints_the_resume_command(cluster, tiny, tmp_path):
    out = tmp_path / "out"
    extra = ["--set", "steps=200", "--set", "checkpoint_every=20"]
    d = _driver(tiny, out, cluster, *extra)
    deadline = time.time() + 240
    while time.time() < deadline and not list((out / "runs").glob("*/checkpoint.pt")):
        time.sleep(0.1)
    d.send_signal(signal.SIGINT)
    _, err = d.communicate(timeout=120)
    assert d.returncode == 130, err
    assert "Run the same command again to resume" in err and "--backend ray" in err
    assert "Traceback" not in err
    assert not list((out / "runs").glob("*/claim.json"))  # the runs stopped and let go of their claims
    assert not list((out / "runs").glob("*/summary.json"))
    d = _driver(tiny, out, cluster, *extra, "--quiet")
    _, err = d.communicate(timeout=600)
    assert d.returncode == 0, err
    assert all(_summary(p)["iterations"] == 200 for p in (out / "runs").iterdir())


def test_dry_run_on_ray_times_a_run_on_a_node(cluster, tiny, tmp_path, capsys):
    assert run.main([*tiny_args(tiny), "--out", str(tmp_path / "o"), "--backend", "ray",
                     "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "timed just now: " in printed and "training steps of resnet8 on cpu, 1 thread" in printed
    assert "2 runs at once on a Ray cluster of 2 nodes (2 CPUs, 0 GPUs" in printed
    assert not (tmp_path / "o").exists()


def test_a_node_that_does_not_see_the_results_folder_is_one_clear_error(cluster, tmp_path):
    assert "does not see the results folder" in _probe(str(tmp_path / "nowhere/.storage-check.x"), "x", "n")
    with RayBackend(configs=[{"device": "auto"}]) as backend:
        assert backend.gpus_per_run == 0.0
        # as if the nodes mounted another folder than the driver's: the driver's token is not where they look
        backend._marker, backend._token = str(tmp_path / ".storage-check.gone"), "gone"
        t = backends.Task("tiny:identity:0", "h", {"device": "auto"}, str(tmp_path / "runs/h"))
        got = []
        backend.execute([t], lambda task, summary, s: got.append(summary))
    assert got[0]["status"] == "error" and "does not see the results folder" in got[0]["reason"]
    with pytest.raises(ConfigError, match=r"no node of the Ray cluster \(2 CPUs, 0 GPUs\) has the 1 CPU and 1 GPU"):
        RayBackend(gpus_per_run=1, configs=[{"device": "auto"}])
