"""Train a study's runs as Ray tasks: every GPU of a workstation, or a cluster that shares the results folder.

    ray start --head                          # on the head node
    ray start --address HEAD:6379             # on each other node
    python -m ablation.run --preset paper --variants all --backend ray --address auto --out /shared/results

Each run is one Ray task holding ``num_gpus = --gpus-per-run`` and ``num_cpus = --cpus-per-run``
(0.25 GPU packs four runs on a GPU). Ray retries a task whose worker process or node died
(:data:`MAX_RETRIES` times) and the retry resumes from the run's last checkpoint, as the trainer
resumes from the run folder by itself; it first waits out its own earlier attempt's claim
(:func:`ablation.core.locks.wait_for_earlier_attempt`). An exception inside a run is not retried: it
becomes the run's error, as with the local backend.

On a cluster (``--address``) the workers run the driver's own copy of this package (sent through
Ray's ``py_modules`` with the job), so a cluster never mixes two versions of the trainer; torch and
the other dependencies must be installed on every node. A local instance's workers import the
package as the driver does, and so start from Ray's ready pool of workers. Ray is imported here only, and this module only when ``--backend ray`` asks for it.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from dataclasses import replace
from pathlib import Path

from . import cost
from ..core.errors import ConfigError
from .backends import Backend, Task, train_task
from ..core.locks import wait_for_earlier_attempt
from ..core.files import write_atomic
from ..core.layout import ResultsDir

INSTALL = "pip install -e '.[ray]'"
MAX_RETRIES = 3  # per task, for a dead worker process or node; Ray's own default for tasks
CANCEL_GRACE_S = 10.0  # after Ctrl-C, how long runs get to stop by themselves (and release their claims)
PROBE_TIMEOUT_S = 300.0  # a node's first task may wait for a worker process and the package to arrive


def import_ray():
    """The ``ray`` module, or one ConfigError line with the install command."""
    try:
        import ray
    except ImportError:
        raise ConfigError(f"--backend ray needs Ray, which is not installed here: {INSTALL}") from None
    return ray


def check_request(gpus_per_run: float | None, cpus_per_run: float) -> None:
    """ConfigError unless Ray can grant the resources asked for each run."""
    if gpus_per_run is not None and (gpus_per_run < 0 or (gpus_per_run > 1 and gpus_per_run != int(gpus_per_run))):
        raise ConfigError(f"--gpus-per-run must be 0, a fraction of one GPU, or a whole number of GPUs; "
                          f"got {gpus_per_run:g}")
    if cpus_per_run < 1 or cpus_per_run != int(cpus_per_run):
        raise ConfigError(f"--cpus-per-run must be a whole number >= 1, got {cpus_per_run:g}")


# --- on a node ---------------------------------------------------------------------------------

_loaded_plugins: set = set()  # per worker process, which runs many tasks one after another


def _load_plugins(plugins) -> None:
    from ..nets import registry

    for spec in plugins:
        if spec not in _loaded_plugins:
            registry.load_plugin(spec)
            _loaded_plugins.add(spec)


def _unseen(marker: str | None, token: str | None) -> str | None:
    """What is wrong where this node does not read the driver's token in the results folder."""
    if marker is None:
        return None
    try:
        if Path(marker).read_text() == token:
            return None
    except OSError:
        pass
    return (f"node {socket.gethostname()} does not see the results folder {Path(marker).parent} as the driver "
            f"does; --out must be on storage that every node mounts at the same path")


def _probe(marker: str, token: str, node: str) -> str | None:
    """On one node: read the driver's token, write a reply beside it. Returns what went wrong, or None."""
    problem = _unseen(marker, token)
    if problem:
        return problem
    try:
        write_atomic(ResultsDir(Path(marker).parent).storage_check(token, node), socket.gethostname())
    except OSError as e:
        return f"node {socket.gethostname()} cannot write into the results folder {Path(marker).parent}: {e}"
    return None


def _on_node(task: Task, train_fn, plugins, marker, token) -> dict:
    """One run, inside a Ray task: the folder check, the wait for an earlier attempt, then the trainer."""
    _load_plugins(plugins)
    problem = _unseen(marker, token)
    if problem:
        return {"status": "error", "reason": problem}
    if task.ticket:
        wait_for_earlier_attempt(task.run_dir, task.ticket)
    return train_task(task, train_fn)


