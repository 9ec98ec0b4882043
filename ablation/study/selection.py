"""The selection grammar of ``--experiment`` and ``--variants``: which rows of which experiments to run.

``all`` is every experiment's ``in_all`` rows (or every row, with a preset's ``all_rows``), a ladder's
never; a name is ``experiment:variant``, a row of the chosen experiment (or of any, if unique), or a
registered shortcut run on an experiment's ``[base]``.
"""

from __future__ import annotations

from ..core.errors import ConfigError, unknown_choice
from .experiments import Experiment, Variant


DEFAULT_EXPERIMENT = "identity_mappings"  # where a bare shortcut name in --variants lands


def select(experiments: dict[str, Experiment], experiment: str | None = None, variants: str | None = None,
           shortcuts=(), all_rows: bool = False) -> list[Variant]:
    """The rows to run.

    ``variants="all"`` (the default when neither is given) is every experiment's ``in_all``
    rows, or with ``all_rows`` (a preset's choice) every row of every experiment.
    ``experiment="all"`` is every row of every experiment; with ``variants="all"`` as well it is refused,
    as the two name different grids (unless ``all_rows`` makes them one). "Every experiment" leaves out
    ladders (:mod:`ablation.study.ladder`), whose rows are run by naming them or their experiment.
    A name in ``variants`` may be ``experiment:variant``, a row of ``experiment`` (or of any
    experiment, if unique), or a registered shortcut name, which runs that shortcut on the
    experiment's ``[base]``.
    """
    if experiment is not None and experiment != "all" and experiment not in experiments:
        raise unknown_choice("experiment", experiment, [*experiments, "all"])
    if variants is None and experiment is None:
        variants = "all"
    if variants is None:  # a ladder (a depth axis over another experiment's rows) runs only when named
        names = [n for n, e in experiments.items() if not e.axis] if experiment == "all" else [experiment]
        return [v for n in names for v in experiments[n].variants]
    requested = [s.strip() for s in variants.split(",") if s.strip()]
    if not requested:
        raise ConfigError("--variants is empty")  # the grammar of --variants: its name is the clearest
    if experiment == "all" and "all" in requested and not all_rows:
        every = sum(len(e.variants) for e in experiments.values() if not e.axis)
        headline = sum(len(e.in_all) for e in experiments.values())
        raise ConfigError(f"--experiment all with --variants all names two grids: --variants all alone is the "
                          f"headline grid ({headline} rows), --experiment all alone every row of every experiment "
                          f"({every} rows); give one of the two")
    out = []
    for name in requested:
        if name == "all":
            if experiment in (None, "all") and all_rows:
                out += [v for e in experiments.values() if not e.axis for v in e.variants]
            elif experiment in (None, "all"):
                out += [experiments[e].variant(v) for e in experiments for v in experiments[e].in_all]
            else:
                out += experiments[experiment].variants
            continue
        out.append(_resolve(experiments, experiment, name, shortcuts))
    return list({v.key: v for v in out}.values())


def _resolve(experiments, experiment, name, shortcuts) -> Variant:
    if ":" in name:
        exp, var = name.split(":", 1)
        if exp not in experiments:
            raise unknown_choice("experiment", exp, experiments)
        return experiments[exp].variant(var)
    home = experiment if experiment not in (None, "all") else DEFAULT_EXPERIMENT
    if home in experiments:
        for v in experiments[home].variants:
            if v.name == name:
                return v
    holders = [e for e in experiments.values() if any(v.name == name for v in e.variants)]
    if len(holders) == 1:
        return holders[0].variant(name)
    if len(holders) > 1:
        options = ", ".join(f"{e.name}:{name}" for e in holders)
        raise ConfigError(f"variant {name!r} is in several experiments; say which: {options}")
    if name in shortcuts and home in experiments:
        return Variant(experiment=home, name=name, config={"shortcut": name}, label=f"shortcut {name!r}",
                       source="(not in the papers)")
    valid = sorted({v.name for e in experiments.values() for v in e.variants} | set(shortcuts) | {"all"})
    raise unknown_choice("variant", name, valid)
