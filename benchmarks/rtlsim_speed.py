"""Verilator speed on whole networks: build time from an empty cache, and simulated images/s.

    python benchmarks/rtlsim_speed.py [--cases student-small,cnv_1w1a] [--fps 3000] [--images 32]

For each network (random weights and BatchNorm): compile + plan + generate, a Verilator build in
a fresh cache folder (timed), then --images seeded random images streamed without stalls
(timed) and checked against the IR golden model.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from build_flow.compile import compile_model  # noqa: E402
from build_flow.models import select_model  # noqa: E402
from hw.generate import generate  # noqa: E402
from hw.planner import plan  # noqa: E402
from hw.rtlsim import simulate  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default="student-small,cnv_1w1a")
    ap.add_argument("--fps", type=float, default=3000)
    ap.add_argument("--images", type=int, default=32)
    args = ap.parse_args()
    print(f"{'network':14} {'IR layers':>9} {'build s':>8} {'cycles/frame':>12} {'sim img/s':>10} "
          f"{'Mcycles/s':>10} {'mismatches':>10}")
    bad = 0
    for case in args.cases.split(","):
        sel = select_model(config=f"configs/{case}.yaml") if case.startswith("student") else select_model(peer=case)
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["BNN_CACHE_DIR"] = str(Path(tmp) / "cache")  # a build from scratch
            _, graph = compile_model(sel, Path(tmp) / "build")
            design = generate(graph, plan(graph, 100, fps=args.fps), Path(tmp) / "build")
            rng = np.random.default_rng(0)
            images = rng.integers(0, 256, (args.images, *graph.tensors[graph.input].shape), dtype=np.uint8)
            t0 = time.perf_counter()
            res = simulate(design, graph, images)
            bad += res.mismatches
            print(f"{case:14} {len(graph.layers):9d} {res.build_s:8.1f} {res.cycles_per_frame:12.0f} "
                  f"{res.images / res.sim_s:10.1f} {res.total_cycles / res.sim_s / 1e6:10.2f} {res.mismatches:10d}")
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