def _call(fn, args):
    return fn(*args)


# --- the driver --------------------------------------------------------------------------------


class RayBackend(Backend):
    """Every run a Ray task; connects to ``address`` (``auto``, ``HOST:PORT``) or starts a local Ray.

    Where Ray is already initialised in this process (a test, a notebook), that connection is used
    and left open, and its own runtime environment decides which copy of this package workers import. ``gpus_per_run=None`` takes one GPU per run where the cluster has GPUs and the
    runs may use them, else none.
    """

    def __init__(self, address: str | None = None, gpus_per_run: float | None = None, cpus_per_run: int = 1,
                 configs=(), plugins=(), train_fn=None, max_retries: int = MAX_RETRIES, num_cpus: int | None = None):
        check_request(gpus_per_run, cpus_per_run)
        self.ray = import_ray()
        self.address, self.cpus_per_run, self.max_retries = address, int(cpus_per_run), max_retries
        # a plugin file is named by its absolute path, which a node finds on shared storage
        self.plugins = [str(Path(p).resolve()) if p.endswith(".py") else p for p in plugins]
        self.train_fn = train_fn
        self._started, self._marker, self._token = False, None, None
        self._connect(num_cpus)
        devices = {c.get("device", "auto") for c in configs}
        if gpus_per_run is None:
            gpus_per_run = 1.0 if self.gpus > 0 and devices != {"cpu"} else 0.0
        self.gpus_per_run = float(gpus_per_run)
        try:
            self._check_fits(devices)
        except ConfigError:
            self.close()  # a local instance started for nothing
            raise
        self.jobs = max(1, sum(cost.slots(n["Resources"].get("CPU", 0), n["Resources"].get("GPU", 0),
                                          self.cpus_per_run, self.gpus_per_run) for n in self.nodes))

    def _connect(self, num_cpus):
        ray = self.ray
        if not ray.is_initialized():
            kwargs = {"address": self.address, "logging_level": logging.WARNING}
            if self.address is not None:
                package = Path(__file__).resolve().parents[1]  # the whole ablation package, as this driver has it
                kwargs["runtime_env"] = {"py_modules": [str(package)]}
            else:  # a local instance, this process's own: its workers share this process's files and paths
                kwargs.update(include_dashboard=False, num_cpus=num_cpus)
                # it starts with token authentication on, and says so at length; that is the safe default
                logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
            try:
                ray.init(**kwargs)
            except ConnectionError as e:
                raise ConfigError(f"no Ray cluster at --address {self.address} ({str(e).splitlines()[0]}); start one "
                                  f"with 'ray start --head', or leave out --address for a local one") from None
            self._started = True
        self.nodes = [n for n in ray.nodes() if n.get("Alive")]
        res = ray.cluster_resources()
        self.cpus, self.gpus = res.get("CPU", 0.0), res.get("GPU", 0.0)

    def _check_fits(self, devices: set) -> None:
        where = f"the Ray cluster ({self.cpus:g} CPUs, {self.gpus:g} GPUs)"
        if "cuda" in devices and self.gpus_per_run == 0:
            raise ConfigError("--device cuda needs --gpus-per-run above 0 with --backend ray")
        if devices == {"cpu"} and self.gpus_per_run > 0:
            raise ConfigError(f"--gpus-per-run {self.gpus_per_run:g} would hold GPUs that --device cpu runs leave idle")
        if not any(n["Resources"].get("CPU", 0) >= self.cpus_per_run
                   and n["Resources"].get("GPU", 0) >= self.gpus_per_run for n in self.nodes):
            raise ConfigError(f"no node of {where} has the {self.cpus_per_run} CPU and {self.gpus_per_run:g} GPU "
                              f"that one run asks for; lower --cpus-per-run or --gpus-per-run")

    def threads(self) -> int | None:
        return self.cpus_per_run

    def describe(self) -> str:
        n = len(self.nodes)
        return (f"{self.jobs} runs at once on a Ray cluster of {n} node{'s' if n != 1 else ''} ({self.cpus:g} CPUs, "
                f"{self.gpus:g} GPUs; {self.cpus_per_run} CPU and {self.gpus_per_run:g} GPU per run)")

    def _options(self, fn, **extra):
        return self.ray.remote(fn).options(num_cpus=self.cpus_per_run, num_gpus=self.gpus_per_run, **extra)

    def call(self, fn, *args):
        """``fn(*args)`` as a Ray task with one run's resources, on whichever node Ray picks."""
        return self.ray.get(self._options(_call, max_retries=self.max_retries).remote(fn, args))

    def check_storage(self, out) -> None:
        """Each node reads the driver's token in ``out`` and writes a reply that the driver reads back."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        ray, results = self.ray, ResultsDir(out)
        results.path.mkdir(parents=True, exist_ok=True)
        token = uuid.uuid4().hex[:16]
        marker = results.storage_check(token)
        write_atomic(marker, token)
        self._marker, self._token = str(marker), token
        probes = {}
        for n in self.nodes:
            node = n["NodeID"][:12]
            where = NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
            probes[node] = (n, ray.remote(_probe).options(num_cpus=0, scheduling_strategy=where)
                            .remote(str(marker), token, node))
        for node, (n, ref) in probes.items():
            host = n.get("NodeManagerHostname") or n.get("NodeManagerAddress")
            try:
                problem = ray.get(ref, timeout=PROBE_TIMEOUT_S)
            except ray.exceptions.GetTimeoutError:
                problem = f"node {host} did not answer the results-folder check within {PROBE_TIMEOUT_S:.0f}s"
            except ray.exceptions.RayError as e:
                problem = f"the results-folder check failed on node {host}: {str(e).splitlines()[0]}"
            reply = results.storage_check(token, node)
            if problem is None and not reply.exists():
                problem = (f"node {host} wrote into the results folder {out} but this driver does not see the file; "
                           f"--out must be on storage that every node mounts at the same path")
            reply.unlink(missing_ok=True)
            if problem:
                self._drop_marker()
                raise ConfigError(problem)

    def _placed(self, task: Task) -> Task:
        """The task as a node runs it: the data folder absolute (a node's working folder differs), and
        on CPU where the run holds no GPU."""
        cfg = {**task.config, "data_dir": os.path.abspath(task.config.get("data_dir") or "data")}
        if self.gpus_per_run == 0 and cfg.get("device", "auto") == "auto":
            cfg["device"] = "cpu"
        return replace(task, config=cfg)

    def execute(self, tasks, on_done):
        ray = self.ray
        refs = {}
        for t in tasks:
            t = self._placed(t)
            ref = self._options(_on_node, max_retries=self.max_retries, retry_exceptions=False,
                                name=f"ablation {t.key}").remote(t, self.train_fn, self.plugins, self._marker,
                                                                  self._token)
            refs[ref] = (t, time.time())
        pending = list(refs)
        try:
            while pending:
                # a short wait, so that Ctrl-C reaches this loop within a second
                done, pending = ray.wait(pending, num_returns=1, timeout=1.0)
                for ref in done:
                    t, t0 = refs[ref]
                    on_done(t, self._summary(ref), time.time() - t0)
        except BaseException:
            self._cancel(pending)
            raise

    def _summary(self, ref) -> dict:
        ray = self.ray
        try:
            return ray.get(ref)
        except ray.exceptions.RayError as e:  # the task failed on every try: the run keeps its checkpoint
            first = next((line for line in str(e).splitlines() if line.strip()), "")
            return {"status": "error", "reason": f"{type(e).__name__} after {self.max_retries} retries: {first}"}

    def _cancel(self, pending) -> None:
        """Stop the runs in flight: each gets a KeyboardInterrupt (it releases its claim and keeps its last
        checkpoint); one still running after :data:`CANCEL_GRACE_S` has its worker killed."""
        ray = self.ray
        for ref in pending:
            ray.cancel(ref)
        _, left = ray.wait(pending, num_returns=len(pending), timeout=CANCEL_GRACE_S) if pending else ([], [])
        for ref in left:
            ray.cancel(ref, force=True)

    def _drop_marker(self) -> None:
        if self._marker:
            Path(self._marker).unlink(missing_ok=True)
        self._marker = self._token = None

    def close(self) -> None:
        self._drop_marker()
        if self._started and self.ray.is_initialized():
            self.ray.shutdown()
        self._started = False
