"""The pipeline of one study from its options to its report, shared by ``python -m ablation.run`` and ``ablation.Study``.

:func:`plan` turns the options into runs (the rows selected, each run's config and hash) and checks
every option first, each bad one a :class:`~ablation.ConfigError` with the command line's words;
:func:`open_backend` is what trains them; :func:`execute` trains what is not finished (claims,
resume, the progress of :mod:`ablation.study.grid`), then rebuilds the report and logs the
invocation. Nothing here prints: notes come back in the plan, counts in the result.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import ConfigError, unknown_choice
from ..core.layout import ResultsDir, refuse_reference
from ..core.folder_checks import check_folder, check_links
from ..core.locks import folder_lock
from ..study import catalogue
from ..study import experiments as ex
from ..study.depth import check_depth
from ..study.expansion import expand, sweeps_depth
from ..study.grid import prepare_data, run_grid, to_train
from ..study.invocation import log_invocation
from ..study.manifest import manifest
from ..nets.plugins import record
from ..study.backends import InProcess
from ..study.pool import local_backend
from ..study.folder_settings import refuse_other_runs, refuse_other_settings
from ..study.study_keys import refuse_study_keys
from ..study.selection import select
from ..training.config import check_settings


@dataclass
class Plan:
    """A study's runs and where they go, before anything is trained."""

    experiments: dict
    preset: "ex.Preset"
    out: Path
    rows: list  # the selected rows (study.experiments.Variant)
    runs: list  # one study.experiments.Run per row and seed
    overrides: dict  # dataset, depth, device as given (None: not given)
    settings: dict  # the --set keys
    plugins: tuple = ()
    notes: list = field(default_factory=list)  # what the options changed that the user may not expect
    recorded: list = field(default_factory=list)  # the plugins as the manifest records them (nets.plugins)

    @property
    def results(self) -> ResultsDir:
        return ResultsDir(self.out)

    @property
    def changed(self) -> dict:
        """What the options set over the preset, as the manifest records it."""
        return changed_settings(self.overrides, self.settings)


def changed_settings(overrides: dict, settings: dict) -> dict:
    """The overrides given (not None) and the ``--set`` keys: what a study changes over its preset."""
    return {**{k: v for k, v in overrides.items() if v is not None}, **settings}


