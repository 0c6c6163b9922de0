"""The open RTL backend's steps, from a model to simulated and synthesized hardware.

    python -m hw.flow rtl    MODEL [--fps F | --lut-budget N | --folding FILE] [--clock-mhz 100] --out DIR
    python -m hw.flow rtlsim MODEL ... [--images N] [--data D] [--stall P]
    python -m hw.flow synth  MODEL ...
    python -m hw.flow pnr    MODEL ... [--device 85k]
    python -m hw.flow bitstream MODEL ... --board ulx3s-85f [--pll-mhz F]
    python -m hw.flow plan   (--config Y [--config Y2 ...] | --ckpt C | --peer NAME) [--fps 3020 | --lut-budget N]

MODEL is --ckpt C, --config Y or --peer NAME (with --seed), as for verify.compare.

rtl     export + lower (DIR/model.onnx, DIR/ir), plan or read the folding (DIR/folding.yaml),
        generate the RTL (DIR/rtl, DIR/design.json)
rtlsim  rtl, then Verilator: N images through the accelerator with random stalls, every
        output integer compared with the IR golden model; cycles/frame, latency, FPS
        (DIR/rtlsim.json); exit 1 on any mismatch
synth   rtl, then Yosys synth_xilinx: LUT/FF/BRAM/DSP per layer (DIR/synth.json)
pnr     rtl, then Yosys synth_ecp5 + nextpnr-ecp5 of the accelerator alone: Fmax, critical path,
        utilization of the ECP5 (DIR/pnr.json)
bitstream  rtl, then the accelerator behind its serial link in the board's top, PLL at the clock
        P&R allows (--pll-mhz first, else DIR/pnr.json's Fmax, else --clock-mhz; lower on a timing
        failure), Yosys -> nextpnr -> ecppack: DIR/bitstream/<board>.bit and bitstream.json (hw/bitstream.py);
        then `python -m hw.uart_host --port … --build DIR` checks the board against the golden model
plan    screening in seconds, no RTL, no training: each model (a config gets random weights and
        BatchNorm, since the planner needs only the shapes and threshold counts) -> IR -> the
        least-LUT folding for --fps (default 3020, FINN CNV_1W1A's), the fastest within
        --lut-budget, or a --folding file; one line per model: binary MMACs, FPS at the clock,
        the planner's LUT / FF / BRAM36 estimate (within 15 % of Yosys in total on the flagship
        and CNV_1W1A), and whether it fits the Pynq-Z2 (53,200 LUT, 140 BRAM36; --lut-budget
        replaces the LUT figure) at >= --fps. --out DIR is optional (DIR/<model>/ keeps the IR
        and folding.yaml); without it everything goes to a temporary folder

rtl, rtlsim and synth write DIR/report.md with the charts of what has been measured so far.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np

from model.errors import ConfigError, run_cli

from .synth import PYNQ_Z2

DEFAULT_FPS = 3000.0
PLAN_FPS = 3020.0  # FINN CNV_1W1A at 100 MHz (finn-examples): the rate a screened candidate must reach


def _args(argv):
    ap = argparse.ArgumentParser(prog="python -m hw.flow", description=__doc__.split("\n\n")[0],
                                 epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", choices=("rtl", "rtlsim", "synth", "pnr", "bitstream", "plan"))
    ap.add_argument("--ckpt")
    ap.add_argument("--config", action="append", help="a student config (random weights); plan takes several")
    ap.add_argument("--peer")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="the build folder (required except for plan)")
    ap.add_argument("--fps", type=float, help=f"target frames/s (default {DEFAULT_FPS:g} unless --lut-budget/"
                    f"--folding; plan: the rate to reach, default {PLAN_FPS:g})")
    ap.add_argument("--lut-budget", type=int, help="the fastest folding whose estimated LUTs fit "
                    "(plan: also the LUT budget it is checked against)")
    ap.add_argument("--folding", help="a folding file (YAML) to use instead of planning")
    ap.add_argument("--clock-mhz", type=float, default=100.0)
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--data", help="real images (zip, ImageFolder or cifar-10-batches-py); else seeded random")
    ap.add_argument("--stall", type=float, default=0.2, help="probability of a stall on each side, per cycle")
    ap.add_argument("--device", default="85k", help="pnr: ECP5 device (85k, 45k, 25k; CABGA381, speed 6)")
    ap.add_argument("--pnr-seed", type=int, default=1, help="pnr, bitstream: nextpnr's placement seed")
    ap.add_argument("--board", default="ulx3s-85f", help="bitstream: the board (open tools: ulx3s-85f)")
    ap.add_argument("--pll-mhz", type=float, help="bitstream: the PLL clock of the first attempt")
    args = ap.parse_args(argv)
    if args.step != "plan" and not args.out:
        ap.error(f"the following arguments are required for {args.step}: --out")
    return args


def _one_config(args) -> str | None:
    """The single --config of an RTL build (only plan screens several models at once); callers
    building their own namespace (build_flow.demo) may pass one path as a string."""
    if not args.config or isinstance(args.config, str):
        return args.config or None
    if len(args.config) > 1:
        step = getattr(args, "step", "rtl")
        raise ConfigError(f"--config given {len(args.config)} times: {step} builds one model (plan takes several)")
    return args.config[0]


def build_rtl(args) -> tuple:
    """Model -> IR -> folding -> RTL; returns (selected model, qonnx model, graph, folding, design)."""
    from build_flow.compile import compile_model
    from build_flow.models import select_model

    from .generate import generate
    from .planner import load_folding, plan, save_folding

    out = Path(args.out)
    sel = select_model(args.ckpt, _one_config(args), args.peer, args.seed)
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


def run_pnr(args, design) -> int:
    """Yosys synth_ecp5 + nextpnr-ecp5 (open tools from PyPI): Fmax, critical path, utilization."""
    from .pnr import DEVICES, check_fits, place_and_route

    for line in check_fits(design, DEVICES[args.device]):
        print(f"warning: {line}")
    t = place_and_route(design, args.out, freq_mhz=args.clock_mhz, device=args.device, seed=args.pnr_seed)
    t["design_hash"] = design_hash(args.out)
    (Path(args.out) / "pnr.json").write_text(json.dumps(t, indent=1))
    u, b = t["used"], t["budget"]
    frame = design["predicted"]["frame_cycles"]
    crit = next(iter(t["critical"].values()), {}) if t["critical"] else {}
    print(f"nextpnr-ecp5 {t['part']} (yosys {t['yosys_s']:.0f} s, P&R {t['nextpnr_s']:.0f} s): Fmax "
          f"{t['fmax_mhz']} MHz ({'meets' if t['timing_met'] else 'FAILS'} {t['target_mhz']:g} MHz), "
          f"{u['lut4']}/{b['lut4']} LUT4, {u['ff']}/{b['ff']} FF, {u['dp16kd']}/{b['dp16kd']} DP16KD; "
          f"{min(t['fmax_mhz'] or 0, t['target_mhz']) * 1e6 / frame:.0f} FPS at "
          f"{min(t['fmax_mhz'] or 0, t['target_mhz']):g} MHz; critical path {crit.get('delay_ns')} ns "
          f"{crit.get('source')} -> {crit.get('sink')}")
    return 0 if t["timing_met"] and t["fits"] else 1


def run_bitstream(args, design) -> int:
    """The open bitstream (hw/bitstream.py): board top, PLL, Yosys, nextpnr, ecppack."""
    from .bitstream import build_bitstream

    doc = build_bitstream(design, args.out, board=args.board, clock_mhz=args.pll_mhz, seed=args.pnr_seed)
    u, b, st = doc["used"], doc["budget"], doc["steps_s"]
    print(f"{args.out}/bitstream/{doc['bit']}: PLL {doc['pll_mhz']:g} MHz (Fmax {doc['fmax_mhz']} MHz), "
          f"{u['lut4']}/{b['lut4']} LUT4, {u['ff']}/{b['ff']} FF, {u['dp16kd']}/{b['dp16kd']} DP16KD; "
          f"accelerator {doc['accelerator_fps']:.0f} FPS at that clock, serial link {doc['link_fps']:.0f} "
          f"frames/s at {doc['baud']} baud; steps (s): {st}")
    return 0


def _screened_models(args) -> list[tuple]:
    """(ckpt, config, peer) of every model plan screens, in the order given."""
    models = [(None, c, None) for c in args.config or []]
    models += [(args.ckpt, None, None)] if args.ckpt else []
    models += [(None, None, args.peer)] if args.peer else []
    if not models:
        raise ConfigError("plan: give the models to screen: --config Y (one or more), --ckpt C or --peer NAME")
    return models


def plan_one(sel, out_dir: Path, args, fps: float, budget: dict) -> dict:
    """Compile one model to the IR, plan it and return its screening row (planner estimates)."""
    from build_flow.compile import compile_model

    from .planner import binary_macs, estimate_resources, load_folding, plan, predict_cycles, save_folding

    _, graph = compile_model(sel, out_dir)
    if args.folding:  # a given folding instead of a plan: what it reaches and costs
        folding = load_folding(args.folding, graph)
    elif args.lut_budget:
        folding = plan(graph, args.clock_mhz, lut_budget=args.lut_budget)
    else:
        folding = plan(graph, args.clock_mhz, fps=fps)
    save_folding(folding, out_dir / "folding.yaml")
    res = estimate_resources(graph, folding)
    total = {"lut": sum(r["lut"] for r in res.values()), "ff": sum(r["ff"] for r in res.values()),
             "bram36": round(sum(r["bram36"] for r in res.values()), 1)}
    reached = args.clock_mhz * 1e6 / max(predict_cycles(graph, folding).values())
    from .pnr import DEVICES, fit_shortfalls
    ecp5 = [f"{k.upper()} {est:.0f} > {budget}" for k, est, budget in fit_shortfalls(res, DEVICES["85k"])]
    return {"name": sel.name, "mmacs": binary_macs(graph) / 1e6, "fps": reached, **total,
            "short": _shortfalls(reached, total, fps, budget), "ecp5_short": ecp5}


def _shortfalls(reached: float, total: dict, fps: float, budget: dict) -> list[str]:
    """Why a plan does not fit: the FPS it misses, the resources it exceeds (empty: it fits)."""
    short = [f"{reached:.0f} FPS < {fps:g}"] if reached < fps else []
    short += [f"LUT {total['lut']} > {budget['lut']}"] if total["lut"] > budget["lut"] else []
    short += [f"BRAM36 {total['bram36']:g} > {budget['bram36']}"] if total["bram36"] > budget["bram36"] else []
    return short


def run_plan(args) -> int:
    """Screen each model: one line with its binary MMACs, FPS and estimated resources."""
    import tempfile

    from build_flow.models import select_model

    fps = args.fps if args.fps is not None else PLAN_FPS
    if not math.isfinite(fps) or fps <= 0:
        raise ConfigError(f"plan: --fps {fps:g} must be a positive number of frames per second")
    if args.lut_budget is not None and args.lut_budget <= 0:
        raise ConfigError(f"plan: --lut-budget {args.lut_budget} must be positive")
    budget = {"lut": args.lut_budget or PYNQ_Z2["lut"], "bram36": PYNQ_Z2["bram36"]}
    sels = [select_model(ckpt, config, peer, args.seed) for ckpt, config, peer in _screened_models(args)]
    with tempfile.TemporaryDirectory() as tmp:
        rows = [plan_one(sel, Path(args.out or tmp) / sel.name, args, fps, budget) for sel in sels]
    # the table after every compile, so that the exporters' warnings do not land inside it
    print(f"plan at {args.clock_mhz:g} MHz for >= {fps:g} FPS; budget {budget['lut']} LUT, {budget['bram36']} BRAM36 "
          f"(Pynq-Z2{', LUT budget given' if args.lut_budget else ''}); planner estimates, no synthesis")
    print(f"{'model':32} {'binary MMACs':>12} {'FPS':>7} {'LUT':>7} {'FF':>7} {'BRAM36':>7}  fits; "
          f"ECP5-85F (LUT4 = 2 LUT, DP16KD = 2 BRAM36; 83640 LUT4, 83640 FF, 208 DP16KD)")
    for row in rows:
        verdict = "no (" + ", ".join(row["short"]) + ")" if row["short"] else "yes"
        ecp5 = "no (" + ", ".join(row["ecp5_short"]) + ")" if row["ecp5_short"] else "yes"
        print(f"{row['name']:32} {row['mmacs']:12.1f} {row['fps']:7.0f} {row['lut']:7d} {row['ff']:7d} "
              f"{row['bram36']:7.1f}  {verdict}; ECP5-85F {ecp5}")
    return 0


def design_hash(out) -> str:
    """Content hash of the generated RTL (sources and memories): a measurement belongs to it."""
    from .report import design_hash as h
    return h(out)


def main(argv: list[str] | None = None) -> int:
    from .report import write_report

    args = _args(argv)
    if args.step == "plan":
        return run_plan(args)
    sel, _, graph, _, design = build_rtl(args)
    rc = 0
    if args.step == "rtlsim":
        rc = run_rtlsim(args, sel, graph, design)
    elif args.step == "synth":
        rc = run_synth(args, design)
    elif args.step == "pnr":
        rc = run_pnr(args, design)
    elif args.step == "bitstream":
        rc = run_bitstream(args, design)
    report = write_report(args.out)
    print(f"report: {report}")
    return rc


if __name__ == "__main__":
    run_cli(main)
