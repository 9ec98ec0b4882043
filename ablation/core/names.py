"""Names that become paths: experiments (``tables/<name>.md``, ``plots/<name>_*.png``), presets (``results/<preset>``),
variants and plugin shortcut names (which become variants). Each is a safe identifier, checked when its file is read.

A safe name is ``[A-Za-z0-9][A-Za-z0-9._-]*`` without ``..``: it cannot leave the folder it is joined to
(no ``/``, no ``..``), cannot be a hidden file or an option (no leading ``.`` or ``-``), and reads the same
in every shell. A ladder's rows are ``<row>@<value>`` (:mod:`ablation.study.ladder`): ``@`` and the rung's value
are added to a row name that was checked in its own file.
"""

from __future__ import annotations

import re

from .errors import ConfigError

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_LADDER_ROW = re.compile(r"(?P<row>.+)@(?P<value>[A-Za-z0-9][A-Za-z0-9._-]*)")


def is_safe_name(name) -> bool:
    return isinstance(name, str) and SAFE_NAME.fullmatch(name) is not None and ".." not in name


def check_name(name, what: str, where: str, ladder_row: bool = False) -> str:
    """``name`` if it is a safe name, else ConfigError in one line naming ``where`` (the file) and the name.

    ``what`` says what the name is ("experiment name", "variant name", ...); ``ladder_row`` also
    takes ``<safe name>@<value>``, the value itself a safe name.
    """
    row = _LADDER_ROW.fullmatch(name) if ladder_row and isinstance(name, str) else None
    if is_safe_name(row.group("row") if row else name) and (row is None or ".." not in row.group("value")):
        return name
    raise ConfigError(f"{where}: {what} {name!r} is not a safe name: use letters, digits, '.', '_' and '-', "
                      f"starting with a letter or digit, without '..' (names become file and folder names)")
