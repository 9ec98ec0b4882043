"""A study from Python: :class:`Study`, the same calls as ``python -m ablation.run`` (:mod:`ablation.api.pipeline`).

    import ablation
    study = ablation.Study(variants="original,scale-0.5-1", seeds=2, set={"steps": 100})
    study.dry_run()      # the grid and its cost, as a DataFrame; nothing trained
    study.run(jobs=2)    # trains what is not finished (claims, resume, progress), then writes the report
    study.rows, study.findings, study.figure("identity_mappings_errors")

Bad options raise :class:`~ablation.ConfigError` with the command line's words. Nothing is printed but the
progress of :meth:`Study.run` (none with ``progress=False``); the notes the command line prints are in
:attr:`Study.notes`.
"""

from __future__ import annotations

import time

from . import pipeline
from .results import Results


class Study(Results):
    """The runs of a study, and once trained its results (:class:`ablation.api.results.Results`).

    ``variants``, ``experiment``, ``preset``, ``seeds``, ``dataset``, ``depth``, ``device`` and ``out`` are the
    options of ``python -m ablation.run`` of the same names, ``set`` its ``--set`` keys as a dict,
    ``plugins`` its ``--plugin`` files or modules; ``experiments`` its ``--experiments``: a folder of your own
    experiment files (or a list of them), read beside the shipped ones (default: ``./experiments`` where there
    is one).
    """

    def __init__(self, variants: str | None = None, experiment: str | None = None, preset: str = "quick",
                 seeds: int | None = None, out=None, set: dict | None = None, dataset: str | None = None,
                 depth: int | None = None, device: str | None = None, plugins=(), experiments=None):
        plugins = pipeline.plugin_list(plugins)
        pipeline.load_plugins(plugins)
        self.plan = pipeline.plan(variants=variants, experiment=experiment, preset=preset, seeds=seeds,
                                 dataset=dataset, depth=depth, device=device, out=out, settings=set,
                                 plugins=plugins, experiments=experiments)
        super().__init__(self.plan.out, plugins)
        given = {"variants": variants, "experiment": experiment, "preset": preset, "seeds": seeds, "out": out,
                 "set": set, "dataset": dataset, "depth": depth, "device": device, "plugins": list(plugins) or None,
                 "experiments": experiments}
        self._call = "ablation.Study(" + ", ".join(f"{k}={v!r}" for k, v in given.items() if v is not None) + ")"
        self.last_run: dict | None = None  # the counts of the last run(): trained, skipped, errors, wall_s, ...

    @property
    def notes(self) -> list[str]:
        """What the options changed that one may not expect (the command line prints these as ``note:``)."""
        return list(self.plan.notes)

    def dry_run(self, jobs=None, backend: str = "local", force: bool = False, **ray) -> "pd.DataFrame":
        """One line per run (row, seed, hash, net, GFLOP, the paper's number, status); nothing is trained.

        ``attrs["cost"]`` holds what the runs left to train cost on that backend (run-hours, wall seconds,
        the rate and where it came from), or None where nothing is left; ``attrs["arch_map"]`` the architectures
        the preset runs smaller than their rows name them (``quick runs resnet110 as resnet32 (...)``), or None.
        """
        import pandas as pd

        from ..study.listing import arch_map_line, grid_cost, grid_rows

        p = self.plan
        jobs = pipeline.parse_jobs(jobs)
        pipeline.check_backend(backend, jobs, **ray)
        with pipeline.open_backend(p, backend, jobs, force, **ray) as b:
            records = grid_rows(p.runs, p.results, {(v.experiment, v.name): v for v in p.rows})
            cost = grid_cost(p.runs, records, p.results, b)
        table = pd.DataFrame(records).drop(columns="train_flops")
        table.attrs["cost"] = cost
        table.attrs["arch_map"] = arch_map_line(p.runs, p.preset.name)
        return table

    def run(self, jobs=None, backend: str = "local", force: bool = False, progress: bool = True, train_fn=None,
            **ray) -> "Study":
        """Train every run not finished, then rebuild the report; returns the study, read afresh.

        As ``python -m ablation.run``: finished runs are skipped, interrupted ones resume from their last
        checkpoint, a run another process trains is left to it. ``jobs`` runs at once (default: one per CPU
        core, one per GPU); ``backend`` ``"local"`` or ``"ray"`` (then ``address``, ``gpus_per_run``,
        ``cpus_per_run``). ``progress``: a progress bar (a notebook's where tqdm finds one) and a line per run.
        Ctrl-C (a notebook's interrupt) stops the runs, each keeping its last checkpoint, and raises
        KeyboardInterrupt; the same call resumes.
        """
        started = time.time()
        p = self.plan
        n_jobs = pipeline.parse_jobs(jobs)
        pipeline.check_backend(backend, jobs, **ray)
        command = f"{self._call}.run(" + ", ".join(
            f"{k}={v!r}" for k, v in {"jobs": jobs, "backend": backend if backend != "local" else None,
                                     "force": force or None, **ray}.items() if v is not None) + ")"
        bar = _notebook_bar() if progress else _Silent
        try:
            with pipeline.open_backend(p, backend, n_jobs, force, train_fn, check_memory=True, **ray) as b:
                result = pipeline.execute(p, b, command=command, started=started, train_fn=train_fn, force=force,
                                         quiet=not progress, jobs=n_jobs, bar=bar)
        finally:
            self.refresh()
        self.last_run = result
        if result["interrupted"]:
            raise KeyboardInterrupt(f"{result['done']} of {result['todo']} runs finished this time; each unfinished "
                                    f"run keeps its last checkpoint. Call run() again to resume")
        return self

    def _repr_html_(self) -> str:
        from .display import plan_html

        if not self.plan.results.has_manifest():
            return plan_html(self, self.notes)
        return super()._repr_html_()


def _notebook_bar():
    """tqdm's notebook bar where one can be drawn (Jupyter with ipywidgets), else its text bar.

    Without ipywidgets, tqdm.auto would warn on stderr and fall back to the text bar anyway.
    """
    import importlib.util

    if importlib.util.find_spec("ipywidgets") is None:
        from tqdm import tqdm
    else:
        from tqdm.auto import tqdm
    return tqdm


class _Silent:
    """A progress bar that shows nothing and says nothing: ``run(progress=False)``."""

    def __init__(self, *args, **kwargs):
        pass

    def update(self, n=1):
        pass

    def close(self):
        pass

    @staticmethod
    def write(*args, **kwargs):
        pass
