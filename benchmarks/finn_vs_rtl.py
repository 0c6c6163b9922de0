"""FINN's estimates beside the project's planner and Yosys, per layer, for one network at one folding.

    python benchmarks/finn_vs_rtl.py --finn OUT/finn --rtl build/bench-flagship

  --finn  the output folder of `make finn-estimate … OUT=OUT` (report/, bnn_plan.json; the IR beside it
          in OUT/compile/ir)
  --rtl   a `python -m build_flow.rtl_flow synth` folder of the same model (folding.yaml, synth.json, rtlsim.json)

The two must hold the same folding: every MatrixVector layer's PE and SIMD are compared first, and a
difference stops the script with the layer named. Prints one markdown table: one row per
MatrixVector layer (FINN MVAU i is IR MatrixVector i, both in dataflow order), one row for everything
else (windows, thresholds, pools, adds, forks, label select; Yosys' also holds the FIFOs and width
converters between layers, which FINN's estimate leaves for a later step), and the totals. BRAM is in
BRAM36 (FINN's BRAM18 halved).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from build_flow.ir import load_ir  # noqa: E402
from hw.planner import estimate_resources, load_folding, predict_cycles  # noqa: E402


def _finn_mvaus(report: Path) -> tuple[list[str], dict, dict, dict]:
    res = json.loads((report / "estimate_layer_resources.json").read_text())
    cyc = json.loads((report / "estimate_layer_cycles.json").read_text())
    perf = json.loads((report / "estimate_network_performance.json").read_text())
    mvaus = [n for n in res if n.startswith("MVAU")]
    mvaus.sort(key=lambda n: int(n.rsplit("_", 1)[1]))
    return mvaus, res, cyc, perf


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--finn", required=True, type=Path)
    ap.add_argument("--rtl", required=True, type=Path)
    args = ap.parse_args(argv)
    graph = load_ir(args.finn.parent / "compile" / "ir")
    folding = load_folding(args.rtl / "folding.yaml", graph)
    plan = json.loads((args.finn / "bnn_plan.json").read_text())
    for mv in plan["matrix_vector"]:
        mine = (folding.pe(mv["ir"]), folding.simd(mv["ir"]))
        if mine != (mv["pe"], mv["simd"]):
            raise SystemExit(f"error: {mv['ir']}: FINN was folded PE={mv['pe']} SIMD={mv['simd']}, "
                             f"{args.rtl}/folding.yaml has PE={mine[0]} SIMD={mine[1]}: not the same folding")
    mvaus, res, cyc, perf = _finn_mvaus(args.finn / "report")
    if len(mvaus) != len(plan["matrix_vector"]):
        raise SystemExit(f"error: {len(mvaus)} FINN MVAUs vs {len(plan['matrix_vector'])} IR MatrixVector layers")
    synth = json.loads((args.rtl / "synth.json").read_text())
    rtlsim = json.loads((args.rtl / "rtlsim.json").read_text())
    cycles = predict_cycles(graph, folding)
    pres = estimate_resources(graph, folding)
    ylay = synth["layers"]

    print(f"FINN estimate: {perf['estimated_throughput_fps']:,.1f} FPS at 100 MHz (max {perf['max_cycles']} cycles, "
          f"{perf['max_cycles_node_name']}); planner: {max(cycles.values())} cycles; RTL measured: "
          f"{rtlsim.get('cycles_per_frame', '?')} cycles/frame")
    print()
    print("| IR layer | PE × SIMD | FINN node | cycles FINN / planner | LUT FINN / planner / Yosys | "
          "BRAM36 FINN / planner / Yosys |")
    print("|---|---|---|---|---|---|")
    sums = {"finn_lut": 0.0, "finn_bram": 0.0, "plan_lut": 0.0, "plan_bram": 0.0, "y_lut": 0.0, "y_bram": 0.0}
    for mv, node in zip(plan["matrix_vector"], mvaus):
        f, p, y = res[node], pres[mv["ir"]], ylay.get(mv["ir"], {})
        row = (f["LUT"], f["BRAM_18K"] / 2, p["lut"], p["bram36"], y.get("lut", 0), y.get("bram36", 0))
        for k, v in zip(("finn_lut", "finn_bram", "plan_lut", "plan_bram", "y_lut", "y_bram"), row):
            sums[k] += v
        print(f"| {mv['ir']} | {mv['pe']} × {mv['simd']} | {node} | {cyc[node]:,} / {cycles[mv['ir']]:,} | "
              f"{row[0]:,.0f} / {row[2]:,.0f} / {row[4]:,} | {row[1]:g} / {row[3]:g} / {row[5]:g} |")
    tot_f, tot_y = res["total"], synth["total"]
    tot_p = {"lut": sum(r["lut"] for r in pres.values()), "bram36": sum(r["bram36"] for r in pres.values())}
    print(f"| everything else | | {len(res) - 1 - len(mvaus)} FINN nodes | | "
          f"{tot_f['LUT'] - sums['finn_lut']:,.0f} / {tot_p['lut'] - sums['plan_lut']:,.0f} / "
          f"{tot_y['lut'] - sums['y_lut']:,.0f} | {tot_f['BRAM_18K'] / 2 - sums['finn_bram']:g} / "
          f"{tot_p['bram36'] - sums['plan_bram']:g} / {tot_y['bram36'] - sums['y_bram']:g} |")
    print(f"| **total** | | | {perf['max_cycles']:,} / {max(cycles.values()):,} (max) | "
          f"**{tot_f['LUT']:,.0f} / {tot_p['lut']:,.0f} / {tot_y['lut']:,}** | "
          f"**{tot_f['BRAM_18K'] / 2:g} / {tot_p['bram36']:g} / {tot_y['bram36']:g}** |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
