"""The flow's stages, from a model to hardware, as typed functions: the one place where the
packages meet. Every command line (`python -m build_flow.rtl_flow`, `build_flow.verify_model`,
`build_flow.finn.cli`, the demo, the make targets through them) calls these; `hw/` and `verify/` only read the IR they are handed.

    compile  model -> QONNX (OUT/model.onnx) -> integer IR (OUT/ir)          compile_stage
    plan     IR -> folding (planned, or a folding file) -> OUT/folding.yaml   plan_stage
             and the folded IR over OUT/ir (every layer's pe/simd)            save_folded_ir
    rtl      compile + plan + generate the RTL (OUT/rtl, OUT/design.json)     build_rtl
    rtlsim   images -> golden model -> Verilator, every output integer        rtlsim_stage
    synth    Yosys synth_xilinx (OUT/synth.json)                               synth_stage
    pnr      Yosys synth_ecp5 + nextpnr-ecp5 (OUT/pnr.json)                    pnr_stage
    bitstream the board top, PLL, ecppack (OUT/bitstream/)                     bitstream_stage
    compare  PyTorch = QONNX = IR numpy = IR onnxruntime                       compare_stage
    finn     the FINN build (folded IR -> bnn_plan.json -> FINN; cppsim/rtlsim checks) finn_stage
    screen   many models -> IR -> plan -> one estimate row each (make plan)   screen_stage

A stage prints one line of what it did and writes its result beside the design, stamped with the
design's content hash (a measurement belongs to the RTL it was made on).
"""
from __future__ import annotations

import json
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.errors import ConfigError

from .options import DEFAULT_CLOCK_MHZ, DEFAULT_FPS


@dataclass(frozen=True)
class ModelChoice:
    """Which network: a checkpoint, a student config (random weights) or a brevitas_examples peer."""
    ckpt: str | None = None
    config: str | None = None
    peer: str | None = None
    seed: int = 0


@dataclass(frozen=True)
class PlanRequest:
    """How to fold: a target frame rate, a LUT budget, or a folding file (the planner's default
    frame rate when none is given)."""
    fps: float | None = None
    lut_budget: int | None = None
    folding: str | None = None
    clock_mhz: float = DEFAULT_CLOCK_MHZ
    family: str | None = None    # the FPGA family to build for (hw.mvtu_mem.FAMILIES); None: the folding's


@dataclass
class RtlBuild:
    """What `build_rtl` made in `out`."""
    sel: object            # build_flow.models.Selected
    qonnx_model: object    # qonnx ModelWrapper
    graph: object          # build_flow.ir.Graph (folded: every layer's pe/simd set)
    folding: object        # hw.planner.Folding
    design: dict           # hw.generate's design.json
    out: Path


@dataclass(frozen=True)
class ImageRequest:
    """`count` images: real ones from `data` (zip, ImageFolder or cifar-10-batches-py), else seeded random."""
    count: int = 16
    data: str | None = None
    seed: int = 0


def compile_stage(model: ModelChoice, out: str | Path):
    """(selected model, QONNX model, IR graph); OUT/model.onnx and OUT/ir."""
    from .compile import compile_model
    from .models import select_model

    sel = select_model(model.ckpt, model.config, model.peer, model.seed)
    qonnx_model, graph = compile_model(sel, out)
    return sel, qonnx_model, graph


def plan_stage(graph, req: PlanRequest):
    """The folding: read from req.folding, or planned for req.fps / req.lut_budget (default
    DEFAULT_FPS) at req.clock_mhz."""
    from hw.planner import load_folding, plan

    if req.folding:
        folding = load_folding(req.folding, graph)
        if req.fps or req.lut_budget:
            print("note: --folding given, --fps/--lut-budget ignored")
        if req.clock_mhz != DEFAULT_CLOCK_MHZ:
            folding.clock_mhz = req.clock_mhz
    else:
        fps = req.fps if req.fps or req.lut_budget else DEFAULT_FPS
        folding = plan(graph, req.clock_mhz, fps=fps, lut_budget=req.lut_budget)
    if req.family:
        folding.family = req.family
    return folding