def check_numbers(seeds: int | None, depth: int | None) -> None:
    for flag, value in (("--seeds", seeds), ("--depth", depth)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise ConfigError(f"{flag} must be a whole number, got {value!r}")
    if seeds is not None and seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {seeds}")
    if depth is not None:
        check_depth(depth, "--depth")


def check_options(**options) -> None:
    """ConfigError, with the command line's words, for an option of another type than the command line gives:
    text for the names (``variants``, ``experiment``, ``preset``, ``dataset``, ``device``), a path for ``out``
    (None: the default)."""
    for name, value in options.items():
        flag = f"--{name.replace('_', '-')}"
        if name == "out":
            if value is not None and not isinstance(value, (str, os.PathLike)):
                raise ConfigError(f"{flag} must name a folder, got {value!r}")
        elif (value is not None or name == "preset") and not isinstance(value, str):
            raise ConfigError(f"{flag} must be text, got {value!r}")


def plugin_list(plugins) -> tuple:
    """``--plugin``'s values from Python: one module or file, or a list of them; ConfigError for anything else."""
    if plugins is None:
        return ()
    if isinstance(plugins, (str, os.PathLike)):
        plugins = (plugins,)
    try:
        plugins = tuple(plugins)
    except TypeError:
        raise ConfigError(f"--plugin must name a module or a .py file (or a list of them), got {plugins!r}") from None
    bad = [p for p in plugins if not isinstance(p, (str, os.PathLike))]
    if bad:
        raise ConfigError(f"--plugin must name a module or a .py file, got {bad[0]!r}")
    return tuple(os.fspath(p) for p in plugins)


_loaded: set = set()  # plugins this process has imported: a second study naming one must not register it twice


def load_plugins(plugins) -> None:
    from ..nets import registry

    for spec in plugins:
        if spec not in _loaded:
            registry.load_plugin(spec)
            _loaded.add(spec)


def plan(*, variants: str | None = None, experiment: str | None = None, preset: str = "quick",
         seeds: int | None = None, dataset: str | None = None, depth: int | None = None, device: str | None = None,
         out=None, settings: dict | None = None, plugins=(), experiments=None) -> Plan:
    """The runs of a study, every option checked; nothing is written or trained.

    ``plugins`` (loaded by the caller, :func:`load_plugins`) are what a worker process loads before it trains.
    ``experiments``: the user's folders of experiment files, read beside the shipped ones (``--experiments``;
    None: ``./experiments`` where there is one, :func:`ablation.study.catalogue.user_folders`).
    """
    from ..nets import registry

    check_options(variants=variants, experiment=experiment, preset=preset, dataset=dataset, device=device, out=out)
    check_numbers(seeds, depth)
    settings = check_settings({} if settings is None else settings)
    refuse_study_keys("--set", settings, "=")
    folders = catalogue.user_folders(experiments)
    experiments = catalogue.load_experiments(folders)
    presets = catalogue.load_presets(folders)
    if preset not in presets:
        raise unknown_choice("preset", preset, presets)
    chosen = presets[preset]
    folder = Path("results") / chosen.name if out is None else out
    if str(folder).strip():  # an empty name is check_folder's one line
        refuse_reference(folder, f"--out {folder}", f"your own runs go to results/{chosen.name} (the default --out) "
                         f"or to another folder of yours")
    folder = check_folder(folder, "results", "--out")
    check_links(folder, f"--out {folder}")
    overrides = {"dataset": dataset, "depth": depth, "device": device}
    # an unreadable manifest is one line now, not after the data loads; one folder holds one setting
    old = ResultsDir(folder).read_manifest(missing_ok=True)
    refuse_other_settings(old, chosen.name, changed_settings(overrides, settings), f"--out {folder}")
    rows = select(experiments, experiment, variants, registry.list_shortcuts(), chosen.all_rows)
    refuse_laddered_settings(experiments, rows, settings)
    notes = []
    sweeps = sorted({v.experiment for v in rows if sweeps_depth(experiments[v.experiment])})
    if depth is not None and sweeps:
        notes.append(f"--depth {depth} leaves the depth sweep of {', '.join(sweeps)} as it is")
    runs = expand(experiments, rows, chosen, seeds, overrides, settings=settings, notes=notes)
    refuse_other_runs(old, runs, f"--out {folder}")
    notes += outdated_notes(runs, ResultsDir(folder))
    return Plan(experiments, chosen, folder, rows, runs, overrides, settings, tuple(plugins),
                list(dict.fromkeys(notes)), record(plugins))


def refuse_laddered_settings(experiments: dict, rows, settings: dict) -> None:
    """ConfigError where ``--set`` gives the key that a selected ladder varies: it would replace every rung."""
    for name in dict.fromkeys(v.experiment for v in rows):
        axis = experiments[name].axis
        if axis and axis["key"] in settings:
            raise ConfigError(f"--set {axis['key']}={settings[axis['key']]}: {name} ladders {axis['key']} over "
                              f"{', '.join(map(str, axis['values']))}, and --set would make every rung the same; "
                              f"leave {axis['key']} to the ladder")


def outdated_notes(runs, results: ResultsDir) -> list[str]:
    """What the runner will train again because an older rule decided its outcome
    (:mod:`ablation.core.outcomes`): one note per reason, naming the runs."""
    by_reason = {}
    for r in {r.hash: r for r in runs}.values():
        why = results.run(r.hash).outdated()
        if why is not None:
            by_reason.setdefault(why, []).append(f"{r.experiment}:{r.variant} seed {r.seed}")
    return [f"training {len(keys)} finished run(s) again from the start ({', '.join(keys[:3])}"
            f"{', ...' if len(keys) > 3 else ''}): {why}" for why, keys in by_reason.items()]


def parse_jobs(value) -> int | None:
    """``--jobs``: a whole number >= 1, or None / 'auto' for one per core (one per GPU)."""
    if value is None or (isinstance(value, str) and value == "auto"):
        return None
    try:
        if isinstance(value, (bool, float)):  # True is 1 and 2.5 is 2 to int(): neither is what was meant
            raise ValueError
        jobs = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"--jobs must be a whole number or 'auto', got {value!r}") from None
    if jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {jobs}")
    return jobs


def check_backend(backend: str, jobs=None, address=None, gpus_per_run=None, cpus_per_run=None) -> None:
    """The backend's options, each wrong combination one line."""
    if backend not in ("local", "ray"):
        raise unknown_choice("backend", backend, ["local", "ray"])
    if backend != "ray":
        given = [flag for flag, value in (("--address", address), ("--gpus-per-run", gpus_per_run),
                                          ("--cpus-per-run", cpus_per_run)) if value is not None]
        if given:
            raise ConfigError(f"{given[0]} applies to --backend ray only")
        return
    if jobs not in (None, "auto"):
        raise ConfigError("--jobs applies to --backend local; with --backend ray, --gpus-per-run and --cpus-per-run "
                          "set how many runs share a node")
    from ..study.ray_backend import check_request, import_ray

    check_request(gpus_per_run, 1 if cpus_per_run is None else cpus_per_run)
    import_ray()  # before any data is loaded: without Ray, the install command is the one line


