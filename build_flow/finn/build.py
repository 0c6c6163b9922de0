"""The FINN build (finn-examples shape): QONNX file -> dataflow IP -> bitstream, in FINN's environment.

    python -m build_flow.finn.build --model M.onnx --out DIR [--ir IR_DIR] [--board Pynq-Z2]
        [--mode estimate|bitstream] [--verify-input X.npy --verify-expected Y.npy] [--verify python,cppsim,rtlsim]

Runs inside the FINN docker image or a local FINN venv (setup_local_finn.sh); `python -m
build_flow.finn.cli` prepares everything it reads (the QONNX export, DIR/bnn_plan.json with the
planner's folding, real images and the golden model's labels) and calls it. The step list below is the
table of contents of the flow; every step saves its model under DIR/intermediate_models.
"""
from __future__ import annotations

import argparse
import os
import sys

from .boards import DEFAULT_BOARD, get_board

# Python-only (FINN's estimate steps + hw codegen): needs neither Vivado nor Vitis HLS
ESTIMATE_STEPS = [
    "build_flow.finn.custom_steps:step_bnn_prepare",
    "build_flow.finn.custom_steps:step_bnn_qonnx_to_finn",
    "step_tidy_up",
    "build_flow.finn.custom_steps:step_bnn_streamline",
    "build_flow.finn.custom_steps:step_bnn_convert_to_hw",
    "step_create_dataflow_partition",
    "build_flow.finn.custom_steps:step_bnn_specialize_config",
    "step_specialize_layers",
    "build_flow.finn.custom_steps:step_bnn_folding",
    "step_apply_folding_config",          # + FOLDED_HLS_CPPSIM verification
    "build_flow.finn.verify_steps:step_bnn_check_cppsim",   # array_equal to the golden model, or stop here
    "step_minimize_bit_width",
    "step_generate_estimate_reports",
    "step_hw_codegen",
]
# + Vitis HLS / Vivado
BITSTREAM_STEPS = ESTIMATE_STEPS + [
    "step_hw_ipgen",
    "step_set_fifo_depths",
    "step_create_stitched_ip",            # + STITCHED_IP_RTLSIM verification
    "build_flow.finn.verify_steps:step_bnn_check_rtlsim",   # labels equal to the golden model, or stop here
    "step_measure_rtlsim_performance",
    "step_synthesize_bitfile",
    "build_flow.finn.verify_steps:step_bnn_vivado_reports", # negative slack or over-utilization stops here
    "step_make_pynq_driver",
    "step_deployment_package",
]
VERIFY = {
    "python": ["QONNX_TO_FINN_PYTHON", "TIDY_UP_PYTHON", "STREAMLINED_PYTHON"],
    "cppsim": ["FOLDED_HLS_CPPSIM"],
    "rtlsim": ["STITCHED_IP_RTLSIM"],
}


def with_context(step, **context):
    """FINN calls a step as step(model, cfg) and names it by __name__: a step of this project that takes
    more (the IR folder, the golden outputs) gets them bound here, under its own name."""
    import inspect

    wanted = {k: v for k, v in context.items() if k in inspect.signature(step).parameters}
    if not wanted:
        return step

    def bound(model, cfg):
        return step(model, cfg, **wanted)
    bound.__name__, bound.__doc__ = step.__name__, step.__doc__
    return bound


def _resolve(steps, **context):
    """'module:function' entries -> callables with `context` bound (FINN's builder takes names of its
    own steps or callables)."""
    import importlib

    out = []
    for s in steps:
        if ":" in s:
            mod, fn = s.split(":")
            out.append(with_context(getattr(importlib.import_module(mod), fn), **context))
        else:
            out.append(s)
    return out


def make_config(out_dir: str, board_name: str, mode: str, verify: list[str], verify_input: str | None,
                verify_expected: str | None, ir_dir: str | None = None, golden: str | None = None):
    import finn.builder.build_dataflow_config as build_cfg

    board = get_board(board_name)
    steps = ESTIMATE_STEPS if mode == "estimate" else BITSTREAM_STEPS
    outputs = [build_cfg.DataflowOutputType.ESTIMATE_REPORTS]
    if mode == "bitstream":
        # no OOC_SYNTH: a second full synthesis that finn-examples' BNN builds do not run
        outputs += [build_cfg.DataflowOutputType.STITCHED_IP, build_cfg.DataflowOutputType.RTLSIM_PERFORMANCE,
                    build_cfg.DataflowOutputType.BITFILE,
                    build_cfg.DataflowOutputType.PYNQ_DRIVER, build_cfg.DataflowOutputType.DEPLOYMENT_PACKAGE]
    verify_steps = [getattr(build_cfg.VerificationStepType, v) for k in verify for v in VERIFY[k]]
    kwargs = dict(
        output_dir=out_dir,
        steps=_resolve(steps, ir_dir=ir_dir, golden=golden),
        synth_clk_period_ns=board.clk_ns,
        board=board.name,
        shell_flow_type=getattr(build_cfg.ShellFlowType, board.shell.upper()),
        generate_outputs=outputs,
        verify_steps=verify_steps,
        verify_save_full_context=True,     # the partition's internal integers, for compare.py
        enable_build_pdb_debug=False,
        save_intermediate_models=True,
        minimize_bit_width=True,
    )
    if mode == "bitstream":
        kwargs["rtlsim_batch_size"] = 10   # steady-state cycles per frame, not one frame's latency
    if board.alveo:
        kwargs["vitis_platform"] = board.platform
    if verify_steps:
        kwargs["verify_input_npy"] = verify_input
        kwargs["verify_expected_output_npy"] = verify_expected
    return build_cfg.DataflowBuildConfig(**kwargs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m build_flow.finn.build", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="the QONNX file (python -m build_flow.export)")
    ap.add_argument("--out", required=True, help="FINN's output folder (DIR/bnn_plan.json: the folding)")
    ap.add_argument("--ir", help="the project's IR of the same export (exact integer thresholds); "
                                 "default: the 'ir' folder beside --model, where build_flow.compile writes it")
    ap.add_argument("--board", default=DEFAULT_BOARD)
    ap.add_argument("--mode", choices=("estimate", "bitstream"), default="estimate")
    ap.add_argument("--verify", default="", help="comma list of python, cppsim, rtlsim")
    ap.add_argument("--verify-input")
    ap.add_argument("--verify-expected")
    ap.add_argument("--golden", help="the golden model's outputs (compare.save_golden): the early array_equal checks")
    args = ap.parse_args(argv)
    verify = [v for v in args.verify.split(",") if v]
    for v in verify:
        if v not in VERIFY:
            ap.error(f"--verify: unknown '{v}' (known: {', '.join(VERIFY)})")
    if verify and not (args.verify_input and args.verify_expected):
        ap.error("--verify needs --verify-input and --verify-expected")
    from finn.builder.build_dataflow import build_dataflow_cfg

    ir_dir = os.path.abspath(args.ir or os.path.join(os.path.dirname(args.model), "ir"))
    if not os.path.isfile(os.path.join(ir_dir, "graph.json")):
        ap.error(f"--ir {ir_dir}: no IR (graph.json) of the model (python -m build_flow.compile writes it "
                 "beside the QONNX file)")
    golden = os.path.abspath(args.golden) if args.golden else None
    cfg = make_config(args.out, args.board, args.mode, verify, args.verify_input, args.verify_expected,
                      ir_dir=ir_dir, golden=golden)
    return build_dataflow_cfg(args.model, cfg)


if __name__ == "__main__":
    sys.exit(main())
