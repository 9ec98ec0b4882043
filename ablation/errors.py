"""The one exception type a user is meant to see as a single line."""


class ConfigError(ValueError):
    """Bad input from the user: an unknown name, a bad depth, a malformed file.

    Command-line entry points print ``error: <message>`` and exit with code 2;
    library callers get an ordinary ``ValueError``.
    """
