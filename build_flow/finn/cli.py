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
import time
from pathlib import Path

import numpy as np

from build_flow.options import DEFAULT_FPS, add_model_args, model_args
from model.errors import FlowError, run_cli

from . import preflight
from .boards import DEFAULT_BOARD, get_board

REPO = Path(__file__).resolve().parents[2]
DEFAULT_IMAGE = "bnn-flow-finn"


class FinnBuildError(FlowError):
    """The FINN build failed (its log names the step)."""


def _write(path: Path, text: str) -> None:
    """Write via a temp file and rename (no half-written file is left if the run stops)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _args(argv):
    ap = argparse.ArgumentParser(prog="python -m build_flow.finn.cli", description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=("estimate", "bitstream"))
    add_model_args(ap)
    ap.add_argument("--out", required=True)
    ap.add_argument("--board", default=DEFAULT_BOARD)
    ap.add_argument("--fps", type=float, help=f"planner target (default {DEFAULT_FPS:g}) unless --folding")
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
    from build_flow.ir import load_ir
    from build_flow.pipeline import ModelChoice, compile_stage, save_folded_ir
    from hw.planner import folding_from_ir, plan
    from verify.compare import load_images
    from verify.golden_numpy import run_numpy

    from .folding import ordered_plan, write_json

    sel, _, graph = compile_stage(ModelChoice(*model_args(args)), out / "compile")
    folding = preflight.check_folding(graph, args.folding)
    if folding is None:
        folding = plan(graph, board.clock_mhz, fps=args.fps or DEFAULT_FPS)
    # the folded IR is the one source of the folding: FINN's plan (and so folding_config.json) is read back from it
    save_folded_ir(graph, folding, out / "compile" / "ir")
    graph = load_ir(out / "compile" / "ir")
    finn_dir = out / "finn"
    finn_dir.mkdir(parents=True, exist_ok=True)
    write_json(ordered_plan(graph, folding_from_ir(graph)), finn_dir / "bnn_plan.json")
    images, why = load_images(args.data, sel.input_shape, args.images, args.seed)
    golden = run_numpy(graph, images.transpose(0, 2, 3, 1), return_all=True)
    np.save(out / "verify_input.npy", images.astype(np.float32))
    np.save(out / "verify_expected.npy", golden[graph.outputs["label"]].reshape(-1, 1).astype(np.float32))
    # what the early checks inside the FINN build compare with (verify_steps.py) and the deploy package sends
    from .compare import save_golden

    save_golden(finn_dir / "golden.npz", graph, golden)
    np.save(out / "deploy_images.npy", images.transpose(0, 2, 3, 1).astype(np.uint8))   # NHWC: the host Transpose
    truth = _true_labels(args.data, sel.input_shape, args.images, args.seed)
    if truth is not None:
        np.save(out / "deploy_true_labels.npy", truth)
    print(f"{sel.name}: {out}/compile, folding for {board.name} at {board.clock_mhz:g} MHz, {why}")
    return graph, folding, golden


def _true_labels(data, shape, n, seed):
    """The dataset labels of the images verify.compare.load_images picks (same selection), or None."""
    if not data:
        return None
    import torch

    from model.data import load_cifar10

    ds = load_cifar10(data, "all", limit_per_class=max(1, -(-n // 10)))
    if tuple(ds.images.shape[1:]) != tuple(shape):
        return None
    idx = torch.randperm(len(ds.labels), generator=torch.Generator().manual_seed(seed))[:n]
    return np.asarray(ds.labels[idx]).astype(np.int64)


def build_command(args, out: Path) -> list[str]:
    verify = [v for v in args.verify.split(",") if v]
    return ["-m", "build_flow.finn.build", "--model", str(out / "compile" / "model.onnx"), "--ir",
            str(out / "compile" / "ir"), "--out", str(out / "finn"), "--board", args.board, "--mode", args.command,
            *(["--verify", ",".join(verify), "--verify-input", str(out / "verify_input.npy"),
                "--verify-expected", str(out / "verify_expected.npy"),
                "--golden", str(out / "finn" / "golden.npz")] if verify else [])]


def run_finn(args, out: Path) -> float:
    """Run build.py in the FINN venv or the docker image; returns the wall time."""
    cmd = build_command(args, out)
    # results of an earlier build in the same OUT would be read as this one's (failure_message, compare)
    finn_dir = out / "finn"
    for stale in ("compare_cppsim.json", "compare_rtlsim.json", "report/timing_fit.json", "compare.json"):
        (finn_dir / stale).unlink(missing_ok=True)
    shutil.rmtree(finn_dir / "verification_output", ignore_errors=True)
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
        raise FinnBuildError(failure_message(out / "finn", rc))
    return time.perf_counter() - t0


def failure_message(finn_dir: Path, rc: int) -> str:
    """One line: which early check stopped the build (verify_steps.py), else where FINN's log is."""
    for name, what in (("compare_cppsim.json", "cppsim outputs differ from the golden model"),
                       ("compare_rtlsim.json", "stitched-IP rtlsim labels differ from the golden model")):
        f = finn_dir / name
        if f.is_file():
            rep = json.loads(f.read_text())
            if not (rep["all_labels_equal"] and rep["all_layers_equal"] in (True, None)):
                bad = [r["image"] for r in rep["rows"] if not (r.get("layers_equal", True) and r["label_equal"])]
                return f"{what} (images {bad}): the build stopped there; see {f}"
    f = finn_dir / "report" / "timing_fit.json"
    if f.is_file():
        rep = json.loads(f.read_text())
        if rep["problems"]:
            return "; ".join(rep["problems"]) + f" (Vivado's reports: {f.parent})"
    return f"the FINN build failed (exit {rc}): see {finn_dir}/build_dataflow.log"


