"""``python -m ablation.train key=value ... out=RUN_DIR``: train one configuration into a run folder, resumably.

The training itself is :func:`ablation.training.loop.train`; this module reads the command line. From Python,
``ablation.train(config, out)`` is this module called: :func:`ablation.api.one_run.train`, which returns the
summary and the history.
"""

from __future__ import annotations

if __name__ == "__main__":
    from .core.errors import interrupt_quietly_while_starting

    interrupt_quietly_while_starting()

import json
import sys
import types

from .core.errors import INTERRUPTED, ConfigError, run_main
from .api.one_run import checked
from .training.config import describe_keys, parse_overrides


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if any(a in ("-h", "--help") for a in args):
        print("usage: python -m ablation.train key=value ... out=RUN_DIR\n\n"
              "Values are JSON or TOML (lr=0.05, milestones=[250,375], shortcut_args={b=-6}).\n\n"
              f"keys and defaults:\n{describe_keys()}")
        return 0
    return run_main(lambda: _train_cli(args))


def _train_cli(args) -> int:
    cfg = parse_overrides(args)
    if "out" not in cfg:
        raise ConfigError("give the run directory as out=DIR")
    out = cfg.pop("out")
    if not isinstance(out, str):
        raise ConfigError(f"out= must name a folder, got {out!r}")
    notes = []
    checked(cfg, out, notes)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    from .training.loop import train  # torch loads here, after the command line is checked

    try:
        summary = train(cfg, out)
    except KeyboardInterrupt:
        print(f"interrupted: {out} keeps its last checkpoint; the same command resumes it", file=sys.stderr)
        return INTERRUPTED
    print(json.dumps(summary, indent=2))
    return 0


class _CallableModule(types.ModuleType):
    """``ablation.train`` names this module once it is imported; calling it trains, as the function of that name."""

    def __call__(self, config: dict, out, notes: list | None = None):
        from .api.one_run import train

        return train(config, out, notes)


sys.modules[__name__].__class__ = _CallableModule

if __name__ == "__main__":
    sys.exit(main())
