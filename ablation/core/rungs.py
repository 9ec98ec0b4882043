"""A ladder's rungs as a results folder's manifest holds them, for the runner and the report alike.

A ladder (:mod:`ablation.study.ladder`) runs experiments' rows at several values of one setting; the
manifest keeps its axis (``rows_of``: the source experiments, ``key``, ``values``, ``paper_at``, ``rows``:
each row's source row, ``sources``: each row's source experiment, ``claims``) on the ladder's experiment
and each row's value as ``rung``.
"""

from __future__ import annotations

DEPTH = "depth"  # the ladder key that sets the net's depth rather than a config key


RUNG_NOUNS = {DEPTH: ("depth", "depths"), "steps": ("length", "lengths")}  # the rest: the key itself


def rung_noun(key: str, plural: bool = False) -> str:
    """What one rung of a ladder over ``key`` is called in text: a depth, a length (of training) for ``steps``."""
    one, many = RUNG_NOUNS.get(key, (key, key if key.endswith("s") else f"{key}s"))
    return many if plural else one


def value_text(value) -> str:
    """A rung's value as it appears in row names, columns and tables: 110, 2000, 0.05, fashion-mnist."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def axis_of(meta: dict) -> dict | None:
    """An experiment's ladder axis as the manifest holds it, or None; a manifest written before ladders named
    their key holds ``depths`` alone: a depth ladder of He 2016 Table 1, whose numbers are ResNet-110's."""
    axis = meta.get("axis")
    if not axis:
        return None
    if "key" not in axis:
        axis = {**axis, "key": DEPTH, "values": axis["depths"], "paper_at": 110}
    if isinstance(axis["rows_of"], str):  # one source, before ladders could take several
        axis = {**axis, "rows_of": [axis["rows_of"]], "sources": {r: axis["rows_of"] for r in axis["rows"]}}
    return axis


def rung_of(row: dict):
    """A ladder row's rung value as the manifest holds it (``depth`` before ladders named their key)."""
    return row.get("rung", row.get("depth"))
