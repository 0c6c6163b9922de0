"""The open RTL backend's steps, from a model to simulated and synthesized hardware.

    python -m build_flow.rtl_flow rtl    MODEL [--fps F | --lut-budget N | --folding FILE] [--clock-mhz 100] --out DIR
    python -m build_flow.rtl_flow rtlsim MODEL ... [--images N] [--data D] [--stall P]
    python -m build_flow.rtl_flow synth  MODEL ...
    python -m build_flow.rtl_flow pnr    MODEL ... [--device 85k]
    python -m build_flow.rtl_flow bitstream MODEL ... --board ulx3s-85f [--pll-mhz F]
    python -m build_flow.rtl_flow plan   (--config Y [--config Y2 ...] | --ckpt C | --peer NAME) [--fps 3020 | --lut-budget N]

MODEL is --ckpt C, --config Y or --peer NAME (with --seed), as for build_flow.verify_model.

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
        then `python -m build_flow.board_check --port … --build DIR` checks the board against the golden model
plan    screening in seconds, no RTL, no training: each model (a config gets random weights and
        BatchNorm, since the planner needs only the shapes and threshold counts) -> IR -> the
        least-LUT folding for --fps (default 3020, FINN CNV_1W1A's), the fastest within
        --lut-budget, or a --folding file; one line per model: binary MMACs, FPS at the clock,
        the planner's LUT / FF / BRAM36 estimate (within 15 % of Yosys in total on the flagship
        and CNV_1W1A), and whether it fits the Pynq-Z2 (53,200 LUT, 140 BRAM36; --lut-budget
        replaces the LUT figure) at >= --fps. --out DIR is optional (DIR/<model>/ keeps the IR
        and folding.yaml); without it everything goes to a temporary folder

rtl, rtlsim and synth write DIR/report.md with the charts of what has been measured so far.
Each step is a stage of build_flow/pipeline.py; this module only reads the command line.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from hw.mvtu_mem import FAMILIES
from hw.synth import PYNQ_Z2
from model.errors import ConfigError, run_cli

from .options import DEFAULT_CLOCK_MHZ, DEFAULT_FPS, PLAN_FPS, add_model_args, model_args
from .pipeline import (ImageRequest, ModelChoice, PlanRequest, bitstream_stage, build_rtl, check_plan_request,
                       pnr_stage, rtlsim_stage, screen_stage, synth_stage)


def _args(argv):
    ap = argparse.ArgumentParser(prog="python -m build_flow.rtl_flow", description=__doc__.split("\n\n")[0],
                                 epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", choices=("rtl", "rtlsim", "synth", "pnr", "bitstream", "plan"))
    add_model_args(ap, several_configs=True)
    ap.add_argument("--out", help="the build folder (required except for plan)")
    ap.add_argument("--fps", type=float, help=f"target frames/s (default {DEFAULT_FPS:g} unless --lut-budget/"
                    f"--folding; plan: the rate to reach, default {PLAN_FPS:g})")
    ap.add_argument("--lut-budget", type=int, help="the fastest folding whose estimated LUTs fit "
                    "(plan: also the LUT budget it is checked against)")
    ap.add_argument("--folding", help="a folding file (YAML) to use instead of planning")
    ap.add_argument("--clock-mhz", type=float, default=DEFAULT_CLOCK_MHZ)
    ap.add_argument("--family", choices=FAMILIES, help="the FPGA family the RTL is built for (default: ecp5 "
                    "for pnr and bitstream, else the folding file's, else xc7): ecp5 keeps logic weight ROMs "
                    "in banks of 16 words (one LUT4 each)")
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


def _family(args) -> str | None:
    """The family to build for: --family, else the ECP5 for the steps that place and route on one."""
    return args.family or ("ecp5" if args.step in ("pnr", "bitstream") else None)


def _screened_models(args) -> list[ModelChoice]:
    """Every model plan screens, in the order given."""
    models = [ModelChoice(config=c, seed=args.seed) for c in args.config or []]
    models += [ModelChoice(ckpt=args.ckpt, seed=args.seed)] if args.ckpt else []
    models += [ModelChoice(peer=args.peer, seed=args.seed)] if args.peer else []
    if not models:
        raise ConfigError("plan: give the models to screen: --config Y (one or more), --ckpt C or --peer NAME")
    return models


def run_plan(args) -> int:
    """Screen each model: one line with its binary MMACs, FPS and estimated resources."""
    fps = args.fps if args.fps is not None else PLAN_FPS
    check_plan_request(fps, args.lut_budget)
    budget = {"lut": args.lut_budget or PYNQ_Z2["lut"], "bram36": PYNQ_Z2["bram36"]}
    req = PlanRequest(lut_budget=args.lut_budget, folding=args.folding, clock_mhz=args.clock_mhz)
    models = _screened_models(args)
    with tempfile.TemporaryDirectory() as tmp:
        rows = screen_stage(models, req, fps, budget, Path(args.out or tmp))
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


def main(argv: list[str] | None = None) -> int:
    from hw.report import write_report

    args = _args(argv)
    if args.step == "plan":
        return run_plan(args)
    ckpt, config, peer, seed = model_args(args, args.step)
    build = build_rtl(ModelChoice(ckpt, config, peer, seed),
                      PlanRequest(args.fps, args.lut_budget, args.folding, args.clock_mhz, _family(args)), args.out)
    rc = 0
    if args.step == "rtlsim":
        doc = rtlsim_stage(build, ImageRequest(args.images, args.data, args.seed), args.stall)
        rc = 0 if doc["mismatches"] == 0 else 1
    elif args.step == "synth":
        synth_stage(build)
    elif args.step == "pnr":
        t = pnr_stage(build, args.device, args.pnr_seed, args.clock_mhz)
        rc = 0 if t["timing_met"] and t["fits"] else 1
    elif args.step == "bitstream":
        bitstream_stage(build, args.board, args.pll_mhz, args.pnr_seed)
    report = write_report(args.out)
    print(f"report: {report}")
    return rc


if __name__ == "__main__":
    run_cli(main)
