"""The one exception type a user is meant to see as a single line, and its did-you-mean hint."""

import difflib


class ConfigError(ValueError):
    """Bad input from the user: an unknown name, a bad depth, a malformed file.

    Command-line entry points print ``error: <message>`` and exit with code 2;
    library callers get an ordinary ``ValueError``.
    """


def did_you_mean(name, valid) -> str:
    """`` (did you mean 'y'?)`` for the closest of ``valid``, or an empty string."""
    close = difflib.get_close_matches(str(name), [str(v) for v in valid], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown_choice(kind: str, name, valid) -> ConfigError:
    """``unknown <kind> 'x' (did you mean 'y'?); valid: a, b, c`` as a ConfigError to raise."""
    valid = [str(v) for v in valid]
    return ConfigError(f"unknown {kind} {name!r}{did_you_mean(name, valid)}; valid: {', '.join(valid)}")
