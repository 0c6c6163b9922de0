"""Verilator speed on whole networks: build time from an empty cache, and simulated images/s.

    python benchmarks/rtlsim_speed.py [--cases student-small,cnv_1w1a,flagship] [--fps 3000]
                                      [--images 32] [--stall 0.2] [--rtl-lib DIR]

For each network: compile + plan + generate, a Verilator build in a fresh cache folder (timed),
then --images seeded random images streamed with random stalls of probability --stall on the
input and the outputs (timed, the simulator process alone) and checked against the IR golden
model. `student-small` and `cnv_1w1a` have random weights; `flagship` is the trained checkpoint
models/student-flagship.pt. `--rtl-lib DIR` copies DIR's .sv modules over the generated design's
library before the build, to time another version of the RTL on the same design (e.g.
`git show REV:hw/rtl/bnn_mvtu.sv > DIR/bnn_mvtu.sv` for the speed before a change).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from build_flow.compile import compile_model  # noqa: E402
from build_flow.models import select_model  # noqa: E402
from verify.golden_numpy import run_numpy  # noqa: E402
from hw.generate import generate  # noqa: E402
from hw.planner import plan  # noqa: E402
from hw.rtlsim import simulate  # noqa: E402

CASES = {
    "student-small": dict(config=str(ROOT / "configs/student-small.yaml")),
    "cnv_1w1a": dict(peer="cnv_1w1a"),
    "flagship": dict(ckpt=str(ROOT / "models/student-flagship.pt")),
}


def _swap_library(design: dict, lib: Path) -> None:
    """Replace the design's library modules by the same-named files of `lib`."""
    for src in design["sources"]:
        other = lib / Path(src).name
        if Path(src).parent.name == "lib" and other.is_file():
            shutil.copy(other, src)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default="student-small,cnv_1w1a,flagship", help=f"comma-separated: {', '.join(CASES)}")
    ap.add_argument("--fps", type=float, default=3000)
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--stall", type=float, default=0.2, help="stall probability per cycle on each side")
    ap.add_argument("--rtl-lib", type=Path, help="a folder of .sv modules to use instead of hw/rtl's")
    args = ap.parse_args()
    cases = args.cases.split(",")
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        ap.error(f"--cases: unknown {unknown} (known: {', '.join(CASES)})")
    print(f"{'network':14} {'IR layers':>9} {'build s':>8} {'cycles/frame':>12} {'sim s':>7} {'sim img/s':>10} "
          f"{'Mcycles/s':>10} {'mismatches':>10}")
    bad = 0
    for case in cases:
        sel = select_model(**CASES[case])
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["BNN_CACHE_DIR"] = str(Path(tmp) / "cache")  # a build from scratch
            _, graph = compile_model(sel, Path(tmp) / "build")
            design = generate(graph, plan(graph, 100, fps=args.fps), Path(tmp) / "build")
            if args.rtl_lib:
                _swap_library(design, args.rtl_lib)
            rng = np.random.default_rng(0)
            images = rng.integers(0, 256, (args.images, *graph.tensors[graph.input].shape), dtype=np.uint8)
            res = simulate(design, images, run_numpy(graph, images), in_stall=args.stall,
                           out_stall=args.stall, seed=1)
            bad += res.mismatches
            print(f"{case:14} {len(graph.layers):9d} {res.build_s:8.1f} {res.cycles_per_frame:12.0f} {res.sim_s:7.1f} "
                  f"{res.images / res.sim_s:10.2f} {res.total_cycles / res.sim_s / 1e6:10.3f} {res.mismatches:10d}",
                  flush=True)
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
