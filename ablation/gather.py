"""The gather command: copy the finished runs of other results folders into one, then write its manifest.

    python -m ablation.gather --experiment depth_ladder --seeds 3 --out results/ladder \\
        /scratch/d20 /scratch/d32 /scratch/d56 /scratch/d110
    python -m ablation.report results/ladder

Nothing trains. Runs are found by their config's hash, as folders under each source's ``runs/`` or
as the lines of a source's ``runs.csv`` (:mod:`ablation.study.gather`).
"""

from __future__ import annotations

if __name__ == "__main__":
    from .core.errors import interrupt_quietly_while_starting

    interrupt_quietly_while_starting()

import sys
from pathlib import Path

from .core.errors import ArgumentParser, ConfigError, run_main
from .core.folder_checks import check_folder
from .reporting.tables import carry_tables, stored_tables
from .study.gather import gather


def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m ablation.gather", description=__doc__.split("\n\n")[0])
    p.add_argument("sources", nargs="+", help="results folders holding trained runs")
    p.add_argument("--out", required=True, help="the results folder to gather into")
    p.add_argument("--experiment", help="an experiment name, or 'all' (as python -m ablation.run)")
    p.add_argument("--variants", help="rows by name (as python -m ablation.run)")
    p.add_argument("--preset", default="quick")
    p.add_argument("--seeds", type=int, help="seeds per row (default: the preset's)")
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE_OR_FILE",
                   help="import a module or .py file that registers shortcuts (repeatable); those the sources' "
                   "manifests record are loaded without it")
    p.add_argument("--prefer", action="append", default=[], metavar="FOLDER", help="where two copies of a run differ, "
                   "keep the one in FOLDER (a source, or --out; repeatable, first named first); the choice is "
                   "recorded in the manifest")
    p.add_argument("--write-reference", action="store_true", help="gather into a reference study (a folder holding "
                   "reference.toml, or under results/reference/), which is otherwise never written")
    p.add_argument("--experiments", action="append", metavar="DIR", help="a folder of your own experiment files "
                   "(as python -m ablation.run; repeatable; default: ./experiments where there is one)")
    args = p.parse_args(argv)

    def body():
        out = check_folder(args.out, "results", "--out")
        if any(Path(s).resolve() == out.resolve() for s in args.sources):
            raise ConfigError("--out is one of the sources; gather into another folder")
        c = gather(args.sources, out, args.experiment, args.variants, args.preset, args.seeds, args.experiments,
                   (stored_tables, carry_tables), args.plugin, args.prefer, args.write_reference)
        for line in c["plugin_problems"]:
            print(f"note: {line}", file=sys.stderr)
        chosen = f"; {c['chosen']} whose copies differed kept from --prefer (recorded in its manifest)" \
            if c["chosen"] else ""
        print(f"{c['runs']} runs: {c['copied']} copied, {c['from_tables']} from a source's runs.csv, "
              f"{c['present']} already in {out}, {c['missing']} not finished in any source{chosen}; "
              f"report: python -m ablation.report {out}")
        return 0

    return run_main(body)


if __name__ == "__main__":
    sys.exit(main())