def save_folded_ir(graph, folding, ir_dir: str | Path):
    """The IR with its folding: every layer's pe/simd and meta.folding (clock, target, source),
    saved over `ir_dir`; what every backend reads from here on (hw.planner.folding_from_ir)."""
    from hw.planner import apply_folding, folding_meta

    from .ir import save_ir

    graph = apply_folding(graph, folding)
    graph.meta["folding"] = folding_meta(folding)
    save_ir(graph, ir_dir)
    return graph


def build_rtl(model: ModelChoice, req: PlanRequest, out: str | Path) -> RtlBuild:
    """Model -> IR -> folding -> RTL in `out` (model.onnx, ir (folded), folding.yaml, rtl,
    design.json, run.json)."""
    from hw.generate import generate
    from hw.planner import save_folding

    out = Path(out)
    t0 = time.perf_counter()
    sel, qonnx_model, graph = compile_stage(model, out)
    folding = plan_stage(graph, req)
    save_folding(folding, out / "folding.yaml")
    graph = save_folded_ir(graph, folding, out / "ir")
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
    return RtlBuild(sel, qonnx_model, graph, folding, design, out)


def design_hash(out) -> str:
    """Content hash of the generated RTL (sources and memories): a measurement belongs to it."""
    from hw.report import design_hash as h
    return h(out)


def rtlsim_stage(build: RtlBuild, images: ImageRequest, stall: float = 0.2) -> dict:
    """Verilator: the images through the RTL with random stalls on both sides, every output integer
    against the IR golden model, then a stall-free run for the frame interval (OUT/rtlsim.json)."""
    from hw.rtlsim import simulate
    from verify.compare import load_images
    from verify.golden_numpy import run_numpy

    batch, what = load_images(images.data, build.sel.input_shape, images.count, images.seed)
    nhwc = np.ascontiguousarray(batch.transpose(0, 2, 3, 1))
    print(f"images: {what}")
    golden = run_numpy(build.graph, nhwc)
    res = simulate(build.design, nhwc, in_stall=stall, out_stall=stall, seed=images.seed, golden=golden)
    # a second, stall-free run measures the frame interval the hardware reaches at full rate
    n_free = min(len(nhwc), 8)
    free = simulate(build.design, nhwc[:n_free], seed=images.seed,
                    golden={k: v[:n_free] for k, v in golden.items()})
    pred = build.design["predicted"]["frame_cycles"]
    doc = {"images": res.images, "image_source": what, "stall": stall, "mismatches": res.mismatches + free.mismatches,
           "cycles_per_frame": free.cycles_per_frame, "predicted_cycles_per_frame": pred,
           "prediction_error": round(free.cycles_per_frame / pred - 1, 4), "latency_cycles": free.latency_cycles,
           "fps": round(free.fps, 1), "clock_mhz": free.clock_mhz,
           "cycles_per_frame_with_stalls": res.cycles_per_frame,
           "verilator_build_s": round(res.build_s, 1), "sim_s": round(res.sim_s, 1),
           "sim_images_per_s": round(res.images / max(res.sim_s, 1e-9), 2),
           "labels_equal_golden": bool(np.array_equal(res.labels, golden["label"].reshape(-1))) if "label" in golden
           else None}
    doc["design_hash"] = design_hash(build.out)
    (build.out / "rtlsim.json").write_text(json.dumps(doc, indent=1))
    print(f"RTL simulation ({res.images} images, random stalls p={stall}): {res.mismatches} mismatches "
          f"against the IR golden model (every output integer); stall-free: {free.cycles_per_frame:.0f} cycles/frame "
          f"(planner {pred}, {100 * doc['prediction_error']:+.1f} %), latency {free.latency_cycles} cycles, "
          f"{free.fps:.0f} FPS at {free.clock_mhz:g} MHz")
    return doc


