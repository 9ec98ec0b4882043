"""Write the findings blocks of hand-written pages (README.md, the documentation) from the committed results.

    python -m ablation.findings README.md            # rewrite every block from its results folder
    python -m ablation.findings --check README.md    # exit 1 naming each block that is not the data's

The command line of :mod:`ablation.reporting.headlines`, which says what a block is.
"""

from __future__ import annotations

if __name__ == "__main__":
    from .core.errors import interrupt_quietly_while_starting

    interrupt_quietly_while_starting()

import sys
from pathlib import Path

from .core.errors import ArgumentParser, ConfigError, run_main
from .core.files import read_text, write_atomic


def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m ablation.findings", description=__doc__.split("\n\n")[0])
    p.add_argument("pages", nargs="+", help="markdown files holding <!-- findings: ... --> blocks")
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 where a block is not what the "
                   "data give")
    args = p.parse_args(argv)

    def body():
        from .reporting import headlines  # pandas and scipy load here, after the command line is checked

        cache, stale = {}, []
        for page in map(Path, args.pages):
            if not page.is_file():
                raise ConfigError(f"{page} is not a file")
            text = read_text(page)
            if args.check:
                stale += [f"{page}: {block}" for block in headlines.differing(text, cache)]
            else:
                new = headlines.fill(text, cache)
                if new != text:
                    write_atomic(page, new)
                    print(page)
        for line in stale:
            print(f"not the data's: {line}", file=sys.stderr)
        return 1 if stale else 0

    return run_main(body)


if __name__ == "__main__":
    sys.exit(main())