def _check_memory(p: Plan, configs: list[dict]) -> None:
    """ConfigError naming the first of ``configs`` whose memory estimate exceeds this machine's."""
    from ..training.feasibility import check_fits

    names = {id(r.config): r for r in p.runs}
    for cfg in configs:
        try:
            check_fits(cfg)
        except ConfigError as e:
            run = names.get(id(cfg))
            raise ConfigError(f"{run.experiment}:{run.variant}: {e}" if run else str(e)) from None


def open_backend(p: Plan, backend: str = "local", jobs: int | None = None, force: bool = False, train_fn=None,
                 address=None, gpus_per_run=None, cpus_per_run=None, check_memory: bool = False):
    """The backend asked for, sized for the runs of ``p`` that will train (a context manager).

    ``check_memory``: first refuse (ConfigError) a run that will train here and does not fit this machine's
    memory, before the data loads; on Ray each run is checked where it trains (:func:`ablation.training.loop.train`).
    """
    configs = to_train(p.runs, p.results, force)
    if check_memory and backend == "local":
        _check_memory(p, configs)
    if backend == "ray":
        from ..study.ray_backend import RayBackend

        refuse_main_shortcuts(configs, "with --backend ray, each run trains in a Ray worker")
        return RayBackend(address, gpus_per_run, cpus_per_run or 1, configs, p.plugins, train_fn)
    chosen = local_backend(jobs, len(configs), configs, p.plugins, train_fn)
    if not isinstance(chosen, InProcess):
        refuse_main_shortcuts(configs, f"{chosen.jobs} runs at once train in worker processes (jobs="
                                       f"{jobs or 'auto'})", "jobs=1 (--jobs 1)")
    return chosen


def refuse_main_shortcuts(configs: list[dict], why: str, instead: str = "--backend local --jobs 1") -> None:
    """ConfigError, before anything trains, where a run's shortcut was registered in ``__main__`` (a notebook, a
    script's own code): this process alone knows it, so a worker process would fail on every such run."""
    from ..nets.registry import get_shortcut

    for cfg in configs:
        entry = get_shortcut(cfg["shortcut"])
        if entry.cls.__module__ in ("__main__", "__mp_main__"):
            raise ConfigError(f"shortcut {cfg['shortcut']!r} is registered in __main__, which this process alone "
                              f"knows, and {why}; train with {instead}, or register it in a plugin file "
                              f"(--plugin FILE, plugins=[FILE])")


def execute(p: Plan, backend, *, command: str, started: float | None = None, train_fn=None, force: bool = False,
            quiet: bool = False, jobs: int | None = None, bar=None) -> dict:
    """Train the runs of ``p`` not finished, on ``backend``; then, unless interrupted, rebuild the report.

    Returns :func:`ablation.study.grid.run_grid`'s counts with ``wall_s`` (and ``plugin_problems``: the report's
    line for each plugin an earlier invocation recorded that is now missing or changed). ``command`` is how the
    invocation log names this call; ``bar`` the tqdm class of the progress bar.
    """
    started = started or time.time()
    prepare_data(p.runs, quiet=quiet)
    out, results = p.out, p.results
    backend.check_storage(out)
    with folder_lock(out):  # another invocation may be merging its rows into the same manifest
        results.sweep()
        # checked again under the lock: another invocation may have made the folder one of other settings since
        # the plan read it, and the check and the manifest that records this setting must be one step
        old = results.read_manifest(missing_ok=True)
        refuse_other_settings(old, p.preset.name, p.changed, f"--out {out}")
        refuse_other_runs(old, p.runs, f"--out {out}")
        results.write_manifest(manifest(old, p.preset, p.experiments, p.rows, p.runs, p.changed, p.recorded))
    result = run_grid(p.runs, out, train_fn=train_fn, force=force, quiet=quiet, backend=backend, bar=bar)
    if result["interrupted"]:
        with folder_lock(out):
            log_invocation(results, command, time.time() - started, result, jobs)
        result["wall_s"] = time.time() - started
        return result
    from ..reporting import report

    with folder_lock(out):
        result["plugin_problems"] = report.build(out, plugins=p.plugins)["plugin_problems"]
        result["wall_s"] = time.time() - started
        log_invocation(results, command, result["wall_s"], result, jobs)
        report.refresh_readme(out)  # now with this invocation's wall time
    return result