def synth_stage(build: RtlBuild) -> dict:
    """Yosys synth_xilinx: LUT / FF / BRAM36 / DSP per layer (OUT/synth.json)."""
    from hw.synth import synthesize

    t = synthesize(build.design, build.out)
    t["design_hash"] = design_hash(build.out)
    (build.out / "synth.json").write_text(json.dumps(t, indent=1))
    tot = t["total"]
    print(f"yosys synth_xilinx ({t['seconds']:.0f} s): {tot['lut']} LUT, {tot['ff']} FF, {tot['bram36']} BRAM36, "
          f"{tot['dsp']} DSP; Pynq-Z2 budget {t['budget']['lut']} LUT / {t['budget']['bram36']} BRAM36: "
          f"{'fits' if t['fits_pynq_z2'] else 'does NOT fit'}")
    return t


def pnr_stage(build: RtlBuild, device: str = "85k", seed: int = 1, clock_mhz: float | None = None) -> dict:
    """Yosys synth_ecp5 + nextpnr-ecp5 (open tools from PyPI): Fmax, critical path, utilization
    (OUT/pnr.json), timed at `clock_mhz` (default: the folding's clock)."""
    from hw.pnr import DEVICES, check_fits, place_and_route

    for line in check_fits(build.design, DEVICES[device]):
        print(f"warning: {line}")
    t = place_and_route(build.design, build.out, freq_mhz=clock_mhz or build.folding.clock_mhz, device=device,
                        seed=seed)
    t["design_hash"] = design_hash(build.out)
    (build.out / "pnr.json").write_text(json.dumps(t, indent=1))
    u, b = t["used"], t["budget"]
    frame = build.design["predicted"]["frame_cycles"]
    crit = next(iter(t["critical"].values()), {}) if t["critical"] else {}
    clock = min(t["fmax_mhz"] or 0, t["target_mhz"])
    print(f"nextpnr-ecp5 {t['part']} (yosys {t['yosys_s']:.0f} s, P&R {t['nextpnr_s']:.0f} s): Fmax "
          f"{t['fmax_mhz']} MHz ({'meets' if t['timing_met'] else 'FAILS'} {t['target_mhz']:g} MHz), "
          f"{u['lut4']}/{b['lut4']} LUT4, {u['ff']}/{b['ff']} FF, {u['dp16kd']}/{b['dp16kd']} DP16KD; "
          f"{clock * 1e6 / frame:.0f} FPS at {clock:g} MHz; critical path {crit.get('delay_ns')} ns "
          f"{crit.get('source')} -> {crit.get('sink')}")
    return t


def bitstream_stage(build: RtlBuild, board: str = "ulx3s-85f", pll_mhz: float | None = None, seed: int = 1) -> dict:
    """The open bitstream (hw/bitstream.py): board top, PLL, Yosys, nextpnr, ecppack (OUT/bitstream/)."""
    from hw.bitstream import build_bitstream

    doc = build_bitstream(build.design, build.out, board=board, clock_mhz=pll_mhz, seed=seed)
    u, b, st = doc["used"], doc["budget"], doc["steps_s"]
    print(f"{build.out}/bitstream/{doc['bit']}: PLL {doc['pll_mhz']:g} MHz (Fmax {doc['fmax_mhz']} MHz), "
          f"{u['lut4']}/{b['lut4']} LUT4, {u['ff']}/{b['ff']} FF, {u['dp16kd']}/{b['dp16kd']} DP16KD; "
          f"accelerator {doc['accelerator_fps']:.0f} FPS at that clock, serial link {doc['link_fps']:.0f} "
          f"frames/s at {doc['baud']} baud; steps (s): {st}")
    return doc


def compare_stage(sel, qonnx_model, graph, images: np.ndarray, chunk: int | None = None, progress: bool = False) -> list:
    """PyTorch = QONNX = IR numpy = IR onnxruntime on NCHW uint8 `images` (verify.compare's
    StageResult per stage), `chunk` images at a time (bounds the memory of large runs)."""
    from verify.compare import run_stages

    kw = {"chunk": chunk} if chunk else {}
    return run_stages(sel.model, qonnx_model, graph, images, progress=progress, **kw)


# ---------------------------------------------------------------- FINN

