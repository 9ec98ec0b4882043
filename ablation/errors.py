"""The one exception type a user is meant to see as a single line."""


class ConfigError(ValueError):
    """Bad input from the user: an unknown name, a bad depth, a malformed file.

    Command-line entry points print ``error: <message>`` and exit with code 2;
    library callers get an ordinary ``ValueError``.
    """


def unknown_choice(kind: str, name, valid) -> ConfigError:
    """``unknown <kind> 'x' (did you mean 'y'?); valid: a, b, c`` as a ConfigError to raise."""
    import difflib

    valid = [str(v) for v in valid]
    close = difflib.get_close_matches(str(name), valid, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"unknown {kind} {name!r}{hint}; valid: {', '.join(valid)}")
