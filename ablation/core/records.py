"""The shape and range of every record the project reads back, so that a damaged one is named, never taken for a result.

A record that parses is not yet a record: ``{}``, a summary whose ``final_test_error`` is ``1e9`` or
``"abc"``, a line of ``runs.csv`` cut in the middle would each show in a table as a number that no run
made. Each check here returns why a record is not what its writer writes (one phrase, for the line
that names the file), or None where it is.

* a run's summary (``summary.json``, :mod:`ablation.training.record`): a finished status and its final
  test error, every other field of the right type and range;
* a history point (a line of ``history.jsonl`` or ``history.csv``);
* a line of the report's ``runs.csv`` (:mod:`ablation.reporting.tables`), of ``lesion.csv``, ``signal.csv``
  and ``init_identity.csv``;
* a line of the invocation log.

Errors are percentages (0-100); ``None`` (a CSV's empty cell, read as NaN) stands for a value not recorded.
"""

from __future__ import annotations

import math

from .outcomes import FINISHED, OUTDATED

STATUSES = (*FINISHED, OUTDATED, "error", "incomplete", "not run")  # what runs.csv may say of a run
_HASH_CHARS = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-")


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check(record: dict, field: str, lo=None, hi=None, whole=False, required=False, finite=True) -> str | None:
    """Why ``record[field]`` is not a number in [lo, hi] (whole where ``whole``), or None where it is or is absent."""
    v = record.get(field)
    if _missing(v):
        return f"no {field}" if required else None
    if not _number(v) or (finite and not math.isfinite(v)):
        return f"{field} {v!r} is not a {'whole ' if whole else ''}number"
    if whole and v != int(v):
        return f"{field} {v!r} is not a whole number"
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        span = f">= {lo}" if hi is None else f"between {lo} and {hi}"
        return f"{field} {v!r} is not {span}"
    return None


def _first(*problems) -> str | None:
    return next((p for p in problems if p), None)


def _text(record: dict, field: str, required=False) -> str | None:
    v = record.get(field)
    if _missing(v):
        return f"no {field}" if required else None
    return None if isinstance(v, str) else f"{field} {v!r} is not text"


def is_hash(v) -> bool:
    """A run's hash as the runner names its folder: it cannot point anywhere else."""
    return isinstance(v, str) and bool(v) and set(v) <= _HASH_CHARS


def summary_problem(s) -> str | None:
    """Why ``s`` is not a finished run's summary as the trainer writes it, or None."""
    if not isinstance(s, dict):
        return "not a JSON object"
    if s.get("status") not in FINISHED:
        return f"status {s.get('status')!r} is not one of {', '.join(FINISHED)}"
    unstable = s.get("test_loss_unstable_at", [])
    return _first(
        _check(s, "final_test_error", 0, 100, required=True), _check(s, "best_test_error", 0, 100),
        _check(s, "final_train_error", 0, 100), _check(s, "outcome_rule", 1, whole=True),
        _check(s, "iterations", 0, whole=True), _check(s, "epochs", 0), _check(s, "params", 0, whole=True),
        _check(s, "flops", 0, whole=True), _check(s, "time_s", 0), _check(s, "images_per_s", 0),
        _check(s, "threads", 1, whole=True), _text(s, "reason"), _text(s, "device"), _text(s, "config_hash"),
        *(_text(s, k) for k in ("machine", "precision", "torch")),
        None if isinstance(unstable, list) and all(_number(i) for i in unstable) else
        f"test_loss_unstable_at {unstable!r} is not a list of iterations")


def history_problem(h) -> str | None:
    """Why ``h`` is not a history point (``history.jsonl``'s line, or ``history.csv``'s less its hash), or None.

    Losses may be missing (not finite at that point); grad_norms may hold non-finite norms (a diverged step).
    """
    if not isinstance(h, dict):
        return "not a JSON object"
    return _first(_check(h, "iteration", 0, whole=True, required=True), _check(h, "epoch", 0), _check(h, "lr", 0),
                  _check(h, "train_error", 0, 100), _check(h, "test_error", 0, 100), _check(h, "train_loss"),
                  _check(h, "test_loss"), _check(h, "wall_time", 0), _check(h, "images_per_s", 0),
                  _gates(h.get("gate_mean")), _norms(h.get("grad_norms")))