@dataclass(frozen=True)
class FinnRequest:
    """One FINN build (build_flow/finn/cli.py: the FINN backend's steps): `command` estimate (Python
    steps + cppsim) or bitstream (Vivado), the model, the board, the folding (planned for `fps` at the
    board's clock, or a folding file), the verification images and where FINN runs (a local venv, or
    the docker image)."""
    command: str
    out: str
    ckpt: str | None = None
    config: str | None = None
    peer: str | None = None
    seed: int = 0
    board: str = "Pynq-Z2"
    fps: float | None = None
    folding: str | None = None
    data: str | None = None
    images: int = 8
    verify: str = "cppsim"
    finn_venv: str | None = None
    image: str | None = None


def finn_stage(req: FinnRequest) -> int:
    """The FINN build: preflight, export and the folded IR, golden outputs, FINN's build in its own
    environment, and its outputs checked against the golden model (build_flow/finn/cli.py)."""
    from .finn import cli

    return cli.build(req)


# ---------------------------------------------------------------- screening (make plan)

def screen_stage(models: list[ModelChoice], req: PlanRequest, fps: float, budget: dict, out: str | Path) -> list[dict]:
    """Each model -> IR (in out/<model name>) -> folding (req.folding, req.lut_budget, else `fps`) ->
    one row: binary MMACs, FPS reached, the planner's LUT / FF / BRAM36, what misses `budget` (and
    the ECP5-85F's)."""
    from .compile import compile_model
    from .models import select_model

    sels = [select_model(m.ckpt, m.config, m.peer, m.seed) for m in models]
    rows = []
    for sel in sels:
        _, graph = compile_model(sel, Path(out) / sel.name)
        rows.append(_screen_one(sel, graph, Path(out) / sel.name, req, fps, budget))
    return rows


def _screen_one(sel, graph, out_dir: Path, req: PlanRequest, fps: float, budget: dict) -> dict:
    from hw.planner import binary_macs, estimate_resources, load_folding, plan, predict_cycles, save_folding
    from hw.pnr import DEVICES, fit_shortfalls

    if req.folding:  # a given folding instead of a plan: what it reaches and costs
        folding = load_folding(req.folding, graph)
    elif req.lut_budget:
        folding = plan(graph, req.clock_mhz, lut_budget=req.lut_budget)
    else:
        folding = plan(graph, req.clock_mhz, fps=fps)
    save_folding(folding, out_dir / "folding.yaml")
    res = estimate_resources(graph, folding)
    total = {"lut": sum(r["lut"] for r in res.values()), "ff": sum(r["ff"] for r in res.values()),
             "bram36": round(sum(r["bram36"] for r in res.values()), 1)}
    reached = req.clock_mhz * 1e6 / max(predict_cycles(graph, folding).values())
    ecp5 = [f"{k.upper()} {est:.0f} > {cap}" for k, est, cap in fit_shortfalls(res, DEVICES["85k"])]
    return {"name": sel.name, "mmacs": binary_macs(graph) / 1e6, "fps": reached, **total,
            "short": _shortfalls(reached, total, fps, budget), "ecp5_short": ecp5}


def _shortfalls(reached: float, total: dict, fps: float, budget: dict) -> list[str]:
    """Why a plan does not fit: the FPS it misses, the resources it exceeds (empty: it fits)."""
    short = [f"{reached:.0f} FPS < {fps:g}"] if reached < fps else []
    short += [f"LUT {total['lut']} > {budget['lut']}"] if total["lut"] > budget["lut"] else []
    short += [f"BRAM36 {total['bram36']:g} > {budget['bram36']}"] if total["bram36"] > budget["bram36"] else []
    return short


def check_plan_request(fps: float, lut_budget: int | None) -> None:
    import math
    if not math.isfinite(fps) or fps <= 0:
        raise ConfigError(f"plan: --fps {fps:g} must be a positive number of frames per second")
    if lut_budget is not None and lut_budget <= 0:
        raise ConfigError(f"plan: --lut-budget {lut_budget} must be positive")
