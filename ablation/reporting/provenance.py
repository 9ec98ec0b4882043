"""Where each number came from: the machine (CPU model or GPU name), the precision that ran and torch's version.

Each run's ``summary.json`` records them (:func:`ablation.training.runtime.provenance`); the same config
hash gives other last digits on another machine or in another precision, so a row whose seeds come
from several is marked in its table, and the README says which seeds came from where. Runs recorded
before summaries carried them (the shipped references' ``runs.csv``) read as ``unknown``.
"""

from __future__ import annotations

from ..core.text import isnan

PROVENANCE_FIELDS = ("machine", "precision", "torch")
UNKNOWN = "unknown"


def _value(v) -> str:
    return UNKNOWN if v is None or (isinstance(v, float) and isnan(v)) or v == "" else str(v)


def row_provenance(runs) -> dict:
    """``machines``, ``precisions``, ``torch`` (each the distinct values of a row's finished runs, ``; ``-joined)
    and ``mixed`` (the seeds come from more than one machine, precision or torch) for rows.csv."""
    out = {}
    for field, column in zip(PROVENANCE_FIELDS, ("machines", "precisions", "torch")):
        values = sorted({_value(v) for v in runs[field]}) if field in runs and len(runs) else []
        out[column] = "; ".join(values)
    out["mixed"] = mixed_kinds(out) != []
    return out


def mixed_kinds(row: dict) -> list[str]:
    """What a row's seeds mix: ``machines``, ``precisions``, ``torch versions``."""
    names = {"machines": "machines", "precisions": "precisions", "torch": "torch versions"}
    return [name for column, name in names.items() if "; " in str(row.get(column) or "")]


def cell_note(row: dict) -> str | None:
    """``mixed machines, precisions`` for a row whose seeds mix them, for its table cell."""
    kinds = mixed_kinds(row)
    return f"mixed {', '.join(kinds)}" if kinds else None


def _seeds(seeds) -> str:
    seeds = sorted(seeds)
    return f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"


def readme_lines(done) -> list[str]:
    """The README's section on where the finished runs (``done``) ran: one line per machine, precision and torch."""
    if done.empty:
        return []
    keys = [tuple(_value(r.get(f)) for f in PROVENANCE_FIELDS) for r in done.to_dict("records")]
    groups = {}
    for key, r in zip(keys, done.to_dict("records")):
        groups.setdefault(key, {}).setdefault(f"{r['experiment']}:{r['variant']}", set()).add(int(r["seed"]))
    lines = ["## Where the runs ran", ""]
    if len(groups) == 1:
        (machine, precision, torch), = groups
        where = (f"{machine}, {precision}, torch {torch}" if (machine, precision, torch) != (UNKNOWN,) * 3 else
                 "machine, precision and torch not recorded (made before summaries recorded them)")
        lines += [f"All {len(done)} finished runs: {where}.", ""]
        return lines
    lines += ["The seeds of this folder come from more than one machine, precision or torch version; rows that mix "
              "them are marked in their tables (the same config gives other last digits on each).", ""]
    for (machine, precision, torch), rows in sorted(groups.items()):
        by_seeds = {}
        for row, seeds in rows.items():
            by_seeds.setdefault(tuple(sorted(seeds)), []).append(row)
        parts = [f"{_seeds(seeds)} of {', '.join(sorted(names))}" for seeds, names in sorted(by_seeds.items())]
        lines.append(f"- {machine}, {precision}, torch {torch}: {'; '.join(parts)}")
    return lines + [""]
