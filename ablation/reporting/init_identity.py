"""Whether a net computes the identity through every unit at initialisation; trains nothing.

ReZero, SkipInit, Fixup and NF-ResNets start each unit at ``y_l = h(x_l)``: the branch's multiplier
(ReZero, SkipInit; NF's ``skip_gain``) or its last convolution (Fixup) is 0, so ``y_l - h(x_l) = 0``
exactly, and where the unit keeps the shape and has nothing after the sum, ``x_{l+1} = x_l``. For one net we build it as a run's config says (its seed drawing
the init), pass a fixed batch of unit-Gaussian images through it in training mode, as at the first
step, and record per unit

    r_l = max |y_l - h(x_l)| / rms(h(x_l))

and the net's ``max_l r_l``. The report's ``identity_at_init`` claims read these numbers
(:func:`ablation.reporting.claim_tests.check_identity`); they are kept in ``init_identity.csv`` so that results
committed without their run folders still check them.
"""

from __future__ import annotations

import torch

from ..core.errors import OneLineError
from ..core.layout import ResultsDir
from .tables import keep_table, read_table

INIT_IDENTITY_FIELDS = ("hash", "max_residual")
IMAGES = 8  # a batch for BN's statistics; the identity holds image by image


def unit_residuals(model, x) -> list[float]:
    """``r_l`` of every unit of ``model`` on input images ``x`` (module doc)."""
    from ..nets.modern import unit_terms

    out = []
    with torch.no_grad():
        h = model.stem(x)
        for unit in model.units():
            t = unit_terms(unit, h)
            scale = t["shortcut"].float().pow(2).mean().sqrt().clamp_min(1e-12)
            out.append(float((t["sum"] - t["shortcut"]).abs().max() / scale))
            h = t["output"]
    return out


def net_residual(cfg: dict) -> float:
    """``max_l r_l`` of the net of config ``cfg`` (a run's stored config) as built, before training."""
    from ..training.config import DEFAULTS, stored
    from ..training.data import DATASETS
    from ..training.step import initial_model

    cfg = {**DEFAULTS, **stored(cfg)}
    info = DATASETS[cfg["dataset"]]
    size = cfg.get("image_size") or info.size
    model = initial_model(cfg, info.classes, info.channels).train()
    x = torch.randn(IMAGES, info.channels, size, size, generator=torch.Generator().manual_seed(0))
    return max(unit_residuals(model, x))


def samples(out, manifest: dict, runs, keep: bool = True) -> dict[str, dict[str, list]]:
    """``{experiment: {variant: [max_l r_l per seed]}}`` for the rows that an ``identity_at_init`` claim names.

    Computed from each run's config.json; where the run folder is gone, read from ``init_identity.csv``,
    which is rewritten with what was computed where ``keep``.
    """
    results = ResultsDir(out)
    wanted = {(name, v) for name, meta in manifest["experiments"].items()
              for c in meta.get("claims", []) for v in c.get("identity_at_init") or []}
    if not wanted:
        return {}
    kept = read_table(results.init_identity_csv, INIT_IDENTITY_FIELDS)
    cache = {} if kept is None else dict(zip(kept["hash"], kept["max_residual"]))
    found, got = {}, {}
    for r in runs[["experiment", "variant", "hash"]].itertuples(index=False):
        if (r.experiment, r.variant) not in wanted:
            continue
        cfg = results.run(r.hash).read_config()
        residual = None
        if isinstance(cfg, dict):
            try:
                residual = net_residual(cfg)
            except OneLineError:  # a net that cannot be built here (its plugin missing or changed): as if absent
                pass
        if residual is not None:
            found[r.hash] = residual
        elif r.hash in cache:
            found[r.hash] = float(cache[r.hash])
        else:
            continue
        got.setdefault(r.experiment, {}).setdefault(r.variant, []).append(found[r.hash])
    if keep and found and found != cache:
        lines = [",".join(INIT_IDENTITY_FIELDS), *(f"{h},{v!r}" for h, v in sorted(found.items()))]
        keep_table(results, results.init_identity_csv, "\n".join(lines) + "\n")
    return got
