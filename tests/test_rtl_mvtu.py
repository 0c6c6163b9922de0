"""bnn_mvtu (MatrixVector) and bnn_threshold (Threshold) against the numpy golden model.

Each case builds a one-layer IR graph, takes the expected outputs from verify/golden_numpy.py,
writes the memory files with hw/mvtu_mem.py and simulates the RTL with Verilator, without stalls
(then also checking the cycle of every transfer: full throughput), with 40 % stalls on both
sides, and with 80 % output stalls (back-pressure that fills the pipeline). Thresholds are drawn
from the accumulators the test data really reaches, so the boundary acc == T is exercised in
both directions. Both activation circuits are covered: parallel comparators (THRES_SEARCH = 0)
and the pipelined binary search over sorted rows (THRES_SEARCH = 1; many duplicate thresholds,
some far outside the accumulator range), and a Yosys run compares their LUT counts.
"""
from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import numpy as np
import pytest

from build_flow.ir import Graph, Layer, Tensor, dtype_range, int_dtype_for, validate
from build_flow.ops import implementation
from hw import mvtu_mem
from hw.sim import Port, build, cache_dir
from hw.stream import elem_width, is_signed, pack_beats, unpack_beats
from verify import golden_numpy

RTL = Path(__file__).resolve().parents[1] / "hw" / "rtl"
# bnn_mvtu and the submodules it instantiates (hw/generate.py RTL_DEPENDS)
MVTU_SOURCES = [RTL / "bnn_thres_step.sv", RTL / "bnn_rom.sv", RTL / "bnn_mvtu.sv"]
MVTU_READS = "".join(f"read_verilog -sv {f}; " for f in MVTU_SOURCES)
STALLS = [(0.0, 0.0, 1), (0.4, 0.4, 2), (0.1, 0.8, 3)]  # (in_stall, out_stall, seed); the last fills the pipeline


def _mem_dir(*arrays, tag: str) -> Path:
    """A directory named by the content of the arrays: the same data gives the same file paths,
    so the Verilator binary (keyed by its parameters, the paths among them) is cached across runs."""
    h = hashlib.sha256(tag.encode())
    for a in arrays:
        if a is not None:
            a = np.ascontiguousarray(a, dtype=np.int64)
            h.update(repr(a.shape).encode() + a.tobytes())
    return cache_dir().parent / "mem" / f"{tag}-{h.hexdigest()[:16]}"


def _graph(op: str, in_shape, in_dtype, out_shape, out_dtype, arrays, attrs) -> Graph:
    layer = Layer("l", op, ["x"], ["y"], attrs)
    return validate(Graph(tensors={"x": Tensor("x", tuple(in_shape), in_dtype),
                                   "y": Tensor("y", tuple(out_shape), out_dtype)},
                          layers=[layer], input="x", outputs={"y": "y"}, arrays=arrays), "test graph")


def _act_attrs(out_dtype, thresholds, direction):
    if thresholds is None:
        return {}, {}
    y_min = 0 if out_dtype == "BIPOLAR" else dtype_range(out_dtype)[0]
    return ({"t": np.asarray(thresholds, np.int64), "d": np.asarray(direction, np.int8)},
            {"thresholds": "t", "direction": "d", "y_min": y_min})


def golden_mv(weights, x, in_dtype, out_dtype, thresholds=None, direction=None) -> np.ndarray:
    mh, mw = weights.shape
    arrays, attrs = _act_attrs(out_dtype, thresholds, direction)
    g = _graph("MatrixVector", (mw,), in_dtype, (mh,), out_dtype, {"w": weights.astype(np.int8), **arrays},
               {"weights": "w", **attrs})
    y = implementation("golden_numpy", "MatrixVector")(g, g.layers[0], x)
    golden_numpy._check_output(g, g.layers[0], "y", y)
    return y


def golden_th(x, in_dtype, out_dtype, thresholds, direction) -> np.ndarray:
    c = x.shape[-1]
    arrays, attrs = _act_attrs(out_dtype, thresholds, direction)
    g = _graph("Threshold", (c,), in_dtype, (c,), out_dtype, arrays, attrs)
    y = implementation("golden_numpy", "Threshold")(g, g.layers[0], x)
    golden_numpy._check_output(g, g.layers[0], "y", y)
    return y


def random_inputs(rng, n, mw, dtype):
    lo, hi = dtype_range(dtype)
    if dtype == "BIPOLAR":
        return rng.choice([-1, 1], size=(n, mw)).astype(np.int64)
    return rng.integers(lo, hi + 1, size=(n, mw)).astype(np.int64)


def reachable_thresholds(rng, acc, levels, rows_shared=False, far=0):
    """(C or 1, L) thresholds: mostly values the accumulators `acc` (N, C) really take (so acc == T
    happens), some neighbours, `far` of them way outside the range; unsorted."""
    n, c = acc.shape
    rows = 1 if rows_shared else c
    t = np.empty((rows, levels), dtype=np.int64)
    for r in range(rows):
        pool = acc.reshape(-1) if rows_shared else acc[:, r]
        vals = rng.choice(pool, size=levels) + rng.choice([0, 0, 0, -1, 1], size=levels)
        t[r] = vals
        if far:
            idx = rng.choice(levels, size=min(far, levels), replace=False)
            t[r, idx] = rng.choice([-10 ** 6, 10 ** 6], size=len(idx))
    return t