def _gates(g) -> str | None:
    if _missing(g) or (isinstance(g, dict) and all(_number(v) and 0 <= v <= 1 for v in g.values())):
        return None
    return f"gate_mean {g!r} is not a table of gate means in [0, 1]"


def _norms(n) -> str | None:
    if _missing(n) or (isinstance(n, list) and all(_number(v) and not v < 0 for v in n)):
        return None
    return f"grad_norms {n!r} is not a list of norms"


def run_line_problem(r: dict) -> str | None:
    """Why ``r`` is not a line of a report's ``runs.csv``, or None: a hash, a known status, and a finished
    run's final test error."""
    if not is_hash(r.get("hash")):
        return f"hash {r.get('hash')!r} is not a run's hash"
    if r.get("status") not in STATUSES:
        return f"run {r['hash']}: status {r.get('status')!r} is not one of {', '.join(STATUSES)}"
    problem = _first(
        _check(r, "final_test_error", 0, 100, required=r["status"] in FINISHED), _check(r, "best_test_error", 0, 100),
        _check(r, "final_train_error", 0, 100), _check(r, "seed", 0, whole=True, required="seed" in r),
        _check(r, "iterations", 0, whole=True), _check(r, "outcome_rule", 1, whole=True), _check(r, "time_s", 0),
        *(_text(r, k, required=k in r) for k in ("experiment", "variant")))
    return f"run {r['hash']}: {problem}" if problem else None


def history_line_problem(h: dict) -> str | None:
    """Why ``h`` is not a line of ``history.csv`` (a history point with its run's hash), or None."""
    if not is_hash(h.get("hash")):
        return f"hash {h.get('hash')!r} is not a run's hash"
    problem = _first(_check(h, "iteration", 0, whole=True, required=True), _check(h, "epoch", 0), _check(h, "lr", 0),
                     _check(h, "train_error", 0, 100), _check(h, "test_error", 0, 100), _check(h, "wall_time", 0),
                     _check(h, "images_per_s", 0))
    return f"run {h['hash']}: {problem}" if problem else None


def cache_line_problem(r: dict) -> str | None:
    """Why ``r`` is not a line of a table the report keeps (``lesion.csv``, ``signal.csv``, ``init_identity.csv``,
    ``signal_ladder.csv``), or None; a hash where the table has one."""
    if "hash" in r and not is_hash(r["hash"]):
        return f"hash {r['hash']!r} is not a run's hash"
    problem = _first(_check(r, "test_error", 0, 100), _check(r, "k", 0, whole=True), _check(r, "draw", 0, whole=True),
                     _check(r, "max_residual", 0, finite=False), _check(r, "unit", -1, whole=True))
    return (f"run {r['hash']}: {problem}" if "hash" in r else problem) if problem else None


INVOCATION_TYPES = {"command": str, "finished": str, "machine": str, "interrupted": bool}


def invocation_problem(i) -> str | None:
    """Why ``i`` is not a line of the invocation log as :func:`ablation.study.invocation.log_invocation` writes it."""
    if not isinstance(i, dict):
        return "not a JSON object"
    for key, kind in INVOCATION_TYPES.items():
        if not isinstance(i.get(key), kind):
            return f"{key} {i.get(key)!r} is not {kind.__name__}"
    if i.get("jobs") is not None and _check(i, "jobs", 1, whole=True):
        return _check(i, "jobs", 1, whole=True)
    return _first(_check(i, "wall_s", 0, required=True),
                  *(_check(i, k, 0, whole=True, required=True) for k in ("trained", "skipped", "errors")))
