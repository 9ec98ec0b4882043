"""The errors a user is meant to see as a single line, their did-you-mean hint, and how a command ends."""

import argparse
import difflib
import sys


class OneLineError(Exception):
    """An error a command shows as one line, ``error: <message>``, and exit code 2: what the user can act on."""


class ConfigError(OneLineError, ValueError):
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


# --- how a command ends ----------------------------------------------------------------------

INTERRUPTED = 130  # the shell's exit code for a command ended by Ctrl-C (128 + SIGINT)


def interrupt_quietly_while_starting() -> None:
    """Until :func:`run_main` starts, Ctrl-C ends the command with exit code 130 and one line.

    Called first thing by each command module run as ``__main__``, before torch and pandas load:
    Python's own handler would raise KeyboardInterrupt inside an import and print its traceback.
    """
    import signal
    import threading

    def stop(signum, frame):
        print("interrupted", file=sys.stderr)
        raise SystemExit(INTERRUPTED)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, stop)


def run_main(body) -> int:
    """``body()``'s exit code; a OneLineError is ``error: <message>`` and 2, Ctrl-C ``interrupted`` and 130."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
    readable_streams()
    try:
        return body()
    except OneLineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return INTERRUPTED


def readable_streams() -> None:
    """What the terminal's encoding cannot show (a path in another encoding, a name in another script)
    is printed escaped (``\\xe9``) instead of ending the command with UnicodeEncodeError."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors="backslashreplace")
            except (ValueError, OSError):  # a stream already closed or not reconfigurable
                pass


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad option is one line (``error: ...``) and exit 2, as every other bad input."""

    def error(self, message):
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)
