"""The shipped reference studies, and whether a new study's rows agree with them.

``results/reference/<name>/`` holds a study trained once and committed (its CSVs, tables, plots and
README, without run folders) with ``reference.toml`` saying how it was made: preset, machine,
precision, torch version. The runner writes a user's study to ``results/<preset>/`` (not tracked),
never into a reference, and the report sets each of its rows beside the reference's row of the same
preset, name and settings:

    original: yours 15.40 (1 seed), reference 15.74 ± 0.46 (5 seeds): consistent

Agreement is a two-sided test at ALPHA on the final test error: for one seed of yours, whether it
lies in the reference's 95% prediction interval for a new seed, mean ± t(m-1) * s * sqrt(1 + 1/m);
for two or more, Welch's t-test of the two means. "Same settings" means every seed the two share
has the same config hash (the hash covers every key that can change the numbers, seed included).
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import ConfigError
from ..core.layout import REFERENCE_TOML as REFERENCE_FILE
from ..core.files import read_text
from . import stats as st
from .tables import load_tables

REFERENCE_ROOT = Path(__file__).resolve().parents[2] / "results" / "reference"
REFERENCE_KEYS = {"preset": str, "machine": str, "precision": str, "torch": str, "made": str, "notes": str}
CONSISTENT, DIFFERS, NO_TEST, OTHER_SETTINGS = "consistent", "differs", "no test", "other settings"


@dataclass(frozen=True)
class Reference:
    """A committed study and how it was made (``reference.toml``)."""

    path: Path
    preset: str
    machine: str
    precision: str
    torch: str
    made: str = ""
    notes: str = ""

    @property
    def name(self) -> str:
        return self.path.name

    def describe(self) -> str:
        return f"{self.name}: {self.machine}, {self.precision}, torch {self.torch}"


def read_reference(path) -> Reference:
    path = Path(path)
    file = path / REFERENCE_FILE
    try:
        data = tomllib.loads(read_text(file))
    except FileNotFoundError:
        raise ConfigError(f"{path} is not a reference study: it has no {REFERENCE_FILE}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{file}: not valid TOML ({e})") from None
    for key, typ in REFERENCE_KEYS.items():
        if key in data and not isinstance(data[key], typ):
            raise ConfigError(f"{file}: {key} must be a {typ.__name__}")
    missing = [k for k in ("preset", "machine", "precision", "torch") if k not in data]
    unknown = sorted(set(data) - set(REFERENCE_KEYS))
    if missing or unknown:
        raise ConfigError(f"{file}: " + "; ".join([*(f"missing {k}" for k in missing),
                                                   *(f"unknown key {k}" for k in unknown)]))
    return Reference(path=path, **data)


def references_for(preset: str | None, out, root=None) -> list[Reference]:
    """The references of ``preset`` in ``root`` (default: the repository's), never ``out`` itself.

    ``root`` is a folder of reference studies, or one reference study.
    """
    root = Path(root) if root is not None else REFERENCE_ROOT
    if preset is None or not root.is_dir():
        return []
    out = Path(out).resolve()
    found = []
    # a folder given may be one reference study, or a folder of them
    candidates = [root] if (root / REFERENCE_FILE).is_file() else sorted(root.iterdir())
    for d in (p for p in candidates if (p / REFERENCE_FILE).is_file()):
        if d.resolve() != out:
            ref = read_reference(d)
            if ref.preset == preset:
                found.append(ref)
    return found


def agree(yours: list[float], ref: list[float]) -> tuple[str, float | None]:
    """(verdict, p) of the two samples of final errors; see the module docstring for the tests."""
    import numpy as np
    import scipy.stats as sps

    yours, ref = st.clean(yours), st.clean(ref)
    if not yours or len(ref) < 2 or (len(yours) >= 2 and np.std(yours) == np.std(ref) == 0):
        return NO_TEST, None
    m, mean, s = len(ref), float(np.mean(ref)), float(np.std(ref, ddof=1))
    if len(yours) == 1:
        scale = s * math.sqrt(1 + 1 / m)
        if scale == 0:
            return (CONSISTENT if yours[0] == mean else DIFFERS), None
        p = float(2 * sps.t.sf(abs(yours[0] - mean) / scale, m - 1))
    else:
        p = float(sps.ttest_ind(yours, ref, equal_var=False).pvalue)
    return (CONSISTENT if p >= st.ALPHA else DIFFERS), p


def _by_row(runs):
    done = runs[runs["status"].isin(st.DONE)]
    return {key: g for key, g in done.groupby(["experiment", "variant"], sort=False)}


def compare(runs, reference_runs) -> list[dict]:
    """One record per row of ``runs`` that the reference also has: the two samples and the verdict."""
    theirs = _by_row(reference_runs)
    ref_hash = {(r["experiment"], r["variant"], int(r["seed"])): r["hash"]
                for r in reference_runs.to_dict("records")}
    out = []
    for (exp, variant), g in _by_row(runs).items():
        if (exp, variant) not in theirs:
            continue
        shared = [(int(s), h) for s, h in zip(g["seed"], g["hash"]) if (exp, variant, int(s)) in ref_hash]
        same = bool(shared) and all(ref_hash[(exp, variant, s)] == h for s, h in shared)
        yours, ref = st.clean(g["final_test_error"]), st.clean(theirs[(exp, variant)]["final_test_error"])
        verdict, p = agree(yours, ref) if same else (OTHER_SETTINGS, None)
        out.append({"experiment": exp, "variant": variant, "yours": yours, "reference": ref,
                    "verdict": verdict, "p": p})
    return out


def _sample(x: list[float]) -> str:
    s = st.summarize(x)
    if s.n == 0:
        return "—"
    seeds = f"{s.n} seed{'s' if s.n > 1 else ''}"
    return f"{s.mean:.2f} ({seeds})" if s.n == 1 else f"{s.mean:.2f} ± {s.std:.2f} ({seeds})"


def check_given(root, preset: str | None, out) -> None:
    """ConfigError where a reference folder given by the user (``--reference DIR``) holds no reference study, or
    none of ``preset``: a comparison asked for and not made would otherwise pass in silence."""
    root = Path(root)
    candidates = [root] if (root / REFERENCE_FILE).is_file() else sorted(root.iterdir()) if root.is_dir() else []
    held = [read_reference(d) for d in candidates if (d / REFERENCE_FILE).is_file()]
    if not held:
        raise ConfigError(f"--reference {root} holds no reference study (no {REFERENCE_FILE} in it or in the "
                          f"folders it holds)")
    if preset is not None and not references_for(preset, out, root):
        others = ", ".join(f"{r.name} (preset {r.preset})" for r in held)
        raise ConfigError(f"--reference {root} holds no reference study of preset {preset} besides this folder, "
                          f"only {others}; name one of preset {preset}")


def comparisons(out, runs, preset: str | None, root=None) -> list[tuple[Reference, list[dict]]]:
    """Each reference of ``preset`` (never ``out`` itself) with :func:`compare`'s rows against it; a folder given as
    ``root`` is checked first (:func:`check_given`)."""
    if root is not None and Path(root).is_dir():
        check_given(root, preset, out)
    found = []
    for ref in references_for(preset, out, root):
        _, ref_runs, _ = load_tables(ref.path)
        rows = compare(runs, ref_runs)
        if rows:
            found.append((ref, rows))
    return found


def report_lines(found: list[tuple[Reference, list[dict]]]) -> list[str]:
    """The README section that sets a study's rows beside each reference (:func:`comparisons`)."""
    lines = []
    for ref, rows in found:
        lines += [f"## Beside the reference study `{ref.name}`", "",
                  f"Reference: `{ref.path}` ({ref.machine}; {ref.precision}; torch {ref.torch}"
                  f"{'; ' + ref.made if ref.made else ''}). Final test error (%), mean ± std over seeds. "
                  f"*consistent*: not different at {st.ALPHA} (one seed of yours: inside the reference's 95% "
                  "prediction interval for a new seed; several: Welch's t-test; one test per row, its p "
                  "unadjusted); *other settings*: the runs' "
                  "config hashes differ from the reference's, so they are not the same experiment.", "",
                  "| row | yours | reference | agreement |", "|---|---|---|---|"]
        for r in rows:
            p = f" (unadjusted p {st.format_p(r['p'])})" if r["p"] is not None else ""
            lines.append(f"| {r['experiment']}:{r['variant']} | {_sample(r['yours'])} | {_sample(r['reference'])} "
                         f"| {r['verdict']}{p} |")
        counts = {v: sum(r["verdict"] == v for r in rows) for v in (CONSISTENT, DIFFERS, OTHER_SETTINGS, NO_TEST)}
        lines += ["", "Rows: " + "; ".join(f"{v}: {n}" for v, n in counts.items() if n) + ".", ""]
    return lines


def table(found: list[tuple[Reference, list[dict]]]) -> "pd.DataFrame":
    """The same comparison as data, one line per reference and row (``reference.csv``)."""
    import pandas as pd

    records = []
    for ref, rows in found:
        for r in rows:
            ys, rs = st.summarize(r["yours"]), st.summarize(r["reference"])
            records.append({"reference": ref.name, "experiment": r["experiment"], "variant": r["variant"],
                            "yours_seeds": ys.n, "yours_mean": ys.mean, "yours_std": ys.std,
                            "reference_seeds": rs.n, "reference_mean": rs.mean, "reference_std": rs.std,
                            "verdict": r["verdict"], "p": r["p"]})
    return pd.DataFrame(records)
