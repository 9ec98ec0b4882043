"""What a study sets itself and so may not be given: the seed.

The seeds of a study are 0..N-1 by design (``--seeds N``; a run's hash includes its seed), so a seed
given by ``--set``, an experiment's ``[base]``, a row or a preset would be overwritten by the study's
own and the run reported as what it was not. It is refused in one line that names ``--seeds``.
"""

from __future__ import annotations

import json

from ..core.errors import ConfigError

STUDY_KEYS = ("seed",)


def refuse_study_keys(said: str, table: dict, assign: str = " = ") -> None:
    """ConfigError where ``table`` (a ``--set``, a file's table) gives a key that the study sets itself.

    ``said`` is where it was given (``--set``, ``FILE: variant 'x'``); ``assign`` how it was written there.
    """
    for key in STUDY_KEYS:
        if key in table:
            sep = " " if said == "--set" else ": "
            raise ConfigError(f"{said}{sep}{key}{assign}{json.dumps(table[key])}: the seeds of a study are 0..N-1, "
                              f"set by --seeds (a run's hash includes its seed); use --seeds N, or "
                              f"python -m ablation.train seed=S for one run")
