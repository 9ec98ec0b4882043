"""The signal-propagation ladder: every shortcut of He 2016 Table 1 at every depth, at initialisation.

Measured by ``python -m ablation.signal_ladder OUT`` (:mod:`ablation.signal_ladder`). For each row
of an experiment file (He 2016 Table 1, ``identity_mappings.toml``, by default; ``modern.toml`` for
the designs after 2016) and each network of :data:`LADDER` (He 2015's post-activation CIFAR nets up
to ResNet-1202, He 2016's pre-activation bottleneck nets ResNet-164 and ResNet-1001), built at its
standard initialisation and, where its branches hold BN, with zero-initialised residual branches, one
batch of Gaussian images forward and backward, through the loss and from a fixed random direction at the
last unit (:func:`ablation.nets.signal.measure`). A row's own
``order``, ``match`` and ``norm`` replace the net's (a design that needs pre-activation units keeps
them on every net). Writes ``OUT/signal_ladder.csv`` (one line per unit; each
net is written as it finishes, and a net already in it with the same batch, image and seed is not
measured again) and the figures of :mod:`ablation.reporting.signal_plots` into ``OUT``. Trains
nothing.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from ..nets.signal import ADDED_FIELDS, UNIT_SIGNAL_FIELDS

# (arch, order, match): He 2015 Sec. 4.2's CIFAR nets, post-activation with option A; He 2016's
# pre-activation nets with projections where shapes change (resnet-pre-act.lua, as the README's table)
LADDER = (("resnet20", "original", "zero-pad"), ("resnet32", "original", "zero-pad"),
          ("resnet56", "original", "zero-pad"), ("resnet110", "original", "zero-pad"),
          ("resnet1202", "original", "zero-pad"), ("resnet164", "full-preact", "projection"),
          ("resnet1001", "full-preact", "projection"))
INITS = ("standard", "zero-branches")
UNIT_KEYS = ("shortcut", "shortcut_args", "order", "match", "norm")  # what a row may set of the net it runs on
SETTINGS = ("batch", "image", "seed")  # what else makes a measurement what it is
LADDER_FIELDS = ("arch", "family", "order", "match", "norm", "variant", "shortcut", "shortcut_args", "init", *SETTINGS, "seconds",
                 *UNIT_SIGNAL_FIELDS)
LADDER_CSV = "signal_ladder.csv"


def read_ladder(path):
    """The ladder table at ``path``, or None where it is absent or not one."""
    return read_signal_table(path, LADDER_FIELDS, {"shortcut_args": str, "image": str})


def read_signal_table(path, fields, dtype=None):
    """A table of :func:`ablation.nets.signal.measure`'s records at ``path`` (None where absent or not one); a table
    written before a column of :data:`ablation.nets.signal.ADDED_FIELDS` has it as nan, not measured."""
    from .tables import read_table

    table = read_table(path, [f for f in fields if f not in ADDED_FIELDS], dtype)
    if table is not None:
        for f in ADDED_FIELDS:
            if f not in table.columns:
                table[f] = float("nan")
    return table


def run_ladder(out, rows, archs=None, batch: int = 16, image=(3, 32, 32), seed: int = 0, quiet: bool = False,
               inits=INITS):
    """Measure every net of the ladder not yet in ``OUT/signal_ladder.csv``; returns the whole table.

    ``rows``: (row name, {key: value} of :data:`UNIT_KEYS`) of each unit to measure, as
    :func:`ablation.signal_ladder.experiment_rows` reads them from an experiment file. ``family`` in
    the table is the net's own order (its place in :data:`LADDER`), ``order`` what the row ran.
    """
    import pandas as pd
    import torch

    from ..core.files import write_atomic
    from ..nets.models import seeded_model
    from ..nets.signal import gaussian_batch, measure, zero_branches

    path = Path(out) / LADDER_CSV
    ladder = [n for n in LADDER if archs is None or n[0] in archs]
    image_s = "x".join(map(str, image))
    old = read_ladder(path)
    frames = [] if old is None else [old]

    def done(arch, variant, init) -> bool:
        if old is None:
            return False
        hit = old[(old["arch"] == arch) & (old["variant"] == variant) & (old["init"] == init)]
        return bool(len(hit)) and (hit["batch"] == batch).all() and (hit["image"] == image_s).all() \
            and (hit["seed"] == seed).all() and not hit[list(ADDED_FIELDS)].isna().all().any()

    x, y = gaussian_batch(batch, tuple(image), 10, seed)
    for arch, family, family_match in ladder:
        start = time.perf_counter()
        measured = 0
        for variant, unit in rows:
            shortcut, args = unit.get("shortcut", "identity"), dict(unit.get("shortcut_args", {}))
            order, match = unit.get("order", family), unit.get("match", family_match)
            norm = unit.get("norm", "bn")
            for init in [i for i in inits if norm == "bn" or i != "zero-branches"]:  # it zeroes a BN's gamma
                if done(arch, variant, init):
                    continue
                if old is not None:  # a stale measurement of the same net gives way
                    stale = (old["arch"] == arch) & (old["variant"] == variant) & (old["init"] == init)
                    frames[0] = old = old[~stale]
                model = seeded_model(seed, arch, shortcut, order, 10, image[0], None, match, norm=norm, **args)
                if init == "zero-branches":
                    zero_branches(model)
                t0 = time.perf_counter()
                recs = measure(model, x, y, probe_seed=seed)
                seconds = round(time.perf_counter() - t0, 3)
                meta = {"arch": arch, "family": family, "order": order, "match": match, "norm": norm,
                        "variant": variant, "shortcut": shortcut,
                        "shortcut_args": json.dumps(args, sort_keys=True), "init": init, "batch": batch,
                        "image": image_s, "seed": seed, "seconds": seconds}
                frames.append(pd.DataFrame([{**meta, **r} for r in recs], columns=list(LADDER_FIELDS)))
                write_atomic(path, pd.concat(frames, ignore_index=True).to_csv(index=False))
                measured += 1
        if not quiet and measured:
            print(f"{arch}: {measured} nets in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(LADDER_FIELDS))
    return table


def ladder_summary(table):
    """Per arch, row and init: units, backward ratio first/last unit and per-unit factor within stages (through
    the loss, and ``probe_*`` from a random direction at the last unit, no head), last output variance, seconds."""
    import pandas as pd

    from ..nets.signal import backward_summary

    out = []
    for (arch, family, order, variant, init), g in table.groupby(["arch", "family", "order", "variant", "init"],
                                                                 sort=False):
        recs = g.sort_values("unit").to_dict("records")
        ratio, geo = backward_summary(recs, "grad_norm")
        probe_ratio, probe_geo = backward_summary(recs, "probe_grad_norm")
        out.append({"arch": arch, "family": family, "order": order, "variant": variant, "init": init, "units": len(recs),
                    "backward_first_over_last": ratio, "backward_factor_per_unit": geo,
                    "probe_first_over_last": probe_ratio, "probe_factor_per_unit": probe_geo,
                    "out_var_last": recs[-1]["out_var"], "seconds": float(g["seconds"].iloc[0])})
    return pd.DataFrame(out)