def docker_command(args, out: Path, cmd: list[str], env=os.environ, home: Path | None = None) -> list[str]:
    """docker run of the FINN image with Vivado/Vitis mounted from the host, as FINN's run-docker.sh does:
    the host's user (uid:gid with /etc/passwd and /etc/group), a host build folder OUT/finn_build as
    FINN_BUILD_DIR (HLS/Vivado projects and logs, the IP cache: kept after the container), LD_PRELOAD of
    libudev for Vivado's licence manager, ~/.Xilinx and licence files mounted, unbuffered output."""
    home = Path(home or Path.home())
    out_abs = out.resolve()
    build_dir = out_abs / "finn_build"
    build_dir.mkdir(parents=True, exist_ok=True)
    run = ["docker", "run", "--rm", "--init", "-u", f"{os.getuid()}:{os.getgid()}",
           "-v", "/etc/passwd:/etc/passwd:ro", "-v", "/etc/group:/etc/group:ro",
           "-v", f"{REPO}:{REPO}", "-w", str(REPO), "-e", f"PYTHONPATH={REPO}", "-e", "PYTHONUNBUFFERED=1",
           "-e", "SHELL=/bin/bash", "-e", "HOME=/tmp/home_dir",
           "-e", "LD_PRELOAD=/lib/x86_64-linux-gnu/libudev.so.1",
           "-e", f"FINN_BUILD_DIR={build_dir}", "-e", f"VIVADO_IP_CACHE={build_dir / 'vivado_ip_cache'}",
           "-e", "NUM_DEFAULT_WORKERS=" + env.get("NUM_DEFAULT_WORKERS", "4")]
    if not str(out_abs).startswith(str(REPO) + os.sep):
        run += ["-v", f"{out_abs}:{out_abs}"]
    if (home / ".Xilinx").is_dir():
        run += ["-v", f"{home / '.Xilinx'}:/tmp/home_dir/.Xilinx"]
    xilinx = env.get("FINN_XILINX_PATH", "")
    if xilinx:
        version = env.get("FINN_XILINX_VERSION", "")
        run += ["-v", f"{xilinx}:{xilinx}", "-e", f"FINN_XILINX_PATH={xilinx}", "-e", f"FINN_XILINX_VERSION={version}",
                "-e", f"VIVADO_PATH={xilinx}/Vivado/{version}", "-e", f"HLS_PATH={xilinx}/Vitis_HLS/{version}"]
        if get_board(args.board).alveo:        # the entrypoint then needs XRT (as FINN's)
            run += ["-e", f"VITIS_PATH={xilinx}/Vitis/{version}"]
    lic = env.get("XILINXD_LICENSE_FILE")
    if lic:
        run += ["-e", f"XILINXD_LICENSE_FILE={lic}"]
        for entry in lic.split(":"):        # port@server entries need no mount; files and folders do
            if entry and "@" not in entry and Path(entry).exists() and not entry.startswith(xilinx or "\0"):
                run += ["-v", f"{entry}:{entry}:ro"]
    if env.get("PLATFORM_REPO_PATHS"):
        run += ["-e", f"PLATFORM_REPO_PATHS={env['PLATFORM_REPO_PATHS']}"]
        for p in env["PLATFORM_REPO_PATHS"].split(":"):
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


