"""The command line of a sweep: validate the sweep file, then print the commands (--dry-run) or run them.

    python -m model.sweep --sweep configs/sweeps/recipe-1.yaml --data DATA --out runs/sweep [--deadline-s S]

Exit status: 0 when at least one variant has a completed epoch, 1 when none has, 2 with one `error:`
line on bad input (model.errors.run_cli).
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time

from .. import sweep as package
from ..errors import run_cli
from .report import status_of
from .runner import Runner
from .spec import RESERVE_S, load_sweep


def main(argv: list[str] | None = None) -> int:
    t0 = time.monotonic()
    argv = sys.argv[1:] if argv is None else list(argv)
    # --help's description: the first paragraph of the package's docstring
    ap = argparse.ArgumentParser(prog="python -m model.sweep", description=package.__doc__.split("\n\n")[0])
    ap.add_argument("--sweep", required=True, help="sweep file (YAML), e.g. configs/sweeps/recipe-1.yaml")
    ap.add_argument("--data", help="training data for every run (overrides data.path)")
    ap.add_argument("--out", required=True, help="sweep folder: teacher/, one folder per variant, sweep.md, sweep.json")
    ap.add_argument("--deadline-s", type=float, help="seconds for the whole command (overrides the file's deadline_s)")
    ap.add_argument("--dry-run", action="store_true", help="validate and print the commands; launch nothing")
    args = ap.parse_args(argv)
    sweep = load_sweep(args.sweep, args.data, args.out, args.deadline_s)
    if args.dry_run:
        stages = ([sweep.teacher] if sweep.teacher is not None else []) + sweep.variants
        for st in stages:
            state = status_of(st, st.epochs)[1] if (st.given or st.reused) else \
                ("resume" if st.resume else "train") + f" {st.epochs} epochs"
            print(f"{st.name}: {state}" + ("" if st.given or st.reused else f"\n  {shlex.join(st.command('python'))}"))
        print(f"deadline {sweep.deadline_s:g} s: runs stopped at {sweep.deadline_s - sweep.grace_s - RESERVE_S:g} s "
              f"(SIGTERM), killed {sweep.grace_s:g} s later")
        return 0
    command = shlex.join(["python", "-m", "model.sweep", *argv])
    return Runner(sweep, t0, command).run()


if __name__ == "__main__":
    run_cli(main)
