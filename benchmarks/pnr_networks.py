"""Place and route of whole networks with the open ECP5 tools (hw/pnr.py: Yosys synth_ecp5 +
nextpnr-ecp5 from the `pnr` extra), for the README's hardware table: Fmax after routing, the
critical path, utilization of the LFE5U-85F and the FPS at the clock reached.

    python benchmarks/pnr_networks.py [--cases small,cnv-finn,flagship] [--clock-mhz 100] [--device 85k]
    python benchmarks/pnr_networks.py --bitstream [--cases small,cnv-finn]

--bitstream builds each case's ULX3S bitstream instead (`python -m build_flow.rtl_flow bitstream`: the board top,
the PLL at the clock P&R allows, ecppack) and prints the PLL clock, Fmax, utilization, FPS at that
clock and the seconds of each step (bitstream.json in build/pnr-<case>/bitstream/).

  small      models/student-small.pt planned for 2000 FPS (the demo's design)
  cnv-finn   brevitas_examples CNV_1W1A (random weights) at finn-examples' folding
  flagship   models/student-flagship.pt (else random weights) planned for 3300 FPS (does not fit the
             ECP5-85F: the flow stops before synthesis and says so)
  flagship-lut30k   the same planned for the fastest folding within 30,000 estimated LUTs (fits)

Each case runs `python -m build_flow.rtl_flow pnr` into build/pnr-<case>/ (minutes of one core each, one at a
time) and prints one row; pnr.json and report.md stay in the build folder.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from build_flow.rtl_flow import main as flow  # noqa: E402

CASES = {
    "small": ["--ckpt", "models/student-small.pt", "--fps", "2000"],
    "cnv-finn": ["--peer", "cnv_1w1a", "--folding", "configs/folding/cnv_1w1a-finn-examples.yaml"],
    "flagship": (["--ckpt", "models/student-flagship.pt"] if Path("models/student-flagship.pt").exists()
                 else ["--config", "configs/student-flagship.yaml"]) + ["--fps", "3300"],
}
CASES["flagship-lut30k"] = CASES["flagship"][:-2] + ["--lut-budget", "30000"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default="small,cnv-finn,flagship")
    ap.add_argument("--clock-mhz", type=float, default=100.0)
    ap.add_argument("--device", default="85k")
    ap.add_argument("--bitstream", action="store_true", help="build the ULX3S bitstream of each case")
    args = ap.parse_args()
    if args.bitstream:
        return bitstreams(args)
    rows = []
    for case in args.cases.split(","):
        out = f"build/pnr-{case}"
        t0 = time.perf_counter()
        flow(["pnr", *CASES[case], "--out", out, "--clock-mhz", str(args.clock_mhz), "--device", args.device])
        p = json.loads(Path(out, "pnr.json").read_text())
        frame = json.loads(Path(out, "design.json").read_text())["predicted"]["frame_cycles"]
        rows.append((case, p, frame, time.perf_counter() - t0))
    print("\ncase      target MHz  Fmax MHz  met   LUT4          FF            DP16KD   FPS at clock  total s")
    for case, p, frame, secs in rows:
        u, b = p["used"], p["budget"]
        clock = min(p["fmax_mhz"] or 0.0, p["target_mhz"])
        print(f"{case:9} {p['target_mhz']:10g} {p['fmax_mhz'] or 0:9.2f}  {'yes' if p['timing_met'] else 'NO':4} "
              f"{u['lut4']:6}/{b['lut4']:<6} {u['ff']:6}/{b['ff']:<6} {u['dp16kd']:3}/{b['dp16kd']:<4} "
              f"{clock * 1e6 / frame:10.0f}    {secs:7.0f}")
    return 0


def bitstreams(args) -> int:
    rows = []
    for case in args.cases.split(","):
        out = f"build/pnr-{case}"
        t0 = time.perf_counter()
        flow(["bitstream", *CASES[case], "--out", out, "--clock-mhz", str(args.clock_mhz)])
        rows.append((case, json.loads(Path(out, "bitstream", "bitstream.json").read_text()), time.perf_counter() - t0))
    print("\ncase      PLL MHz  Fmax MHz  LUT4          FF            DP16KD   FPS at PLL  link fps  attempts  steps (s)")
    for case, d, secs in rows:
        u, b = d["used"], d["budget"]
        print(f"{case:9} {d['pll_mhz']:7g} {d['fmax_mhz']:9.2f}  {u['lut4']:6}/{b['lut4']:<6} {u['ff']:6}/{b['ff']:<6} "
              f"{u['dp16kd']:3}/{b['dp16kd']:<4} {d['accelerator_fps']:10.0f} {d['link_fps']:9.1f} "
              f"{len(d['attempts']):9}  {d['steps_s']} total {secs:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