def _replace_dir(stage: Path, dest: Path) -> None:
    """Move a staged folder onto dest (nothing of an earlier build left in it)."""
    if dest.exists():
        old = dest.with_name(dest.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        dest.rename(old)
        stage.rename(dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        stage.rename(dest)


def collect(out: Path, board_name: str) -> Path:
    """FINN's bitfile, hwh/xclbin, reports and driver -> OUT/bitstream/, replaced as a whole (no file of an
    earlier build survives), then the deploy package -> OUT/deploy/ (make_deploy_package)."""
    board = get_board(board_name)
    finn_dir = out / "finn"
    dest = out / "bitstream"
    stage = out / "bitstream.tmp"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    for sub in ("bitfile", "report", "driver"):
        src = finn_dir / sub
        if not src.is_dir():
            raise FinnBuildError(f"{src}: missing after the FINN build (step_synthesize_bitfile / step_make_pynq_driver)")
        shutil.copytree(src, stage / sub)
    for f in ("compare.json", "compare_cppsim.json", "compare_rtlsim.json", "estimates.md", "folding_config.json"):
        if (finn_dir / f).is_file():
            shutil.copy2(finn_dir / f, stage / f)
    _replace_dir(stage, dest)
    make_deploy_package(out, board)
    return dest


DEPLOY_RUN = Path(__file__).with_name("deploy_run.py")


def make_deploy_package(out: Path, board) -> Path:
    """OUT/deploy/: what runs on the board with PYNQ, no network and no FINN there:
    resizer.bit + resizer.hwh (Zynq) or resizer.xclbin (Alveo), the names FINN's driver.py defaults to;
    FINN's driver (driver.py, driver_base.py, finn/, runtime_weights/); run_on_board.py; the test images
    (uint8, NHWC as the accelerator takes them), the golden model's labels (and the dataset's, if known);
    deploy.json (board, platform, bitfile)."""
    finn_dir = out / "finn"
    bitfile = finn_dir / "bitfile"
    stage = out / "deploy.tmp"
    shutil.rmtree(stage, ignore_errors=True)
    shutil.copytree(finn_dir / "driver", stage)
    if board.alveo:
        names = {"finn-accel.xclbin": "resizer.xclbin"}
    else:
        names = {"finn-accel.bit": "resizer.bit", "finn-accel.hwh": "resizer.hwh"}
    for src, dst in names.items():
        if not (bitfile / src).is_file():
            shutil.rmtree(stage)
            raise FinnBuildError(f"{bitfile / src}: missing after the FINN build (step_synthesize_bitfile)")
        shutil.copy2(bitfile / src, stage / dst)
    shutil.copy2(DEPLOY_RUN, stage / "run_on_board.py")
    expected = np.load(out / "verify_expected.npy").reshape(-1).astype(np.int64)
    np.save(stage / "test_images.npy", np.load(out / "deploy_images.npy"))
    np.save(stage / "golden_labels.npy", expected)
    if (out / "deploy_true_labels.npy").is_file():
        shutil.copy2(out / "deploy_true_labels.npy", stage / "true_labels.npy")
    meta = {"board": board.name, "platform": "alveo" if board.alveo else "zynq-iodma",
            "bitfile": next(iter(names.values())), "fclk_mhz": board.clock_mhz, "images": int(len(expected))}
    _write(stage / "deploy.json", json.dumps(meta, indent=1))
    dest = out / "deploy"
    _replace_dir(stage, dest)
    return dest


def rtlsim_vs_planner(finn_dir: Path, graph, folding) -> dict | None:
    """Stitched-IP rtlsim's measured cycles per frame (FINN's report/rtlsim_performance.json) beside the
    planner's bottleneck."""
    from hw.planner import predict_cycles

    f = finn_dir / "report" / "rtlsim_performance.json"
    if not f.is_file():
        return None
    perf = json.loads(f.read_text())
    fps = perf.get("stable_throughput[images/s]") or perf.get("throughput[images/s]")
    mhz = perf.get("fclk[mhz]") or folding.clock_mhz
    measured = mhz * 1e6 / fps if fps else None
    planned = max(predict_cycles(graph, folding).values())
    return {"measured_cycles_per_frame": round(measured, 1) if measured else None, "planned_cycles_per_frame": planned,
            "ratio": round(measured / planned, 3) if measured else None, "rtlsim_fps": fps,
            "latency_cycles": perf.get("latency_cycles")}


def main(argv: list[str] | None = None) -> int:
    from build_flow.pipeline import FinnRequest, finn_stage

    args = _args(argv)
    return finn_stage(FinnRequest(**vars(args)))


def build(req) -> int:
    """The FINN build of `req` (build_flow.pipeline.FinnRequest): preflight, the model and its folded
    IR, images and golden outputs, FINN's build, then its outputs checked against the golden model."""
    model_args(req)   # one model, before the slow checks
    board = run_preflight(req)
    out = Path(req.out)
    graph, folding, golden = prepare(req, board, out)
    wall = run_finn(req, out)
    print(f"FINN {req.command} build: {wall:.0f} s")
    finn_dir = out / "finn"
    summary = {"board": board.name, "finn_wall_s": round(wall, 1)}
    if "cppsim" in req.verify.split(","):
        from .compare import compare_step, format_report

        rep = compare_step(finn_dir, "folded_hls_cppsim", graph, golden)
        print(format_report(rep))
        summary["cppsim"] = rep
        if not (rep["all_layers_equal"] and rep["all_labels_equal"]):
            _write(finn_dir / "compare.json", json.dumps(summary, indent=1))
            raise FinnBuildError(f"cppsim outputs differ from the golden model: see {finn_dir}/compare.json")
    _write(finn_dir / "compare.json", json.dumps(summary, indent=1))
    text = estimates(graph, folding, finn_dir)
    _write(finn_dir / "estimates.md", text)
    print(text)
    if req.command == "bitstream":
        if "rtlsim" in req.verify.split(","):
            from .compare import compare_labels, format_report

            rep = compare_labels(finn_dir, "stitched_ip_rtlsim", golden[graph.outputs["label"]].reshape(-1))
            print(format_report(rep))
            summary["rtlsim"] = rep
            if not rep["all_labels_equal"]:
                _write(finn_dir / "compare.json", json.dumps(summary, indent=1))
                raise FinnBuildError(f"stitched-IP rtlsim labels differ from the golden model: see {finn_dir}/compare.json")
        cyc = rtlsim_vs_planner(finn_dir, graph, folding)
        if cyc:
            summary["rtlsim_cycles"] = cyc
            print(f"stitched-IP rtlsim: {cyc['measured_cycles_per_frame']} cycles/frame measured, "
                  f"{cyc['planned_cycles_per_frame']} planned (x{cyc['ratio']}), latency {cyc['latency_cycles']} cycles")
        from .vivado_reports import ReportError, check_reports

        try:
            tf = check_reports(finn_dir / "report")
        except ReportError as exc:
            raise FinnBuildError(str(exc)) from None
        summary["timing_fit"] = tf
        _write(finn_dir / "compare.json", json.dumps(summary, indent=1))
        if tf["problems"]:
            raise FinnBuildError("; ".join(tf["problems"]) + f" (Vivado's reports: {finn_dir}/report)")
        print(f"collected under {collect(out, board.name)}, deploy package {out / 'deploy'} (make deploy PYNQ_IP=…)")
    return 0




if __name__ == "__main__":
    run_cli(main)
