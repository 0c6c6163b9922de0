"""The FINN backend's front door (project environment).

    python -m build_flow.finn.cli estimate  (--ckpt C | --config Y | --peer N) [--seed S] --out DIR
        [--board Pynq-Z2] [--fps F | --folding FILE] [--data D] [--images 8] [--verify python,cppsim]
        [--finn-venv V]
    python -m build_flow.finn.cli bitstream (same) [--image bnn-flow-finn]

Both: preflight (board, checkpoint, folding, and docker + Vivado for a bitstream, or a FINN venv for
estimates) -> export (DIR/compile/model.onnx) and IR -> the planner's folding (DIR/finn/bnn_plan.json)
-> real images and the golden model's labels -> the FINN build (build_flow/finn/build.py: in the local
FINN venv, or in the docker image) -> the saved cppsim outputs compared with the golden integers
(array_equal) -> FINN's estimates beside the planner's (DIR/finn/estimates.md).
A bitstream build collects the bitfile, hwh/xclbin, reports, driver and deploy package under DIR.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from model.errors import FlowError, run_cli

from . import preflight
from .boards import DEFAULT_BOARD

REPO = Path(__file__).resolve().parents[2]
DEFAULT_IMAGE = "bnn-flow-finn"


class FinnBuildError(FlowError):
    """The FINN build failed (its log names the step)."""


def _args(argv):
    ap = argparse.ArgumentParser(prog="python -m build_flow.finn.cli", description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=("estimate", "bitstream"))
    ap.add_argument("--ckpt")
    ap.add_argument("--config")
    ap.add_argument("--peer")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    ap.add_argument("--board", default=DEFAULT_BOARD)
    ap.add_argument("--fps", type=float, help="planner target (default 3000) unless --folding")
    ap.add_argument("--folding", help="a folding YAML (hw.planner format) instead of planning")
    ap.add_argument("--data", help="images for verification (default: seeded random)")
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--verify", default="cppsim", help="comma list of python, cppsim (+ rtlsim for bitstream)")
    ap.add_argument("--finn-venv", help="a local FINN venv (setup_local_finn.sh); else the docker image")
    ap.add_argument("--image", default=DEFAULT_IMAGE, help="docker image tag (make finn-image)")
    return ap.parse_args(argv)


def run_preflight(args):
    """Every check that needs no model: board, checkpoint, docker/Vivado or the FINN venv."""
    board = preflight.check_board(args.board)
    preflight.check_checkpoint(args.ckpt)
    if args.command == "bitstream":
        preflight.check_docker()
        preflight.check_vivado(board)
    elif args.finn_venv:
        preflight.check_finn_venv(args.finn_venv)
    else:
        preflight.check_docker()
    return board


def prepare(args, board, out: Path):
    """Export + IR, folding plan, verification images and golden outputs. Returns (graph, folding, golden)."""
    from build_flow.compile import compile_model
    from build_flow.models import select_model
    from hw.flow import DEFAULT_FPS
    from hw.planner import plan
    from verify.compare import load_images
    from verify.golden_numpy import run_numpy

    from .folding import ordered_plan, write_json

    sel = select_model(args.ckpt, args.config, args.peer, args.seed)
    _, graph = compile_model(sel, out / "compile")
    folding = preflight.check_folding(graph, args.folding)
    if folding is None:
        folding = plan(graph, board.clock_mhz, fps=args.fps or DEFAULT_FPS)
    finn_dir = out / "finn"
    finn_dir.mkdir(parents=True, exist_ok=True)
    write_json(ordered_plan(graph, folding), finn_dir / "bnn_plan.json")
    images, why = load_images(args.data, sel.input_shape, args.images, args.seed)
    golden = run_numpy(graph, images.transpose(0, 2, 3, 1), return_all=True)
    np.save(out / "verify_input.npy", images.astype(np.float32))
    np.save(out / "verify_expected.npy", golden[graph.outputs["label"]].reshape(-1, 1).astype(np.float32))
    print(f"{sel.name}: {out}/compile, folding for {board.name} at {board.clock_mhz:g} MHz, {why}")
    return graph, folding, golden


def build_command(args, out: Path) -> list[str]:
    verify = [v for v in args.verify.split(",") if v]
    return ["-m", "build_flow.finn.build", "--model", str(out / "compile" / "model.onnx"), "--ir",
            str(out / "compile" / "ir"), "--out", str(out / "finn"), "--board", args.board, "--mode", args.command,
            *(["--verify", ",".join(verify), "--verify-input", str(out / "verify_input.npy"),
                "--verify-expected", str(out / "verify_expected.npy")] if verify else [])]


def run_finn(args, out: Path) -> float:
    """Run build.py in the FINN venv or the docker image; returns the wall time."""
    cmd = build_command(args, out)
    t0 = time.perf_counter()
    if args.finn_venv and args.command == "estimate":
        venv = Path(args.finn_venv).resolve()
        env_sh = shlex.quote(str(venv / "env.sh"))
        line = f". {env_sh} && exec {shlex.quote(str(venv / 'bin' / 'python'))} " + " ".join(map(shlex.quote, cmd))
        env = dict(os.environ, PYTHONPATH=str(REPO))
        rc = subprocess.call(["bash", "-c", line], env=env, cwd=REPO)
    else:
        rc = subprocess.call(docker_command(args, out, cmd), cwd=REPO)
    if rc != 0:
        raise FinnBuildError(f"the FINN build failed (exit {rc}): see {out}/finn/build_dataflow.log")
    return time.perf_counter() - t0


def docker_command(args, out: Path, cmd: list[str]) -> list[str]:
    """docker run of the FINN image with Vivado/Vitis mounted from the host (as FINN's run-docker.sh)."""
    xilinx = os.environ.get("FINN_XILINX_PATH", "")
    run = ["docker", "run", "--rm", "--init", "-u", f"{os.getuid()}:{os.getgid()}",
           "-v", f"{REPO}:{REPO}", "-w", str(REPO), "-e", f"PYTHONPATH={REPO}",
           "-e", "NUM_DEFAULT_WORKERS=" + os.environ.get("NUM_DEFAULT_WORKERS", "4")]
    out_abs = out.resolve()
    if not str(out_abs).startswith(str(REPO)):
        run += ["-v", f"{out_abs}:{out_abs}"]
    if xilinx:
        version = os.environ.get("FINN_XILINX_VERSION", "")
        run += ["-v", f"{xilinx}:{xilinx}", "-e", f"FINN_XILINX_PATH={xilinx}", "-e", f"FINN_XILINX_VERSION={version}",
                "-e", f"VIVADO_PATH={xilinx}/Vivado/{version}", "-e", f"VITIS_PATH={xilinx}/Vitis/{version}",
                "-e", f"HLS_PATH={xilinx}/Vitis_HLS/{version}"]
    for var in ("XILINXD_LICENSE_FILE", "PLATFORM_REPO_PATHS"):
        if os.environ.get(var):
            run += ["-e", f"{var}={os.environ[var]}"]
            if var == "PLATFORM_REPO_PATHS":
                for p in os.environ[var].split(":"):
                    run += ["-v", f"{p}:{p}"]
    out_rel = [str(Path(c).resolve()) if c.startswith(str(out)) else c for c in cmd]
    return run + [args.image, "python", *out_rel]


def estimates(graph, folding, finn_dir: Path) -> str:
    """FINN's estimate reports beside the planner's figures (markdown)."""
    from hw.planner import estimate_resources, predict_cycles

    rep = finn_dir / "report"
    perf = json.loads((rep / "estimate_network_performance.json").read_text())
    res = json.loads((rep / "estimate_layer_resources.json").read_text())
    cyc = json.loads((rep / "estimate_layer_cycles.json").read_text())
    cycles = predict_cycles(graph, folding)
    pres = estimate_resources(graph, folding)
    bottleneck = max(cycles.values())
    lines = [f"FINN: {perf.get('estimated_throughput_fps', 0):,.1f} FPS (max_cycles {perf.get('max_cycles')}, "
             f"node {perf.get('max_cycles_node_name')}), critical path {perf.get('critical_path_cycles')} cycles",
             f"planner: {folding.clock_mhz * 1e6 / bottleneck:,.1f} FPS at {folding.clock_mhz:g} MHz "
             f"(bottleneck {bottleneck} cycles)", "",
             "| FINN node | cycles | LUT | BRAM_18K | DSP |", "|---|---:|---:|---:|---:|"]
    for name, r in res.items():
        if name == "total":
            continue
        lines.append(f"| {name} | {cyc.get(name, '')} | {r.get('LUT', 0):,.0f} | {r.get('BRAM_18K', 0):,.0f} | "
                     f"{r.get('DSP', 0):,.0f} |")
    tot = res.get("total", {})
    lines.append(f"| **total** | {perf.get('max_cycles')} (max) | {tot.get('LUT', 0):,.0f} | "
                 f"{tot.get('BRAM_18K', 0):,.0f} | {tot.get('DSP', 0):,.0f} |")
    lines += ["", "| IR layer (planner) | pe | simd | cycles | LUT | BRAM36 |", "|---|---:|---:|---:|---:|---:|"]
    for layer in graph.layers:
        f = folding.layers.get(layer.name, {})
        r = pres[layer.name]
        lines.append(f"| {layer.name} ({layer.op}) | {f.get('pe', '')} | {f.get('simd', '')} | {cycles[layer.name]} | "
                     f"{r['lut']:,} | {r['bram36']:g} |")
    lines.append(f"| **total** | | | {bottleneck} (max) | {sum(r['lut'] for r in pres.values()):,} | "
                 f"{sum(r['bram36'] for r in pres.values()):g} |")
    return "\n".join(lines) + "\n"


def collect(out: Path, board_name: str) -> Path:
    """Bitfile, hwh/xclbin, reports, driver and deploy package -> build/<board>/."""
    dest = REPO / "build" / board_name
    dest.mkdir(parents=True, exist_ok=True)
    finn_dir = out / "finn"
    for sub in ("bitfile", "report", "driver", "deploy", "stitched_ip/ip/report"):
        src = finn_dir / sub
        if src.exists():
            shutil.copytree(src, dest / Path(sub).name, dirs_exist_ok=True)
    return dest


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    if sum(x is not None for x in (args.ckpt, args.config, args.peer)) != 1:
        raise preflight.PreflightError("give exactly one of --ckpt, --config, --peer")
    board = run_preflight(args)
    out = Path(args.out)
    graph, folding, golden = prepare(args, board, out)
    wall = run_finn(args, out)
    print(f"FINN {args.command} build: {wall:.0f} s")
    finn_dir = out / "finn"
    summary = {"board": board.name, "finn_wall_s": round(wall, 1)}
    if "cppsim" in args.verify.split(","):
        from .compare import compare_step, format_report

        rep = compare_step(finn_dir, "folded_hls_cppsim", graph, golden)
        print(format_report(rep))
        summary["cppsim"] = rep
        if not (rep["all_layers_equal"] and rep["all_labels_equal"]):
            (finn_dir / "compare.json").write_text(json.dumps(summary, indent=1))
            raise FinnBuildError(f"cppsim outputs differ from the golden model: see {finn_dir}/compare.json")
    (finn_dir / "compare.json").write_text(json.dumps(summary, indent=1))
    text = estimates(graph, folding, finn_dir)
    (finn_dir / "estimates.md").write_text(text)
    print(text)
    if args.command == "bitstream":
        print(f"collected under {collect(out, board.name)}")
    return 0


if __name__ == "__main__":
    run_cli(main)
