"""Writing result files so that a kill at any moment leaves the old file or the new one, never half."""

import os
from pathlib import Path


def write_atomic(path, text: str) -> None:
    """Write ``text`` to a hidden temporary beside ``path``, then rename it over ``path``.

    The temporary carries the process id, so parallel jobs never share one, and its name
    (``.<name>.tmp<pid>``) is what a resuming run sweeps up after a kill.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