def _directions(rng, rows):
    d = rng.choice([-1, 1], size=rows).astype(np.int8)
    d[0], d[-1] = 1, -1  # both directions, always (when rows > 1)
    return d


# ---------------------------------------------------------------- bnn_mvtu

MVTU_CASES = {
    # name: (MW, MH, SIMD, PE, in dtype, out dtype or None (the accumulators), shared threshold row,
    #        THRES_SEARCH wanted (mvtu_params' `search`), vectors)
    "bipolar-bipolar": (16, 8, 4, 2, "BIPOLAR", "BIPOLAR", False, None, 7),
    "uint8-int4-simd=mw-pe=1": (6, 4, 6, 1, "UINT8", "INT4", False, False, 7),
    "int4-acc-simd=1-pe=mh": (8, 6, 1, 6, "INT4", None, False, None, 7),
    # binary search: 15 thresholds (the default for L = 15), and 63 with a single neuron fold
    "uint8-int4-search": (6, 4, 3, 2, "UINT8", "INT4", False, None, 24),
    "int4-int6-search-nf=1": (8, 4, 4, 4, "INT4", "INT6", False, True, 24),
}


def run_mvtu(case: str, seed: int = 0, pipe: tuple[int, int] = (0, 0), cases: dict | None = None,
             extra_args: tuple[str, ...] = (), wbank: int = 0, wslice: int = 0, logic_bank: int = 0):
    """`pipe` = (MEM_REG, TREE_LEVELS): the matrix unit's pipeline registers; `wbank`: words per
    weight bank (WBANK); `wslice`: WSLICE; `logic_bank`: words per bank of a ROM in logic (WBANK
    with WEIGHT_BRAM = 0); `extra_args` go to Verilator."""
    mw, mh, simd, pe, in_dtype, out_dtype, shared, search, n_vec = (cases or MVTU_CASES)[case]
    rng = np.random.default_rng(seed)
    w = rng.choice([-1, 1], size=(mh, mw)).astype(np.int64)
    x = random_inputs(rng, n_vec, mw, in_dtype)
    acc = golden_mv(w, x, in_dtype, int_dtype_for(-10 ** 6, 10 ** 6))
    t = d = None
    if out_dtype is not None:
        levels = 1 if out_dtype == "BIPOLAR" else int(np.subtract(*dtype_range(out_dtype)[::-1]))
        t = reachable_thresholds(rng, acc, levels, rows_shared=shared, far=min(2 + levels // 8, 6) if levels > 2 else 0)
        d = _directions(rng, t.shape[0]) if t.shape[0] > 1 else np.array([-1], np.int8)
        expected = golden_mv(w, x, in_dtype, out_dtype, t, d)
        # the boundary really occurs: some accumulator equals one of its channel's thresholds
        trow = t if not shared else np.repeat(t, mh, axis=0)
        assert any((acc[:, c, None] == trow[c][None, :]).any() for c in range(mh))
    else:
        # the declared datatype of the accumulators, 3 bits wider than ACC_W: sign extension
        out_dtype = f"INT{mvtu_mem.acc_width(mw, *dtype_range(in_dtype)) + 3}"
        expected = acc
    mem = _mem_dir(w, t, d, tag=f"mvtu-{case}-{pe}-{simd}-{search}-{wbank}-{wslice}-{logic_bank}")
    params = mvtu_mem.mvtu_params(mem, "mv", w, in_dtype, out_dtype, pe, simd, t, d, search=search, wbank=wbank,
                                  wslice=wslice, logic_bank=logic_bank)
    if pipe != (0, 0):
        params.update({"MEM_REG": pipe[0], "TREE_LEVELS": pipe[1]})
    if t is not None:
        assert params["THRES_SEARCH"] == int(mvtu_mem.use_search(t.shape[1], search))
    in_ew, out_ew = params["IN_EW"], params["OUT_EW"]
    sim = build("bnn_mvtu", MVTU_SOURCES, params, inputs=[Port("s_axis", simd * in_ew)],
                outputs=[Port("m_axis", pe * out_ew)], extra_args=list(extra_args))
    beats = pack_beats(x.reshape(-1), simd, in_ew, bipolar=in_dtype == "BIPOLAR")
    nf, sf = mh // pe, mw // simd
    results = []
    for in_stall, out_stall, s in STALLS:
        res = sim.run({"s_axis": beats}, {"m_axis": n_vec * nf}, in_stall=in_stall, out_stall=out_stall, seed=s)
        got = unpack_beats(res.outputs["m_axis"], pe, out_ew, signed=is_signed(out_dtype),
                           bipolar=out_dtype == "BIPOLAR").reshape(n_vec, mh)
        assert np.array_equal(got, expected), f"{case}, stalls {in_stall}/{out_stall}"
        results.append(res)
    return results[0], nf, sf, n_vec, params


def _check_full_rate(res, nf, sf, n_vec, params, extra: int = 0):
    cin = np.array(res.in_cycles["s_axis"]).reshape(n_vec, sf)
    cin -= cin[0, 0]
    assert np.array_equal(cin, np.arange(n_vec)[:, None] * nf * sf + np.arange(sf)[None, :])
    cout = np.array(res.out_cycles["m_axis"]).reshape(n_vec, nf)
    assert np.array_equal(np.diff(cout.reshape(-1)), np.full(n_vec * nf - 1, sf))
    # the search's 2S-3 stages after the parallel circuit's one: 4, or 1 + 2S
    stages = 2 * mvtu_mem.search_levels(params["N_THRES"]) - 3 if params["THRES_SEARCH"] else 0
    assert cout[0, 0] - res.in_cycles["s_axis"][sf - 1] == 4 + stages + extra


# the pipelined matrix unit (MEM_REG, TREE_LEVELS) at several SIMD widths: bit-exact under the
# random stalls of STALLS, the same throughput, and the latency grown by exactly its registers
PIPE_CASES = {
    "bipolar-simd64": (128, 8, 64, 2, "BIPOLAR", "BIPOLAR", False, None, 6),
    "bipolar-simd96-int4-search": (192, 4, 96, 2, "BIPOLAR", "INT4", False, None, 8),
    "bipolar-simd8-nf=1": (16, 4, 8, 4, "BIPOLAR", "BIPOLAR", False, None, 9),
    "uint8-simd27-int4": (54, 4, 27, 2, "UINT8", "INT4", False, None, 8),
    "int4-acc-simd16": (32, 6, 16, 3, "INT4", None, False, None, 6),
}
PIPE_SETTINGS = {  # case -> [(MEM_REG, TREE_LEVELS), ...]
    "bipolar-simd64": [(1, 0), (1, 1), (1, 2), (0, 3)],
    "bipolar-simd96-int4-search": [(1, 2), (1, 3)],
    "bipolar-simd8-nf=1": [(1, 1), (0, 2)],
    "uint8-simd27-int4": [(1, 1), (1, 2)],
    "int4-acc-simd16": [(1, 1), (0, 2)],
}


def tree_regs(simd: int, levels: int) -> int:
    """bnn_mvtu's TREE_REGS: (clog2(SIMD) - 1) // TREE_LEVELS registers inside the adder tree."""
    lv = max(0, (simd - 1).bit_length())
    return 0 if levels <= 0 or lv <= 1 else (lv - 1) // levels


@pytest.mark.parametrize("case,pipe", [(c, p) for c, ps in PIPE_SETTINGS.items() for p in ps])
def test_pipelined_mvtu_matches_golden(case, pipe):
    res, nf, sf, n_vec, params = run_mvtu(case, seed=5, pipe=pipe, cases=PIPE_CASES)
    extra = pipe[0] + tree_regs(params["SIMD"], pipe[1])
    _check_full_rate(res, nf, sf, n_vec, params, extra)


@pytest.mark.parametrize("case,pipe", [("bipolar-simd64", (1, 2)), ("bipolar-simd96-int4-search", (1, 3)),
                                       ("uint8-simd27-int4", (1, 2)), ("int4-acc-simd16", (0, 2))])
def test_synthesis_form_of_the_tree_registers_matches_golden(case, pipe):
    """bnn_mvtu holds its registered tree nodes in one vector for synthesis and node by node in
    Verilator (the same registers, cheaper to simulate): the synthesis form, simulated with
    +define+BNN_MVTU_PACKED_TREE, is bit-exact and keeps the same latency and rate."""
    res, nf, sf, n_vec, params = run_mvtu(case, seed=6, pipe=pipe, cases=PIPE_CASES,
                                          extra_args=("+define+BNN_MVTU_PACKED_TREE",))
    _check_full_rate(res, nf, sf, n_vec, params, pipe[0] + tree_regs(params["SIMD"], pipe[1]))


# the weight ROM in banks (WBANK, MEM_REG = 2): a register behind every bank, then the bank mux;
# the last bank shorter than the others, and MEM_REG = 2 on one memory
BANK_CASES = {
    "bipolar-wd40": (40, 8, 4, 2, "BIPOLAR", "BIPOLAR", False, None, 5),       # NF*SF = 4*10 = 40
    "uint8-int4-wd128": (64, 16, 4, 2, "UINT8", "INT4", False, None, 4),      # 8*16 = 128
}
BANK_SETTINGS = [("bipolar-wd40", 16, (2, 0)), ("bipolar-wd40", 8, (2, 1)), ("bipolar-wd40", 0, (2, 0)),
                 ("uint8-int4-wd128", 32, (2, 1))]


@pytest.mark.parametrize("case,wbank,pipe", BANK_SETTINGS)
def test_banked_weight_memory_matches_golden(case, wbank, pipe):
    res, nf, sf, n_vec, params = run_mvtu(case, seed=7, pipe=pipe, cases=BANK_CASES, wbank=wbank)
    if wbank:  # the bank files: ceil(NF*SF / WBANK) of them, the last one the rest
        files = sorted(Path(params["WEIGHT_FILE"]).parent.glob(Path(params["WEIGHT_FILE"]).name + "*.mem"))
        assert [len(f.read_text().split()) for f in files] == [min(wbank, nf * sf - b * wbank)
                                                                for b in range(-(-nf * sf // wbank))]
    _check_full_rate(res, nf, sf, n_vec, params, pipe[0] + tree_regs(params["SIMD"], pipe[1]))


# a weight ROM in logic split into banks of 16 words (the ECP5's LUT4; WEIGHT_BRAM = 0, MEM_REG 1):
# every bank read into its own register, the bank mux into the operand register; the last bank
# shorter (40 words: 16 + 16 + 8), and with the adder tree pipelined too
LOGIC_BANK_SETTINGS = [("bipolar-wd40", (1, 0)), ("bipolar-wd40", (1, 1)), ("uint8-int4-wd128", (1, 2))]


@pytest.mark.parametrize("case,pipe", LOGIC_BANK_SETTINGS)
def test_logic_banked_weight_memory_matches_golden(case, pipe):
    res, nf, sf, n_vec, params = run_mvtu(case, seed=9, pipe=pipe, cases=BANK_CASES, logic_bank=16)
    assert (params["WBANK"], params["WEIGHT_BRAM"]) == (16, 0)
    files = sorted(Path(params["WEIGHT_FILE"]).parent.glob(Path(params["WEIGHT_FILE"]).name + "*.mem"))
    assert [len(f.read_text().split()) for f in files] == [min(16, nf * sf - b * 16) for b in range(-(-nf * sf // 16))]
    # the same latency as one memory at MEM_REG 1: the bank registers replace the read register
    _check_full_rate(res, nf, sf, n_vec, params, pipe[0] + tree_regs(params["SIMD"], pipe[1]))


def test_logic_bank_choice():
    """hw/mvtu_mem.py: the ECP5 keeps a logic weight ROM of 17 .. 128 words in banks of 16 words; a
    block-RAM ROM, a ROM of one bank or of more than 8, and every ROM on xc7 keep their layout."""
    bank = mvtu_mem.logic_rom_bank
    assert bank(36, 1024, "ecp5") == 16               # CNV_1W1A's Conv_1 at finn-examples' folding
    assert bank(112, 1008, "ecp5") == 16 and bank(128, 64, "ecp5") == 16
    assert bank(16, 1024, "ecp5") == 0                # one LUT4 already
    assert bank(144, 512, "ecp5") == 0                # block RAM (>= 128 words and 16 kbit)
    assert bank(1024, 5, "ecp5") == 0                 # 64 banks: the depth would move into the bank mux
    assert bank(36, 1024, "xc7") == 0 and bank(36, 1024) == 0
    with pytest.raises(ValueError, match="unknown FPGA family 'ice40'"):
        bank(36, 1024, "ice40")
    with pytest.raises(ValueError, match="in logic or in block RAM"):
        mvtu_mem.mvtu_params(Path("."), "mv", np.ones((4, 40), np.int64), "BIPOLAR", "BIPOLAR", 1, 4,
                             wbank=16, wslice=1, logic_bank=16)


# width slices (WSLICE): a 5,120-word ROM of 16 bits, unbanked (eight 2-bit slices) and in banks
# of 4,096 (four 4-bit slices) with the rest, 1,024 words, one 18-bit slice
SLICE_CASES = {"bipolar-wd5120": (1280, 64, 8, 2, "BIPOLAR", "BIPOLAR", False, None, 2)}
SLICE_SETTINGS = [(0, (1, 0)), (4096, (2, 1))]


@pytest.mark.parametrize("wbank,pipe", SLICE_SETTINGS)
def test_sliced_weight_memory_matches_golden(wbank, pipe):
    res, nf, sf, n_vec, params = run_mvtu("bipolar-wd5120", seed=8, pipe=pipe, cases=SLICE_CASES, wbank=wbank,
                                          wslice=1)
    prefix = Path(params["WEIGHT_FILE"])
    files = sorted(prefix.parent.glob(prefix.name + "*.mem"))
    want = ([f"mv_w000_{k:03d}.mem" for k in range(8)] if not wbank else
            [f"mv_w000_{k:03d}.mem" for k in range(4)] + ["mv_w001_000.mem"])
    assert [f.name for f in files] == want
    widths = [len(f.read_text().split()[0]) for f in files]  # hex digits of each slice's words
    assert widths == ([1] * 8 if not wbank else [1] * 4 + [4])
    _check_full_rate(res, nf, sf, n_vec, params, pipe[0] + tree_regs(params["SIMD"], pipe[1]))


def test_slice_and_bank_choice():
    """hw/bram.py: a slice is the widest port one RAM deep holds; banks are the power-of-two depth
    with the fewest RAMs (then the fewest banks); hw/mvtu_mem.py slices only block-RAM ROMs deeper
    than 512 words, and the planner asks for MEM_REG = 2 only where there are banks."""
    from hw import bram
    from hw.planner import mvtu_pipeline
    assert [bram.slice_width(d) for d in (512, 513, 1024, 2048, 4096, 8192, 16384, 40000)] == [36, 18, 18, 9, 4, 2, 1, 1]
    assert bram.slices(5120, 16) == [(lo, 2) for lo in range(0, 16, 2)]
    assert bram.slices(1500, 20) == [(0, 9), (9, 9), (18, 2)]
    # CNV_1W1A's Conv_5 (18,432 x 32): 16,384 words in 32 one-bit RAMs and 2,048 in four 9-bit ones
    assert bram.rom_banks(18432, 32) == 16384 and bram.banked_rams(18432, 32, 16384) == 36
    assert bram.rom_banks(32768, 8) == 16384                       # CNV_1W1A's MatMul_1: 2 banks of 8 RAMs
    assert bram.rom_banks(4608, 64) == 4096                        # 16 + 2 RAMs, not 32 at 2 bits
    assert bram.rom_banks(8970, 6) == 8192                         # 3 + 1 RAMs, not 6 at 1 bit
    assert bram.rom_banks(16384, 32) == 0                          # one bank of 32 one-bit RAMs
    assert mvtu_mem.weight_layout(18432, 32) == (16384, 1)
    assert mvtu_mem.weight_layout(512, 64) == (0, 0)               # one RAM deep at 36 bits already
    assert mvtu_mem.weight_layout(1000, 8) == (0, 0)               # 8 kbit: logic, not block RAM
    assert mvtu_mem.weight_banks(18432, 32) == 2 and mvtu_mem.weight_banks(16384, 32) == 1
    assert mvtu_pipeline(8, 1, 100.0, (32768, 8))[0] == 2
    assert mvtu_pipeline(8, 1, 100.0, (16384, 8))[0] == 1
    # the slice files are named by three digits: 1,024 one-bit slices are refused before any file
    # is written (the RTL refuses them too, NS0 > 1000; elaborating that is too slow for the suite)
    with pytest.raises(ValueError, match="1024 weight slices"):
        mvtu_mem.weight_bank_files(Path("/nonexistent/mv_w"), [0] * 9000, 1024, 0, sliced=True)


def test_planner_latency_matches_rtl():
    """hw/planner.py's pipeline choice and latency agree with the RTL's TREE_REGS."""
    from hw.planner import mvtu_extra_latency, mvtu_pipeline
    for simd in (1, 2, 3, 8, 27, 64, 96, 256):
        for clock in (50.0, 100.0, 150.0):
            mem_reg, levels = mvtu_pipeline(simd, 1, clock)
            assert mvtu_extra_latency(simd, mem_reg, levels) == mem_reg + tree_regs(simd, levels)


@pytest.mark.parametrize("case", list(MVTU_CASES))
def test_mvtu_matches_golden_and_runs_at_full_rate(case):
    res, nf, sf, n_vec, params = run_mvtu(case)
    # without stalls: input beat i of vector v is taken at v*NF*SF + i (fold 0 reads the stream,
    # folds 1.. the buffer), and each vector's output beats leave SF cycles apart, NF*SF per vector;
    # the latency documented in the RTL: 4, or 1 + 2S with the S-level binary search
    assert params["THRES_SEARCH"] == int("search" in case)
    _check_full_rate(res, nf, sf, n_vec, params)


# ---------------------------------------------------------------- bnn_threshold

THRESHOLD_CASES = {
    # name: (C, E, in dtype, out dtype, shared threshold row, THRES_SEARCH wanted, pixels)
    "int8-int2-wide": (8, 8, "INT8", "INT2", False, None, 9),
    "uint5-bipolar-shared-row-e=1": (4, 1, "UINT5", "BIPOLAR", True, None, 9),
    # binary search: 63 thresholds (the default), and 15 unsigned with one channel fold
    "int5-int6-search": (8, 2, "INT5", "INT6", False, None, 40),
    "uint4-int4-search-shared-cf=1": (4, 4, "UINT4", "INT4", True, True, 24),
}


@pytest.mark.parametrize("case", list(THRESHOLD_CASES))
def test_threshold_matches_golden_and_runs_at_full_rate(case):
    c, e, in_dtype, out_dtype, shared, search, n_pix = THRESHOLD_CASES[case]
    rng = np.random.default_rng(1)
    x = random_inputs(rng, n_pix, c, in_dtype)
    levels = 1 if out_dtype == "BIPOLAR" else int(np.subtract(*dtype_range(out_dtype)[::-1]))
    t = reachable_thresholds(rng, x, levels, rows_shared=shared, far=min(1 + levels // 8, 6) if levels > 2 else 0)
    d = _directions(rng, t.shape[0]) if t.shape[0] > 1 else np.array([-1], np.int8)
    if t.shape[0] == 1 and search:
        d = np.array([1], np.int8)
    expected = golden_th(x, in_dtype, out_dtype, t, d)
    mem = _mem_dir(t, d, tag=f"thr-{case}-{search}")
    params = mvtu_mem.threshold_params(mem, "th", c, e, in_dtype, out_dtype, t, d, search=search)
    assert params["THRES_SEARCH"] == int("search" in case)
    latency = 2 * mvtu_mem.search_levels(levels) - 1 if params["THRES_SEARCH"] else 2  # 2, or 2S - 1
    in_ew, out_ew = elem_width(in_dtype), params["OUT_EW"]
    sim = build("bnn_threshold", [RTL / "bnn_thres_step.sv", RTL / "bnn_threshold.sv"], params, inputs=[Port("s_axis", e * in_ew)],
                outputs=[Port("m_axis", e * out_ew)])
    beats = pack_beats(x.reshape(-1), e, in_ew)
    n_beats = len(beats)
    for in_stall, out_stall, s in STALLS:
        res = sim.run({"s_axis": beats}, {"m_axis": n_beats}, in_stall=in_stall, out_stall=out_stall, seed=s)
        got = unpack_beats(res.outputs["m_axis"], e, out_ew, signed=is_signed(out_dtype),
                           bipolar=out_dtype == "BIPOLAR").reshape(n_pix, c)
        assert np.array_equal(got, expected), f"{case}, stalls {in_stall}/{out_stall}"
        if in_stall == 0 and out_stall == 0:
            cin, cout = np.array(res.in_cycles["s_axis"]), np.array(res.out_cycles["m_axis"])
            assert np.array_equal(cin - cin[0], np.arange(n_beats))
            assert np.array_equal(cout - cin, np.full(n_beats, latency))


# ---------------------------------------------------------------- memory files

def test_memory_layouts():
    w = np.array([[1, -1, 1, 1], [-1, -1, 1, -1]])  # MH 2, MW 4
    # PE 1, SIMD 2: word nf*SF + sf, bit s = column sf*2 + s of row nf
    assert mvtu_mem.weight_words(w, 1, 2) == [0b01, 0b11, 0b00, 0b01]
    # PE 2, SIMD 4: one word, bits p*4 + s
    assert mvtu_mem.weight_words(w, 2, 4) == [0b0100_1101]
    t = np.array([[-1, 2], [3, -4]])
    assert mvtu_mem.threshold_words(t, 2, 2, 4) == [(0xC << 12) | (0x3 << 8) | (0x2 << 4) | 0xF]
    assert mvtu_mem.threshold_words(np.array([[5]]), 3, 1, 4) == [5, 5, 5]  # a shared row expands
    assert mvtu_mem.direction_words(np.array([1, -1, -1, 1]), 4, 2) == [0b10, 0b01]
    assert mvtu_mem.direction_words(np.array([-1]), 4, 4) == [0b1111]
    with pytest.raises(ValueError):
        mvtu_mem.threshold_words(t, 2, 2, 2)  # -4 .. 3 needs 3 bits
    with pytest.raises(ValueError):
        mvtu_mem.weight_words(w, 3, 2)


def test_widths():
    assert mvtu_mem.acc_width(16, -1, 1) == 6             # -16 .. 16
    assert mvtu_mem.acc_width(27, 0, 255) == 14           # +-6885
    assert mvtu_mem.acc_width(8, -8, 7) == 8              # +-64 needs 8 bits (64 does not fit 7)
    assert mvtu_mem.threshold_width([[-8, 7]]) == 4
    assert mvtu_mem.threshold_width([[0, 8]]) == 5
    assert np.array_equal(mvtu_mem.clip_thresholds([[-100, 3, 100]], -5, 5), [[-6, 3, 6]])


# ---------------------------------------------------------------- synthesis

def _chparam(params: dict) -> str:
    """Yosys `chparam -set` arguments; a negative integer as 32'h... (chparam cannot parse "-2")."""
    def value(v):
        if isinstance(v, str):
            return f'"{v}"'
        return str(v) if v >= 0 else f"32'h{v & 0xFFFFFFFF:08x}"
    return " ".join(f"-set {k} {value(v)}" for k, v in params.items())


def test_yosys_synthesizes_the_integer_branches(tmp_path):
    """tests/test_rtl_synth.py synthesizes a BIPOLAR-input bnn_mvtu; here the other generate
    branches: UINT8 input with 15 thresholds (first layer) and INT4 input without activation
    (classifier), in one Yosys run (the sources are read once)."""
    rng = np.random.default_rng(3)
    w = rng.choice([-1, 1], size=(4, 8))
    t, d = rng.integers(-300, 300, size=(4, 15)), rng.choice([-1, 1], size=4)
    cases = [mvtu_mem.mvtu_params(tmp_path, "a", w, "UINT8", "INT4", 2, 4, t, d),
             mvtu_mem.mvtu_params(tmp_path, "b", w, "INT4", "INT8", 4, 2)]
    script = [f"read_verilog -sv {f}" for f in MVTU_SOURCES] + ["design -save src"]
    for k, params in enumerate(cases):
        script += ["design -load src", f"chparam {_chparam(params)} bnn_mvtu",
                   "synth_xilinx -family xc7 -top bnn_mvtu -flatten", f"tee -q -o {tmp_path / f'stat{k}.txt'} stat"]
    proc = subprocess.run(["yosys", "-q", "-p", "; ".join(script)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for k in range(len(cases)):
        stat = (tmp_path / f"stat{k}.txt").read_text()
        assert "CARRY4" in stat and "$" not in stat.split("Number of cells:", 1)[-1], stat


# ---------------------------------------------------------------- binary search (THRES_SEARCH = 1)

def _search_model(words, levels: int, t_w: int, pe: int, c: int, a: int, d: int) -> int:
    """The count bnn_mvtu / bnn_threshold's binary search finds for channel c from the level words:
    level j reads word nf*2^(j-1) + P (both children) and picks h, the bit found at level j-1."""
    s = mvtu_mem.search_levels(levels)
    nf, p = divmod(c, pe)

    def elem(word, i):
        v = (word >> (i * t_w)) & ((1 << t_w) - 1)
        return v - (1 << t_w) if v >> (t_w - 1) else v

    bits = 0
    for j in range(s):
        t = elem(words[0][nf], p) if j == 0 else elem(words[j][(nf << (j - 1)) + (bits >> 1)], 2 * p + (bits & 1))
        bits = 2 * bits + int(t <= a if d > 0 else t < a)
    return bits if d > 0 else levels - bits  # levels - bits == ~bits in S bits


@pytest.mark.parametrize("levels", [3, 15, 63])
def test_search_words_give_the_step_function(levels):
    """The level memories + the search the RTL does == the IR step function, for every value in
    and around the threshold range: duplicates, acc == T, thresholds beyond the range, both
    directions, shared rows expanded."""
    rng = np.random.default_rng(levels)
    c, pe = 6, 3
    t = rng.integers(-12, 12, size=(c, levels))
    t[0] = 5                                          # all equal
    t[1, : levels // 2] = -40                         # far below (as if clipped)
    t[2, levels // 2:] = 40                           # far above
    t_w = mvtu_mem.threshold_width(t)
    x = np.arange(-45, 46)
    for direction in (np.array([1, -1, 1, -1, -1, 1]), np.array([-1, 1, -1, 1, 1, -1])):
        words = mvtu_mem.search_threshold_words(t, c, pe, t_w)
        assert len(words) == mvtu_mem.search_levels(levels)
        assert [len(w) for w in words] == [c // pe] + [(c // pe) << (j - 1) for j in range(1, len(words))]
        expected = golden_th(np.repeat(x[:, None], c, axis=1), "INT8", f"INT{levels.bit_length()}", t, direction)
        y_min = dtype_range(f"INT{levels.bit_length()}")[0]
        got = np.array([[_search_model(words, levels, t_w, pe, ch, int(a), int(direction[ch])) for ch in range(c)]
                        for a in x]) + y_min
        assert np.array_equal(got, expected)
    # a shared row expands to every channel, sorted (unsorted input)
    row = rng.permutation(np.arange(levels))[None, :]
    w_shared = mvtu_mem.search_threshold_words(row, 4, 2, 8)
    assert w_shared[0] == [(levels // 2) * 0x101] * 2   # the median (value == index after sorting)
    assert mvtu_mem.use_search(15) and mvtu_mem.use_search(63) and not mvtu_mem.use_search(7)
    assert not mvtu_mem.use_search(14) and not mvtu_mem.use_search(15, False) and mvtu_mem.use_search(7, True)
    assert not mvtu_mem.use_search(1, True)            # L = 1: the comparator is the search
    with pytest.raises(ValueError):
        mvtu_mem.use_search(14, True)
    with pytest.raises(ValueError):
        mvtu_mem.search_threshold_words(np.zeros((2, 14), np.int64), 2, 1, 4)


def _lut_count(stat: str) -> int:
    import re
    return sum(int(n) for n in re.findall(r"^\s+LUT\d\s+(\d+)\s*$", stat.split("Number of cells:", 1)[-1], re.M))


def test_yosys_search_uses_far_fewer_luts(tmp_path):
    """bnn_mvtu with PE = 4 and 63 thresholds per channel (a 32 x 32 BIPOLAR -> INT6 layer, SIMD 8,
    8 neuron folds), synthesized in both modes (two Yosys processes side by side): the binary search
    (6 comparators per PE and level ROMs of 8 x 63 thresholds per PE) needs well under half the
    LUTs of 63 comparators + a popcount per PE."""
    rng = np.random.default_rng(5)
    w = rng.choice([-1, 1], size=(32, 32))
    t, d = rng.integers(-34, 34, size=(32, 63)), rng.choice([-1, 1], size=32)
    cases = [mvtu_mem.mvtu_params(tmp_path, f"m{s}", w, "BIPOLAR", "INT6", 4, 8, t, d, search=bool(s))
             for s in (0, 1)]
    assert [c["THRES_SEARCH"] for c in cases] == [0, 1]
    procs = [subprocess.Popen(["yosys", "-q", "-p", f"{MVTU_READS}"
                               f"chparam {_chparam(params)} bnn_mvtu; synth_xilinx -family xc7 -top bnn_mvtu -flatten; "
                               f"tee -q -o {tmp_path / f'stat{k}.txt'} stat"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for k, params in enumerate(cases)]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-2000:]
    stats = [(tmp_path / f"stat{k}.txt").read_text() for k in range(2)]
    for stat in stats:
        assert "$" not in stat.split("Number of cells:", 1)[-1], stat
    parallel, search = (_lut_count(st) for st in stats)
    print(f"bnn_mvtu PE=4 L=63 LUTs: parallel {parallel}, binary search {search}")
    assert 0 < search < parallel / 2, (parallel, search)


@pytest.mark.parametrize("module, params", [
    ("bnn_thres_step", {"N_THRES": 14, "THRES_SEARCH": 1}),      # a search needs 2^S - 1 thresholds
    ("bnn_thres_step", {"N_THRES": 2047, "THRES_SEARCH": 1}),    # level files are named by one digit
    ("bnn_thres_step", {"N_THRES": 3, "OUT_BIPOLAR": 1}),
    ("bnn_thres_step", {"G": 0}),
    ("bnn_threshold", {"C": 6, "E": 4}),                         # E does not divide C
    ("bnn_threshold", {"IN_SIGNED": 2}),
    ("bnn_mvtu", {"MW": 10, "SIMD": 4}),
    ("bnn_mvtu", {"MEM_REG": 3}),
    ("bnn_mvtu", {"MW": 64, "SIMD": 2, "WBANK": 12, "MEM_REG": 2}),   # a bank is a power of two
    ("bnn_mvtu", {"MW": 64, "SIMD": 2, "WBANK": 16, "MEM_REG": 1}),   # block-RAM banks need MEM_REG 2
    ("bnn_mvtu", {"MW": 64, "SIMD": 2, "WBANK": 16, "MEM_REG": 2, "WEIGHT_BRAM": 0}),   # logic banks: 1
    ("bnn_mvtu", {"MW": 64, "SIMD": 1, "MH": 64, "PE": 1, "WBANK": 2, "MEM_REG": 2}),   # 2,048 banks
    ("bnn_rom", {"DEPTH": 17, "AW": 5}),                          # more words than one LUT4 reads
    ("bnn_rom", {"DEPTH": 16, "AW": 3}),
    ("bnn_mvtu", {"WSLICE": 2}),
    ("bnn_mvtu", {"WSLICE": 1, "WEIGHT_BRAM": 0}),                # slices are block RAMs
    ("bnn_mvtu", {}),                                            # the defaults elaborate
    ("bnn_threshold", {}),
])
def test_threshold_units_refuse_impossible_parameters(module, params):
    """Each module stops elaboration with a message naming the values (the Python checks in
    hw/mvtu_mem.py say the same before a design is written)."""
    chparam = f"chparam {' '.join(f'-set {k} {v}' for k, v in params.items())} {module}; " if params else ""
    srcs = " ".join(f"read_verilog -sv {RTL / f}; " for f in ("bnn_thres_step.sv", "bnn_threshold.sv", "bnn_rom.sv", "bnn_mvtu.sv"))
    proc = subprocess.run(["yosys", "-q", "-p", f"{srcs}{chparam}hierarchy -check -top {module}"],
                          capture_output=True, text=True)
    if params:
        assert proc.returncode != 0 and f"{module}: need" in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    else:
        assert proc.returncode == 0, proc.stderr


def test_weight_banks_synthesize_to_block_ram_and_lint_clean(tmp_path):
    """A banked weight ROM (288 words of 128 bits in banks of 128, the last one 32 deep): Yosys
    maps every bank to block RAM (no memory left as logic) with MEM_REG = 2, and the banked form
    passes Verilator's -Wall lint."""
    import re
    rng = np.random.default_rng(4)
    w = rng.choice([-1, 1], size=(64, 576))
    t, d = rng.integers(-60, 60, size=(64, 1)), rng.choice([-1, 1], size=64)
    params = mvtu_mem.mvtu_params(tmp_path, "mv", w, "BIPOLAR", "BIPOLAR", 4, 32, t, d, wbank=128)
    params.update(MEM_REG=2, TREE_LEVELS=2)
    assert sorted(p.name for p in tmp_path.glob("mv_w*.mem")) == ["mv_w000.mem", "mv_w001.mem", "mv_w002.mem"]
    stat = tmp_path / "stat.txt"
    proc = subprocess.run(["yosys", "-q", "-p", f"{MVTU_READS}chparam {_chparam(params)} bnn_mvtu; "
                           f"synth_xilinx -family xc7 -top bnn_mvtu -flatten; tee -q -o {stat} stat"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    cells = dict((c, int(n)) for n, c in re.findall(r"^\s+(\d+)\s+(\S+)\s*$", stat.read_text(), re.M))
    cells.update((c, int(n)) for c, n in re.findall(r"^\s+(\S+)\s+(\d+)\s*$", stat.read_text(), re.M))
    brams = sum(n for c, n in cells.items() if re.fullmatch(r"RAMB(18|36)E1", c))
    assert brams >= 3, cells                                   # at least one RAM per bank
    assert not [c for c in cells if c.startswith("$")], cells  # nothing left unmapped
    lint = ["verilator", "--lint-only", "-Wall", "--top-module", "bnn_mvtu",
            *[f'-G{k}="{v}"' if isinstance(v, str) else f"-G{k}={int(v)}" for k, v in params.items()],
            *map(str, MVTU_SOURCES)]
    proc = subprocess.run(lint, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
