"""Tables, tested findings, figures and mechanisms from stored results; trains nothing.

    python -m ablation.report results/quick

The command line of :func:`ablation.reporting.report.build`.
"""

from __future__ import annotations

if __name__ == "__main__":
    from .core.errors import interrupt_quietly_while_starting

    interrupt_quietly_while_starting()

import sys
from pathlib import Path

from .core.errors import ArgumentParser, ConfigError, run_main


def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m ablation.report", description=__doc__.split("\n\n")[0])
    p.add_argument("dir", help="a results folder written by python -m ablation.run")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--reference", metavar="DIR", help="a reference study, or a folder of them, whose rows of the "
                   "same preset to set beside these (default: results/reference of this repository)")
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE_OR_FILE",
                   help="import a module or .py file that registers shortcuts (repeatable); the plugins the study "
                   "was run with are loaded from its manifest without it")
    p.add_argument("--write-reference", action="store_true", help="rebuild the report of a reference study (a folder "
                   "holding reference.toml, or under results/reference/), which is otherwise never written")
    args = p.parse_args(argv)

    def body():
        if not Path(args.dir).is_dir():
            raise ConfigError(f"{args.dir} is not a folder; give a results folder written by python -m ablation.run")
        if args.reference is not None and not Path(args.reference).is_dir():
            raise ConfigError(f"--reference {args.reference} is not a folder")
        from .reporting.report import build  # pandas and scipy load here, after the command line is checked

        written = build(args.dir, quiet=args.quiet, reference=args.reference, plugins=args.plugin,
                        write_reference=args.write_reference)
        if args.reference is not None and not written["compared"]:
            print(f"note: no row of this study is in --reference {args.reference}; nothing is set beside it",
                  file=sys.stderr)
        if written["plugin_problems"]:  # everything else is written: the last line says what is not
            raise ConfigError("; ".join(written["plugin_problems"]))
        return 0

    return run_main(body)


if __name__ == "__main__":
    sys.exit(main())
