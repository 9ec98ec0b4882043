"""Whether the rows a claim compares ran under the same settings, except in what the rows themselves set.

A claim "a ends lower than b" means something only where a and b differ in what their rows set (the
shortcut, the depth, ...) and in nothing else. Each run's settings are its config's identity
(:func:`ablation.training.config.identity`, the seed left out) in ``runs.csv``'s ``settings``; each row's
own keys are in the manifest (``keys``). A claim whose rows' runs differ in another key cannot be
tested, and the keys are named. Where either is not recorded (results made before they were) the
check is not made.
"""

from __future__ import annotations

import json

from ..core.outcomes import FINISHED
from ..core.text import isnan



def settings_of(identity: dict) -> str:
    """A run's settings as ``runs.csv`` holds them: its config's identity without the seed, as JSON."""
    return json.dumps({k: v for k, v in identity.items() if k != "seed"}, sort_keys=True, default=str)


def differing(runs, rows: list[str], own_keys: dict) -> list[str] | None:
    """The config keys, set by none of ``rows`` themselves, in which their finished runs differ (sorted); None
    where a row's own keys or a run's settings are not recorded. ``runs``: one experiment's runs."""
    if any(own_keys.get(r) is None for r in rows) or "settings" not in runs:
        return None
    sub = runs[runs["variant"].isin(rows) & runs["status"].isin(FINISHED)]
    texts = list(sub["settings"])
    if any(t is None or (isinstance(t, float) and isnan(t)) for t in texts):
        return None
    configs = [json.loads(t) for t in texts]
    own = {k for r in rows for k in own_keys[r]}
    keys = set().union(*configs) - own if configs else set()
    return sorted(k for k in keys if len({json.dumps(c.get(k), sort_keys=True) for c in configs}) > 1)


def claim_pool(claim: dict, rows: list[str]) -> list[str]:
    """The rows a claim compares: those it names, and for ``lowest`` without ``among`` every row."""
    named = [*(claim.get(k) or [] for k in ("lower", "lowest", "close", "not_worse", "among"))]
    names = [n for part in named for n in ([part] if isinstance(part, str) else part)]
    if claim.get("lowest") and not claim.get("among"):
        names += rows
    return list(dict.fromkeys(names))


def mark_claims(meta: dict, runs) -> list[dict]:
    """The experiment's claims, each with ``settings_differ`` (the keys) where its rows' runs differ in a key
    that none of them sets."""
    own = {r["variant"]: r.get("keys") for r in meta["rows"]}
    out = []
    for c in meta.get("claims", []):
        keys = None if c.get("identity_at_init") else differing(runs, claim_pool(c, list(own)), own)
        out.append({**c, "settings_differ": keys} if keys else c)
    return out


def readme_note(name: str, meta: dict, runs) -> str | None:
    """A line for the scale table where the rows of experiment ``name`` ran under different settings."""
    own = {r["variant"]: r.get("keys") for r in meta["rows"]}
    keys = differing(runs, list(own), own)
    if not keys:
        return None
    return (f"The rows of {name} ran under different settings: {', '.join(keys)} differ (keys the rows do not set "
            f"themselves); its claims over such rows cannot be tested.")
