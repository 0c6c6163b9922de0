"""The open RTL backend's steps, from a model to simulated and synthesized hardware.

    python -m hw.flow rtl    MODEL [--fps F | --lut-budget N | --folding FILE] [--clock-mhz 100] --out DIR
    python -m hw.flow rtlsim MODEL ... [--images N] [--data D] [--stall P]
    python -m hw.flow synth  MODEL ...

MODEL is --ckpt C, --config Y or --peer NAME (with --seed), as for verify.compare.

rtl     export + lower (DIR/model.onnx, DIR/ir), plan or read the folding (DIR/folding.yaml),
        generate the RTL (DIR/rtl, DIR/design.json)
rtlsim  rtl, then Verilator: N images through the accelerator with random stalls, every
        output integer compared with the IR golden model; cycles/frame, latency, FPS
        (DIR/rtlsim.json); exit 1 on any mismatch
synth   rtl, then Yosys synth_xilinx: LUT/FF/BRAM/DSP per layer (DIR/synth.json)

Each writes DIR/report.md with the charts of what has been measured so far.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from model.errors import run_cli

DEFAULT_FPS = 3000.0


def _args(argv):
    ap = argparse.ArgumentParser(prog="python -m hw.flow", description=__doc__.split("\n\n")[0])
    ap.add_argument("step", choices=("rtl", "rtlsim", "synth"))
    ap.add_argument("--ckpt")
    ap.add_argument("--config")
    ap.add_argument("--peer")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True, help="the build folder")
    ap.add_argument("--fps", type=float, help=f"target frames/s (default {DEFAULT_FPS:g} unless --lut-budget/--folding)")
    ap.add_argument("--lut-budget", type=int, help="the fastest folding whose estimated LUTs fit")
    ap.add_argument("--folding", help="a folding file (YAML) to use instead of planning")
    ap.add_argument("--clock-mhz", type=float, default=100.0)
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--data", help="real images (zip, ImageFolder or cifar-10-batches-py); else seeded random")
    ap.add_argument("--stall", type=float, default=0.2, help="probability of a stall on each side, per cycle")
    return ap.parse_args(argv)


def build_rtl(args) -> tuple:
    """Model -> IR -> folding -> RTL; returns (selected model, qonnx model, graph, folding, design)."""
    from build_flow.compile import compile_model
    from build_flow.models import select_model

    from .generate import generate
    from .planner import load_folding, plan, save_folding

    out = Path(args.out)
    sel = select_model(args.ckpt, args.config, args.peer, args.seed)
    t0 = time.perf_counter()
    qonnx_model, graph = compile_model(sel, out)
    if args.folding:
        folding = load_folding(args.folding, graph)
        if args.fps or args.lut_budget:
            print("note: --folding given, --fps/--lut-budget ignored")
    else:
        fps = args.fps if args.fps or args.lut_budget else DEFAULT_FPS
        folding = plan(graph, args.clock_mhz, fps=fps, lut_budget=args.lut_budget)
    if args.folding and args.clock_mhz != 100.0:
        folding.clock_mhz = args.clock_mhz
    save_folding(folding, out / "folding.yaml")
    design = generate(graph, folding, out)
    pred = design["predicted"]
    print(f"{sel.name}: {len(graph.layers)} IR layers -> {out}/rtl in {time.perf_counter() - t0:.1f} s; "
          f"predicted {pred['frame_cycles']} cycles/frame ({folding.clock_mhz * 1e6 / pred['frame_cycles']:.0f} FPS "
          f"at {folding.clock_mhz:g} MHz, bottleneck {pred['bottleneck']})")
    for note in folding.notes:
        print(f"note: {note}")
    (out / "run.json").write_text(json.dumps({
        "argv": sys.argv, "model": {"name": sel.name, "kind": sel.kind}, "folding": str(out / "folding.yaml"),
        "python": platform.python_version()}, indent=1))
    return sel, qonnx_model, graph, folding, design


def run_rtlsim(args, sel, graph, design) -> int:
    from verify.compare import load_images
    from verify.golden_numpy import run_numpy

    from .rtlsim import simulate

    images, what = load_images(args.data, sel.input_shape, args.images, args.seed)
    nhwc = np.ascontiguousarray(images.transpose(0, 2, 3, 1))
    print(f"images: {what}")
    golden = run_numpy(graph, nhwc)
    res = simulate(design, graph, nhwc, in_stall=args.stall, out_stall=args.stall, seed=args.seed, golden=golden)
    # a second, stall-free run measures the frame interval the hardware reaches at full rate
    free = simulate(design, graph, nhwc[:min(len(nhwc), 8)], seed=args.seed, golden={
        k: v[:min(len(nhwc), 8)] for k, v in golden.items()})
    pred = design["predicted"]["frame_cycles"]
    doc = {"images": res.images, "image_source": what, "stall": args.stall, "mismatches": res.mismatches + free.mismatches,
           "cycles_per_frame": free.cycles_per_frame, "predicted_cycles_per_frame": pred,
           "prediction_error": round(free.cycles_per_frame / pred - 1, 4), "latency_cycles": free.latency_cycles,
           "fps": round(free.fps, 1), "clock_mhz": free.clock_mhz,
           "cycles_per_frame_with_stalls": res.cycles_per_frame,
           "verilator_build_s": round(res.build_s, 1), "sim_s": round(res.sim_s, 1),
           "sim_images_per_s": round(res.images / max(res.sim_s, 1e-9), 2),
           "labels_equal_golden": bool(np.array_equal(res.labels, golden["label"].reshape(-1))) if "label" in golden
           else None}
    doc["design_hash"] = design_hash(args.out)
    (Path(args.out) / "rtlsim.json").write_text(json.dumps(doc, indent=1))
    print(f"RTL simulation ({res.images} images, random stalls p={args.stall}): {res.mismatches} mismatches "
          f"against the IR golden model (every output integer); stall-free: {free.cycles_per_frame:.0f} cycles/frame "
          f"(planner {pred}, {100 * doc['prediction_error']:+.1f} %), latency {free.latency_cycles} cycles, "
          f"{free.fps:.0f} FPS at {free.clock_mhz:g} MHz")
    return 0 if doc["mismatches"] == 0 else 1


def run_synth(args, design) -> int:
    from .synth import synthesize

    t = synthesize(design, args.out)
    t["design_hash"] = design_hash(args.out)
    (Path(args.out) / "synth.json").write_text(json.dumps(t, indent=1))
    tot = t["total"]
    print(f"yosys synth_xilinx ({t['seconds']:.0f} s): {tot['lut']} LUT, {tot['ff']} FF, {tot['bram36']} BRAM36, "
          f"{tot['dsp']} DSP; Pynq-Z2 budget {t['budget']['lut']} LUT / {t['budget']['bram36']} BRAM36: "
          f"{'fits' if t['fits_pynq_z2'] else 'does NOT fit'}")
    return 0


def design_hash(out) -> str:
    """Content hash of the generated RTL (sources and memories): a measurement belongs to it."""
    from .report import design_hash as h
    return h(out)


def main(argv: list[str] | None = None) -> int:
    from .report import write_report

    args = _args(argv)
    sel, _, graph, _, design = build_rtl(args)
    rc = 0
    if args.step == "rtlsim":
        rc = run_rtlsim(args, sel, graph, design)
    elif args.step == "synth":
        rc = run_synth(args, design)
    report = write_report(args.out)
    print(f"report: {report}")
    return rc


if __name__ == "__main__":
    run_cli(main)
