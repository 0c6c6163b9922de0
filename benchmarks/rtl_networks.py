"""The open RTL backend on whole networks: bit-exact RTL simulation on real images, measured
cycles/frame against the planner, and Yosys resources, for the README's hardware table.

    python benchmarks/rtl_networks.py [--cases flagship,cnv-finn] [--images 200] [--data ZIP]

  flagship   configs/student-flagship.yaml (models/student-flagship.pt when it exists, else
             random weights and BatchNorm), planned for --fps (default 3300: measured to fit the Pynq-Z2, 4000 does not) at 100 MHz
  cnv-finn   brevitas_examples CNV_1W1A (random weights) at finn-examples' own folding
             (configs/folding/cnv_1w1a-finn-examples.yaml), to compare with FINN's estimate

Each case runs `python -m build_flow.rtl_flow rtlsim` then `synth` into build/bench-<case>/ and prints one
summary row; the build folders keep report.md, the charts and every JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from build_flow.rtl_flow import main as flow  # noqa: E402

FINN_CNV = {"fps": 3052, "lut": 24906, "bram18": 140, "dsp": 0}  # FINN-LOCAL.md: estimate, Pynq-Z1, 100 MHz


def case_args(case: str, args) -> list[str]:
    if case == "flagship":
        ckpt = Path("models/student-flagship.pt")
        model = ["--ckpt", str(ckpt)] if ckpt.exists() else ["--config", "configs/student-flagship.yaml"]
        return model + ["--fps", str(args.fps)]
    if case == "cnv-finn":
        return ["--peer", "cnv_1w1a", "--folding", "configs/folding/cnv_1w1a-finn-examples.yaml"]
    raise SystemExit(f"unknown case {case}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default="flagship,cnv-finn")
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--fps", type=float, default=3300)
    ap.add_argument("--data", default="../shared/datasets/cifar10-jpeg/train.zip")
    args = ap.parse_args()
    rows = []
    for case in args.cases.split(","):
        out = f"build/bench-{case}"
        common = case_args(case, args) + ["--out", out]
        t0 = time.perf_counter()
        rc = flow(["rtlsim", *common, "--images", str(args.images), "--data", args.data, "--stall", "0.2"])
        t_sim = time.perf_counter() - t0
        t0 = time.perf_counter()
        flow(["synth", *common])
        t_syn = time.perf_counter() - t0
        sim = json.loads(Path(out, "rtlsim.json").read_text())
        syn = json.loads(Path(out, "synth.json").read_text())
        rows.append((case, sim, syn, rc, t_sim, t_syn))
    print("\ncase      images mismatches cycles/frame (planner)   FPS@100MHz  LUT     FF      BRAM36  fits Z2  "
          "rtlsim s  synth s")
    for case, sim, syn, rc, t_sim, t_syn in rows:
        t = syn["total"]
        print(f"{case:9} {sim['images']:6d} {sim['mismatches']:10d} {sim['cycles_per_frame']:8.0f} "
              f"({sim['predicted_cycles_per_frame']}, {100 * sim['prediction_error']:+.1f} %) {sim['fps']:9.0f}  "
              f"{t['lut']:7d} {t['ff']:7d} {t['bram36']:7.1f}  {str(syn['fits_pynq_z2']):7}  {t_sim:8.0f} {t_syn:8.0f}")
    print(f"FINN CNV_1W1A estimate at the same folding (Pynq-Z1, 100 MHz): {FINN_CNV['fps']} FPS, "
          f"{FINN_CNV['lut']} LUT, {FINN_CNV['bram18']} BRAM18 ({FINN_CNV['bram18'] / 2:g} BRAM36), 0 DSP")
    return 0 if all(r[3] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
