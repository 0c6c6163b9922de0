"""The Verilator harness (hw/sim.py) and the generic stream modules: FIFO, fork, width converter,
saturating add, concat. Every module runs with random data, without and with random stalls, and
is compared beat by beat with a numpy model; throughput is checked from the transfer cycles."""
from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from hw.sim import Port, SimError, build, cache_dir
from hw.stream import pack_beats, unpack_beats
from verify import golden_numpy

RTL = Path(__file__).resolve().parents[1] / "hw" / "rtl"
STALLS = [(0.0, 0.0), (0.4, 0.4)]


def _rtl(*names):
    return [RTL / f"{n}.sv" for n in names]


def _rand_beats(rng, n, w):
    return [int.from_bytes(rng.bytes((w + 7) // 8), "little") & ((1 << w) - 1) for _ in range(n)]


# ---------------------------------------------------------------------------------------------------
# harness: a test-only module with register slices of many widths, a 2-stream packed port, a ROM
# loaded from a string parameter, a negative integer parameter, and one stream that breaks the
# AXI-Stream rule on request (beat value 0xa5).
# ---------------------------------------------------------------------------------------------------
HARNESS_SV = """
module tb_slice #(parameter int W = 8, parameter int BAD = 0) (
    input logic clk, input logic rst,
    input logic [W-1:0] s_tdata, input logic s_tvalid, output logic s_tready,
    output logic [W-1:0] m_tdata, output logic m_tvalid, input logic m_tready);
    assign s_tready = !m_tvalid || m_tready;
    always_ff @(posedge clk) begin
        if (s_tready) begin m_tvalid <= s_tvalid; m_tdata <= s_tdata; end
        else if (BAD != 0 && m_tdata == W'(8'ha5)) m_tvalid <= 1'b0;  // drops a stalled beat
        if (rst) m_tvalid <= 1'b0;
    end
endmodule

module tb_harness #(parameter string FILE = "", parameter int OFFSET = 0) (
    input logic clk, input logic rst,
`define TB_PORTS(NN, WW) \\
    input logic [WW-1:0] i``NN``_axis_tdata, input logic i``NN``_axis_tvalid, output logic i``NN``_axis_tready, \\
    output logic [WW-1:0] o``NN``_axis_tdata, output logic o``NN``_axis_tvalid, input logic o``NN``_axis_tready,
    `TB_PORTS(1, 1) `TB_PORTS(8, 8) `TB_PORTS(33, 33) `TB_PORTS(64, 64) `TB_PORTS(65, 65) `TB_PORTS(300, 300)
    input logic [65:0] j_axis_tdata, input logic [1:0] j_axis_tvalid, output logic [1:0] j_axis_tready,
    output logic [65:0] k_axis_tdata, output logic [1:0] k_axis_tvalid, input logic [1:0] k_axis_tready,
    output logic [15:0] r_axis_tdata, output logic r_axis_tvalid, input logic r_axis_tready);
`define TB_SLICE(NN, WW, BB) \\
    tb_slice #(.W(WW), .BAD(BB)) u``NN (.clk, .rst, .s_tdata(i``NN``_axis_tdata), .s_tvalid(i``NN``_axis_tvalid), \\
        .s_tready(i``NN``_axis_tready), .m_tdata(o``NN``_axis_tdata), .m_tvalid(o``NN``_axis_tvalid), \\
        .m_tready(o``NN``_axis_tready));
    `TB_SLICE(1, 1, 0) `TB_SLICE(8, 8, 1) `TB_SLICE(33, 33, 0) `TB_SLICE(64, 64, 0) `TB_SLICE(65, 65, 0)
    `TB_SLICE(300, 300, 0)
    for (genvar k = 0; k < 2; k++) begin : g_j
        tb_slice #(.W(33)) u (.clk, .rst, .s_tdata(j_axis_tdata[k*33 +: 33]), .s_tvalid(j_axis_tvalid[k]),
            .s_tready(j_axis_tready[k]), .m_tdata(k_axis_tdata[k*33 +: 33]), .m_tvalid(k_axis_tvalid[k]),
            .m_tready(k_axis_tready[k]));
    end
    logic [15:0] rom [0:3];
    initial $readmemh(FILE, rom);
    logic [2:0] idx;
    assign r_axis_tvalid = !idx[2];
    assign r_axis_tdata = rom[idx[1:0]] + 16'(OFFSET);
    always_ff @(posedge clk) begin
        if (r_axis_tvalid && r_axis_tready) idx <= idx + 1'b1;
        if (rst) idx <= '0;
    end
endmodule
"""
WIDTHS = (1, 8, 33, 64, 65, 300)
HARNESS_PARAMS: dict = {}


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    d = tmp_path_factory.mktemp("harness")
    src = d / "tb_harness.sv"
    src.write_text(HARNESS_SV)
    # the ROM file path is a parameter, part of the cache key: keep it stable across sessions
    rom = cache_dir() / "tb_harness_rom.mem"
    rom.parent.mkdir(parents=True, exist_ok=True)
    tmp_rom = rom.with_name(f"{rom.name}.{os.getpid()}")
    tmp_rom.write_text("0010\n0020\nbeef\nffff\n")
    os.replace(tmp_rom, rom)
    ports_in = [Port(f"i{w}_axis", w) for w in WIDTHS] + [Port("j_axis", 33, count=2)]
    ports_out = [Port(f"o{w}_axis", w) for w in WIDTHS] + [Port("k_axis", 33, count=2), Port("r_axis", 16)]
    HARNESS_PARAMS.update(FILE=str(rom), OFFSET=-3)
    return build("tb_harness", [src], dict(HARNESS_PARAMS), ports_in, ports_out), src


def _harness_inputs(rng, n):
    ins = {f"i{w}_axis": _rand_beats(rng, n, w) for w in WIDTHS}
    ins["i8_axis"] = [b if b != 0xA5 else 0x5A for b in ins["i8_axis"]]
    ins["j_axis[0]"] = _rand_beats(rng, n, 33)
    ins["j_axis[1]"] = _rand_beats(rng, n + 3, 33)
    return ins


def _harness_expect(n):
    return {**{f"o{w}_axis": n for w in WIDTHS}, "k_axis[0]": n, "k_axis[1]": n + 3, "r_axis": 4}


@pytest.mark.parametrize("in_stall,out_stall", STALLS + [(0.8, 0.1), (0.1, 0.8)])
def test_harness_widths_and_params(harness, in_stall, out_stall):
    sim, _ = harness
    rng = np.random.default_rng(7)
    n = 300
    ins = _harness_inputs(rng, n)
    res = sim.run(ins, _harness_expect(n), in_stall=in_stall, out_stall=out_stall, seed=3)
    for w in WIDTHS:
        assert res.outputs[f"o{w}_axis"] == ins[f"i{w}_axis"], w
        assert len(res.in_cycles[f"i{w}_axis"]) == n
    assert res.outputs["k_axis[0]"] == ins["j_axis[0]"]
    assert res.outputs["k_axis[1]"] == ins["j_axis[1]"]
    # string parameter ($readmemh file) and negative integer parameter
    assert res.outputs["r_axis"] == [0x0D, 0x1D, 0xBEEC, 0xFFFC]
    cyc = res.in_cycles["i300_axis"]
    assert cyc == sorted(cyc) and len(set(cyc)) == n
    assert res.cycles >= max(max(c) for c in res.out_cycles.values())
    if in_stall == out_stall == 0.0:
        assert cyc == list(range(n))  # a register slice takes a beat every cycle
        assert res.out_cycles["o300_axis"] == list(range(1, n + 1))
    else:  # stalls really happen, at about the requested rate
        gaps = np.diff(res.out_cycles["o65_axis"])
        assert (gaps > 1).any()
        assert n * 1.05 < res.cycles < n * 12


def test_harness_is_seeded(harness):
    sim, _ = harness
    ins = _harness_inputs(np.random.default_rng(1), 50)
    a = sim.run(ins, _harness_expect(50), in_stall=0.5, out_stall=0.5, seed=11)
    b = sim.run(ins, _harness_expect(50), in_stall=0.5, out_stall=0.5, seed=11)
    c = sim.run(ins, _harness_expect(50), in_stall=0.5, out_stall=0.5, seed=12)
    assert a.out_cycles == b.out_cycles and a.in_cycles == b.in_cycles
    assert a.out_cycles != c.out_cycles
    assert a.outputs == c.outputs


def test_harness_reports_deadlock_and_extra_beats(harness):
    sim, _ = harness
    ins = _harness_inputs(np.random.default_rng(2), 20)
    exp = _harness_expect(20)
    with pytest.raises(SimError, match=r"deadlock: no beat moved for 50 cycles.*o33_axis delivered 20/21 beats"):
        sim.run(ins, {**exp, "o33_axis": 21}, max_idle=50)
    with pytest.raises(SimError, match=r"o64_axis delivered an extra beat \(#20, expected 19\)"):
        sim.run(ins, {**exp, "o64_axis": 19})
    with pytest.raises(SimError, match=r"k_axis\[1\] delivered an extra beat"):
        sim.run(ins, {**exp, "k_axis[1]": 20})
    with pytest.raises(SimError, match=r"r_axis delivered an extra beat"):  # found while draining
        sim.run(ins, {**exp, "r_axis": 3})
    with pytest.raises(SimError, match="cycle limit 10 reached"):
        sim.run(ins, exp, max_cycles=10)


def test_harness_checks_protocol(harness):
    sim, _ = harness
    ins = _harness_inputs(np.random.default_rng(3), 40)
    ins["i8_axis"][10] = 0xA5  # tb_slice BAD=1 drops this beat when it is stalled
    with pytest.raises(SimError, match=r"AXI-Stream violation on o8_axis at cycle \d+: tvalid dropped"):
        sim.run(ins, _harness_expect(40), out_stall=0.9, seed=1)
    res = sim.run(ins, _harness_expect(40))  # never stalled: no violation
    assert res.outputs["o8_axis"] == ins["i8_axis"]


def test_harness_rejects_bad_arguments(harness):
    sim, _ = harness
    ins = _harness_inputs(np.random.default_rng(4), 5)
    with pytest.raises(ValueError, match="does not fit 8 unsigned bits"):
        sim.run({**ins, "i8_axis": [256] * 5}, _harness_expect(5))
    with pytest.raises(ValueError, match="unknown input streams"):
        sim.run({**ins, "nope": [1]}, _harness_expect(5))
    with pytest.raises(ValueError, match="no beat count for output o1_axis"):
        sim.run(ins, {k: v for k, v in _harness_expect(5).items() if k != "o1_axis"})


def test_harness_build_cache_and_errors(harness, tmp_path):
    sim, src = harness
    t = time.perf_counter()
    again = build("tb_harness", [src], dict(HARNESS_PARAMS), sim.inputs, sim.outputs)
    assert again.binary == sim.binary and time.perf_counter() - t < 1.0  # cached
    assert sim.binary.parent.name.startswith("tb_harness-")
    bad = tmp_path / "bad.sv"
    bad.write_text("module bad(input logic clk, input logic rst);\n  logic x = ;\nendmodule\n")
    with pytest.raises(SimError, match=r"bad: verilator build failed:\n.*%Error.*bad\.sv:2"):
        build("bad", [bad], {}, [], [Port("m_axis", 8)])
    with pytest.raises(SimError, match="does not exist"):
        build("bad", [tmp_path / "missing.sv"], {}, [], [Port("m_axis", 8)])


# ---------------------------------------------------------------------------------------------------
# bnn_fifo
# ---------------------------------------------------------------------------------------------------
def _max_occupancy(res) -> int:
    """The most beats a FIFO held: accepted on s_axis and not yet taken from m_axis (a beat taken at
    the cycle it is accepted counts as held for that cycle)."""
    events = sorted([(c, 1) for c in res.in_cycles["s_axis"]] + [(c, -1) for c in res.out_cycles["m_axis"]])
    return int(np.cumsum([d for _, d in events]).max())


# the last two are width-sliced (SLICE = 1: 18 + 15 bits at 600 words, 4 + 4 + 2 at 2,100)
@pytest.mark.parametrize("w,depth,out_reg", [(8, 2, 0), (33, 5, 0), (1, 64, 0), (8, 2, 1), (33, 70, 1),
                                             (33, 600, 1), (10, 2100, 1)])
def test_fifo(w, depth, out_reg):
    sim = build("bnn_fifo", _rtl("bnn_fifo"), {"W": w, "DEPTH": depth, "OUT_REG": out_reg}, [Port("s_axis", w)],
                [Port("m_axis", w)])
    rng = np.random.default_rng(depth)
    n = 4 * depth + 50
    data = _rand_beats(rng, n, w)
    for in_stall, out_stall in STALLS + [(0.7, 0.2)]:
        res = sim.run({"s_axis": data}, {"m_axis": n}, in_stall=in_stall, out_stall=out_stall, seed=depth)
        assert res.outputs["m_axis"] == data
        if in_stall == out_stall == 0.0:
            assert res.in_cycles["s_axis"] == list(range(n))
            # first word falls through in 2 cycles (3 with the output register)
            assert res.out_cycles["m_axis"] == list(range(2 + out_reg, n + 2 + out_reg))
    # a slow reader: the FIFO fills up to its capacity, DEPTH beats of memory + the read register
    # (+ the two-beat output stage)
    res = sim.run({"s_axis": data}, {"m_axis": n}, in_stall=0.0, out_stall=0.9, seed=5)
    assert res.outputs["m_axis"] == data
    assert _max_occupancy(res) == depth + 1 + 2 * out_reg


# bnn_out_fifo behind a test wrapper that takes a beat only while there is room (its parents
# count their beats in flight the same way)
OUT_FIFO_TB = """
module tb_out_fifo #(parameter int W = 8, parameter int DEPTH = 4) (
    input logic clk, input logic rst,
    input logic [W-1:0] s_axis_tdata, input logic s_axis_tvalid, output logic s_axis_tready,
    output logic [W-1:0] m_axis_tdata, output logic m_axis_tvalid, input logic m_axis_tready);
    logic [$clog2(DEPTH+1)-1:0] count;
    assign s_axis_tready = count < ($clog2(DEPTH+1))'(DEPTH);
    bnn_out_fifo #(.W(W), .DEPTH(DEPTH)) u (.clk(clk), .rst(rst), .wr(s_axis_tvalid && s_axis_tready),
        .wdata(s_axis_tdata), .count(count), .m_axis_tdata(m_axis_tdata), .m_axis_tvalid(m_axis_tvalid),
        .m_axis_tready(m_axis_tready));
endmodule
"""


@pytest.mark.parametrize("w,depth", [(8, 4), (40, 7), (3, 2)])
def test_out_fifo(w, depth, tmp_path):
    src = tmp_path / "tb_out_fifo.sv"
    src.write_text(OUT_FIFO_TB)
    sim = build("tb_out_fifo", [src, *_rtl("bnn_out_fifo")], {"W": w, "DEPTH": depth}, [Port("s_axis", w)],
                [Port("m_axis", w)])
    rng = np.random.default_rng(depth)
    n = 20 * depth + 30
    data = _rand_beats(rng, n, w)
    for in_stall, out_stall in STALLS + [(0.1, 0.8)]:
        res = sim.run({"s_axis": data}, {"m_axis": n}, in_stall=in_stall, out_stall=out_stall, seed=depth)
        assert res.outputs["m_axis"] == data
        if in_stall == out_stall == 0.0:  # one beat per cycle, the written entry readable the next cycle
            assert res.out_cycles["m_axis"] == [c + 1 for c in res.in_cycles["s_axis"]] == list(range(1, n + 1))
        assert _max_occupancy(res) <= depth


# ---------------------------------------------------------------------------------------------------
# bnn_fork
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("w,n_out", [(1, 2), (65, 3)])
def test_fork(w, n_out):
    sim = build("bnn_fork", _rtl("bnn_fork"), {"W": w, "N": n_out}, [Port("s_axis", w)],
                [Port("m_axis", w, count=n_out)])
    rng = np.random.default_rng(n_out)
    n = 200
    data = _rand_beats(rng, n, w)
    for in_stall, out_stall in STALLS + [(0.1, 0.7)]:
        res = sim.run({"s_axis": data}, {"m_axis": n}, in_stall=in_stall, out_stall=out_stall, seed=w)
        for k in range(n_out):
            assert res.outputs[f"m_axis[{k}]"] == data, k
        if in_stall == out_stall == 0.0:
            assert res.in_cycles["s_axis"] == list(range(n))
            for k in range(n_out):
                assert res.out_cycles[f"m_axis[{k}]"] == list(range(1, n + 1))
        else:  # outputs drain independently: their transfer cycles differ
            assert res.out_cycles["m_axis[0]"] != res.out_cycles["m_axis[1]"]


# ---------------------------------------------------------------------------------------------------
# bnn_dwc
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ew,in_e,out_e", [(1, 1, 8), (2, 3, 9), (5, 6, 2), (7, 4, 4), (1, 128, 32)])
def test_dwc(ew, in_e, out_e):
    sim = build("bnn_dwc", _rtl("bnn_dwc"), {"EW": ew, "IN_E": in_e, "OUT_E": out_e},
                [Port("s_axis", in_e * ew)], [Port("m_axis", out_e * ew)])
    rng = np.random.default_rng(ew * 100 + in_e)
    elems = rng.integers(0, 1 << ew, size=max(in_e, out_e) * 60)
    n_in, n_out = len(elems) // in_e, len(elems) // out_e
    beats = pack_beats(elems, in_e, ew)
    for in_stall, out_stall in STALLS:
        res = sim.run({"s_axis": beats}, {"m_axis": n_out}, in_stall=in_stall, out_stall=out_stall, seed=ew)
        assert np.array_equal(unpack_beats(res.outputs["m_axis"], out_e, ew), elems)
        if in_stall == out_stall == 0.0:
            if out_e > in_e:  # the narrow input side runs at one beat per cycle
                r = out_e // in_e
                assert res.in_cycles["s_axis"] == list(range(n_in))
                assert res.out_cycles["m_axis"] == [r * k + r for k in range(n_out)]
            elif in_e > out_e:  # the narrow output side runs at one beat per cycle
                assert res.out_cycles["m_axis"] == list(range(1, n_out + 1))
            else:
                assert res.out_cycles["m_axis"] == list(range(n_out))  # wires


# ---------------------------------------------------------------------------------------------------
# bnn_addsat (IR AddSat: golden_numpy._add_sat)
# ---------------------------------------------------------------------------------------------------
def _golden_add_sat(a, b, out_dtype):
    graph = SimpleNamespace(tensors={"y": SimpleNamespace(dtype=out_dtype)})
    return golden_numpy._add_sat(graph, SimpleNamespace(outputs=["y"]), a, b)


@pytest.mark.parametrize("e,in_dtype,out_dtype", [
    (1, "INT4", "INT4"),        # E=1, overflow both ways
    (4, "INT6", "INT5"),        # narrower output: clamps often
    (3, "UINT5", "UINT5"),      # unsigned in and out
    (16, "INT8", "INT9"),       # wide beat (128 bits), no clamping needed
])
def test_addsat(e, in_dtype, out_dtype):
    from build_flow.ir import dtype_range
    from hw.stream import elem_width, is_signed
    in_ew, out_ew = elem_width(in_dtype), elem_width(out_dtype)
    lo, hi = dtype_range(out_dtype)
    sim = build("bnn_addsat", _rtl("bnn_addsat"),
                {"E": e, "IN_EW": in_ew, "IN_SIGNED": int(is_signed(in_dtype)), "OUT_EW": out_ew,
                 "OUT_MIN": lo, "OUT_MAX": hi},
                [Port("s0_axis", e * in_ew), Port("s1_axis", e * in_ew)], [Port("m_axis", e * out_ew)])
    rng = np.random.default_rng(e)
    ilo, ihi = dtype_range(in_dtype)
    n = 150
    a = rng.integers(ilo, ihi + 1, size=n * e)
    b = rng.integers(ilo, ihi + 1, size=n * e)
    a[:4], b[:4] = [ilo, ihi, ilo, ihi], [ilo, ihi, ihi, 0]  # extremes
    want = _golden_add_sat(a, b, out_dtype)
    assert (want == lo).any() or (want == hi).any() or out_dtype == "INT9"
    for in_stall, out_stall in STALLS + [(0.6, 0.0)]:
        res = sim.run({"s0_axis": pack_beats(a, e, in_ew), "s1_axis": pack_beats(b, e, in_ew)}, {"m_axis": n},
                      in_stall=in_stall, out_stall=out_stall, seed=e)
        got = unpack_beats(res.outputs["m_axis"], e, out_ew, signed=is_signed(out_dtype))
        assert np.array_equal(got, want)
        assert res.in_cycles["s0_axis"] == res.in_cycles["s1_axis"]  # a join: both inputs move together
        if in_stall == out_stall == 0.0:
            assert res.in_cycles["s0_axis"] == list(range(n))
            assert res.out_cycles["m_axis"] == list(range(1, n + 1))


def test_addsat_custom_bounds():
    """Bounds that are not a datatype's range, including a negative maximum."""
    e, ew, lo, hi = 2, 5, -9, -2
    sim = build("bnn_addsat", _rtl("bnn_addsat"), {"E": e, "IN_EW": ew, "OUT_EW": 5, "OUT_MIN": lo, "OUT_MAX": hi},
                [Port("s0_axis", e * ew), Port("s1_axis", e * ew)], [Port("m_axis", e * 5)])
    rng = np.random.default_rng(0)
    a, b = rng.integers(-16, 16, size=(2, 100 * e))
    res = sim.run({"s0_axis": pack_beats(a, e, ew), "s1_axis": pack_beats(b, e, ew)}, {"m_axis": 100},
                  in_stall=0.3, out_stall=0.3)
    want = np.clip(a + b, lo, hi)
    assert {lo, hi} <= set(want.tolist()) and len(set(want.tolist())) == hi - lo + 1
    assert np.array_equal(unpack_beats(res.outputs["m_axis"], e, 5, signed=True), want)


# ---------------------------------------------------------------------------------------------------
# bnn_concat (IR Concat: golden_numpy._concat)
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("e,ew,c0,c1", [(1, 1, 2, 3), (4, 8, 8, 4), (3, 100, 3, 6)])
def test_concat(e, ew, c0, c1):
    sim = build("bnn_concat", _rtl("bnn_concat"), {"E": e, "EW": ew, "C0": c0, "C1": c1},
                [Port("s0_axis", e * ew), Port("s1_axis", e * ew)], [Port("m_axis", e * ew)])
    rng = np.random.default_rng(c0 * 10 + c1)
    pixels = 40
    x0 = rng.integers(0, 1 << min(ew, 62), size=(pixels, c0))
    x1 = rng.integers(0, 1 << min(ew, 62), size=(pixels, c1))
    want = golden_numpy._concat(None, None, x0, x1)
    n = pixels * (c0 + c1) // e
    for in_stall, out_stall in STALLS + [(0.0, 0.6)]:
        res = sim.run({"s0_axis": pack_beats(x0, e, ew), "s1_axis": pack_beats(x1, e, ew)}, {"m_axis": n},
                      in_stall=in_stall, out_stall=out_stall, seed=ew)
        assert np.array_equal(unpack_beats(res.outputs["m_axis"], e, ew).reshape(pixels, c0 + c1), want)
        if in_stall == out_stall == 0.0:
            assert res.out_cycles["m_axis"] == list(range(1, n + 1))


@pytest.mark.parametrize("module, params", [
    ("bnn_fifo", {"DEPTH": 1}),
    ("bnn_fifo", {"OUT_REG": 2}),
    ("bnn_fifo", {"SLICE": 2}),
    ("bnn_out_fifo", {"DEPTH": 1}),
    ("bnn_fifo", {}),               # the defaults elaborate
    ("bnn_out_fifo", {}),
])
def test_fifos_refuse_impossible_parameters(module, params):
    """Each FIFO stops elaboration with a message naming the values."""
    import subprocess

    chparam = f"chparam {' '.join(f'-set {k} {v}' for k, v in params.items())} {module}; " if params else ""
    proc = subprocess.run(["yosys", "-q", "-p", f"read_verilog -sv {RTL / f'{module}.sv'}; {chparam}"
                           f"hierarchy -check -top {module}"], capture_output=True, text=True)
    if params:
        assert proc.returncode != 0 and f"{module}: need" in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    else:
        assert proc.returncode == 0, proc.stderr
