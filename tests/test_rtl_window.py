"""Window and reduction RTL: sliding-window generator (bnn_swg), K = S pooling (bnn_pool), global
sum pooling (bnn_global_sumpool) and label select (bnn_label_select). Every module runs several
frames back to back with random data, without and with random stalls, and is compared with the IR
semantics of verify/golden_numpy.py; the generator's documented flow bounds (hw/swg_model.py) and
the throughput are checked from the transfer cycles."""
from __future__ import annotations

import bisect
import hashlib
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from build_flow.ir import Layer
from hw import swg_model
from hw.generate import RTL_DEPENDS
from hw.sim import Port, build, cache_dir
from hw.stream import pack_beats, unpack_beats
from verify import golden_numpy

RTL = Path(__file__).resolve().parents[1] / "hw" / "rtl"
STALLS = [(0.0, 0.0), (0.4, 0.4)]
FRAMES = 3


def _layer(op: str, **attrs) -> Layer:
    return Layer(op.lower(), op, ["x"], ["y"], attrs)


def _values(rng, kind: str, ew: int, shape) -> np.ndarray:
    """Random IR values of a datatype kind: 'bipolar' (±1), 'signed' or 'unsigned' (ew bits)."""
    if kind == "bipolar":
        return rng.choice(np.array([-1, 1]), shape)
    if kind == "signed":
        return rng.integers(-(1 << (ew - 1)), 1 << (ew - 1), shape)
    return rng.integers(0, 1 << ew, shape)


def _pack(values, e: int, ew: int, kind: str) -> list[int]:
    return pack_beats(np.asarray(values).reshape(-1), e, ew, bipolar=kind == "bipolar")


def _unpack(beats, e: int, ew: int, kind: str) -> np.ndarray:
    return unpack_beats(beats, e, ew, signed=kind == "signed", bipolar=kind == "bipolar")


def _multi_build(module: str, cases: dict[str, dict], in_w: dict[str, int], out_w: dict[str, int]):
    """One Verilator build holding an instance of `module` per case, case i on ports s<i>_axis /
    m<i>_axis (a build costs far more than a simulation). The wrapper source is written to a
    stable path beside the simulator cache, so the build is cached across test sessions."""
    ports, insts = [], []
    for i, (name, params) in enumerate(cases.items()):
        ports.append(f"    input logic [{in_w[name] - 1}:0] s{i}_axis_tdata, input logic s{i}_axis_tvalid, "
                     f"output logic s{i}_axis_tready,\n"
                     f"    output logic [{out_w[name] - 1}:0] m{i}_axis_tdata, output logic m{i}_axis_tvalid, "
                     f"input logic m{i}_axis_tready")
        plist = ", ".join(f".{k}({v})" for k, v in params.items())
        insts.append(f"    // {name}\n    {module} #({plist}) u{i} (.clk, .rst,\n"
                     f"        .s_axis_tdata(s{i}_axis_tdata), .s_axis_tvalid(s{i}_axis_tvalid), "
                     f".s_axis_tready(s{i}_axis_tready),\n"
                     f"        .m_axis_tdata(m{i}_axis_tdata), .m_axis_tvalid(m{i}_axis_tvalid), "
                     f".m_axis_tready(m{i}_axis_tready));")
    top = f"tb_multi_{module}"
    text = (f"module {top} (\n    input logic clk, input logic rst,\n" + ",\n".join(ports) + "\n);\n"
            + "\n".join(insts) + "\nendmodule\n")
    # named by its text: parallel workers building other cases never rewrite a file in use
    src = cache_dir().parent / "tb" / f"{top}_{hashlib.sha1(text.encode()).hexdigest()[:12]}.sv"
    src.parent.mkdir(parents=True, exist_ok=True)
    if not src.is_file() or src.read_text() != text:
        tmp = src.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, src)
    names = list(cases)
    return build(top, [src, RTL / f"{module}.sv", *(RTL / f"{d}.sv" for d in RTL_DEPENDS.get(module, ()))], {},
                 [Port(f"s{i}_axis", in_w[n]) for i, n in enumerate(names)],
                 [Port(f"m{i}_axis", out_w[n]) for i, n in enumerate(names)])


def _accepted_by(cycles: list[int], t: int) -> int:
    """Input beats accepted at cycles <= t."""
    return bisect.bisect_right(cycles, t)


# ---------------------------------------------------------------------------------------------------
# sliding-window generator
# ---------------------------------------------------------------------------------------------------
# (H, W, C, E, EW, kind, K, S, PAD, pad value in the IR)
SWG_CASES = {
    "bipolar_k3s1p1_e_eq_c": (5, 4, 4, 4, 1, "bipolar", 3, 1, 1, -1),
    "bipolar_k3s1p1_e_lt_c": (4, 5, 4, 2, 1, "bipolar", 3, 1, 1, -1),
    "int4_k3s2p1_odd": (7, 6, 2, 1, 4, "signed", 3, 2, 1, 0),
    "uint8_c3_e3_k3s1p1": (4, 5, 3, 3, 8, "unsigned", 3, 1, 1, 0),
    "uint8_c3_e1_k3s2p1": (5, 5, 3, 1, 8, "unsigned", 3, 2, 1, 0),
    "int4_k1s1p0": (3, 4, 4, 2, 4, "signed", 1, 1, 0, 0),
    "bipolar_k3s2p0_trailing": (6, 6, 2, 2, 1, "bipolar", 3, 2, 0, -1),  # last row and column unused
    "int4_k1s2p0_input_bound": (5, 5, 4, 4, 4, "signed", 1, 2, 0, 0),     # rows 1, 3 skipped
    "int4_k3s1p0_extra_rows": (5, 4, 2, 1, 4, "signed", 3, 1, 0, 0),      # EXTRA_ROWS = 2
}
# EXTRA_ROWS per case (default 0): the rows that make a PAD = 0 layer's frame boundary gap-free
SWG_EXTRA = {"int4_k3s1p0_extra_rows": swg_model.swg_full_rate_extra_rows(5, 3, 1, 0)}
SWG_BUBBLY = {"bipolar_k3s2p0_trailing"}  # PAD = 0 without EXTRA_ROWS: a gap at each frame boundary
# a nearly blocked output: the input runs ahead until the buffer is full, so the documented
# maximum (swg_input_limit) is reached, not only respected
TIGHT_STALL = (0.0, 0.99)


def _swg_check(case, res, i, x, in_stall, out_stall, read_regs=0):
    h, w, c, e, ew, kind, k, s, pad, pad_value = SWG_CASES[case]
    latency, out_fifo = swg_model.swg_latency(read_regs), swg_model.swg_out_fifo(read_regs)
    extra = SWG_EXTRA.get(case, 0)
    cb = c // e
    ho, wo = swg_model.swg_out_size(h, w, k, s, pad)
    pad_pattern = pack_beats([pad_value], 1, ew, bipolar=kind == "bipolar")[0]
    n_in, n_out = FRAMES * h * w * cb, FRAMES * ho * wo * k * k * cb
    row_beats = wo * k * k * cb
    want = golden_numpy._sliding_window(None, _layer("SlidingWindow", kernel=k, stride=s, pad=pad,
                                                     pad_value=pad_value), x)
    assert want.shape == (FRAMES, ho, wo, k * k * c)
    got = res.outputs[f"m{i}_axis"]
    assert np.array_equal(_unpack(got, e, ew, kind), want.reshape(-1)), f"{case} stalls {in_stall}"
    # the beat-level model of hw/swg_model.py says the same
    bits = np.asarray(_unpack(_pack(x, 1, ew, kind), 1, ew, "unsigned")).reshape(x.shape)
    assert got == swg_model.swg_beats(bits, e, ew, k, s, pad, pad_pattern), case

    # documented flow bounds: output beat j of output row (frame f, row r) leaves after the rows it
    # needs were accepted, and no more input than the buffer allows was accepted by then
    inc, outc = res.in_cycles[f"s{i}_axis"], res.out_cycles[f"m{i}_axis"]
    frame_in = h * w * cb
    reached = 0
    for j, t in enumerate(outc):
        f, r = divmod(j // row_beats, ho)
        need = f * frame_in + swg_model.swg_input_needed(h, w, c, e, k, s, pad, r)
        assert _accepted_by(inc, t - latency) >= need, (case, j)
        # the read side runs at most swg_out_fifo + 1 beats ahead of the accepted output
        f2, r2 = divmod(min(j + out_fifo + 1, n_out - 1) // row_beats, ho)
        limit = f2 * frame_in + swg_model.swg_input_limit(h, w, c, e, k, s, pad, r2, extra)
        assert _accepted_by(inc, t) <= limit, (case, j)
        reached += _accepted_by(inc, t) == min(limit, n_in)
    if (in_stall, out_stall) == TIGHT_STALL:
        assert reached > n_out // 2, (case, reached, n_out)
    if in_stall == 0 and out_stall == 0:
        first = swg_model.swg_first_output_input_beats(h, w, c, e, k, s, pad)
        assert outc[0] - inc[first - 1] == latency, case
        # the cycle of every transfer is the one hw/swg_model.swg_schedule predicts
        a, issue = swg_model.swg_schedule(h, w, c, e, k, s, pad, FRAMES, extra)
        assert inc == [inc[0] + t + i for t in a for i in range(w * cb)], case
        assert outc == [inc[0] + t + latency - 1 + i for t in issue for i in range(row_beats)], case
        # Throughput: the busier side moves one beat every cycle, frames back to back (the next
        # frame's first rows load while the last windows leave), so the steady-state frame period
        # (frame 1 -> frame 2, measured) is max(input beats, output beats) per frame. Exception:
        # PAD = 0 with K > S and no EXTRA_ROWS (SWG_BUBBLY): the next frame's first rows do not all
        # fit beside the last window rows, they wait for it (here at most a third longer).
        frame_out = ho * row_beats
        period = outc[2 * frame_out] - outc[frame_out]
        busy = max(frame_in, frame_out)
        assert period == swg_model.swg_cycles_per_frame(h, w, c, e, k, s, pad, extra), case
        if case in SWG_BUBBLY:
            assert busy < period <= busy * 4 // 3, (case, period, busy)
        else:
            assert period == busy, (case, period, busy)
            if n_out >= n_in:  # output-bound: the output beats are back to back from first to last
                assert outc[-1] - outc[0] + 1 == n_out, case


@pytest.mark.parametrize("read_regs", [0, 2, 3], ids=["read_regs0", "read_regs2", "read_regs3"])
def test_swg(read_regs):
    """Every case, without and with the read pipeline: READ_REGS = 2 (address registers) and 3 (the
    generator's, swg_read_regs: a register behind the read data too) where W*C/E allows it: the
    same data, the same transfer cycles shifted by READ_REGS, the same frame period."""
    piped = read_regs > 0
    params, in_w, regs = {}, {}, {}
    for name, (h, w, c, e, ew, kind, k, s, pad, pad_value) in SWG_CASES.items():
        pad_pattern = pack_beats([pad_value], 1, ew, bipolar=kind == "bipolar")[0]
        regs[name] = read_regs if piped and swg_model.swg_read_regs(w, c, e) else 0
        params[name] = dict(H=h, W=w, C=c, E=e, EW=ew, K=k, S=s, PAD=pad, PAD_VALUE=pad_pattern,
                            EXTRA_ROWS=SWG_EXTRA.get(name, 0), READ_REGS=regs[name])
        in_w[name] = e * ew
    if piped:
        assert all(regs.values()), regs  # every case here is wide enough
    sim = _multi_build("bnn_swg", params, in_w, in_w)
    for seed, (in_stall, out_stall) in enumerate(STALLS + [TIGHT_STALL]):
        rng = np.random.default_rng(seed)
        xs, inputs, expect = {}, {}, {}
        for i, (name, (h, w, c, e, ew, kind, k, s, pad, _)) in enumerate(SWG_CASES.items()):
            ho, wo = swg_model.swg_out_size(h, w, k, s, pad)
            xs[name] = _values(rng, kind, ew, (FRAMES, h, w, c))
            inputs[f"s{i}_axis"] = _pack(xs[name], e, ew, kind)
            expect[f"m{i}_axis"] = FRAMES * ho * wo * k * k * (c // e)
        res = sim.run(inputs=inputs, expect=expect, in_stall=in_stall, out_stall=out_stall, seed=seed + 1,
                      max_idle=100000)
        for i, name in enumerate(SWG_CASES):
            _swg_check(name, res, i, xs[name], in_stall, out_stall, regs[name])


def test_swg_model_bounds():
    """The helper functions on a Bi-Real-like conv (K3 S1 P1): numbers the generator relies on."""
    args = (8, 8, 64, 8, 3, 1, 1)  # H, W, C, E, K, S, PAD
    row = 8 * 8
    assert swg_model.swg_buffer_beats(*args) == 4 * row
    assert swg_model.swg_first_output_input_beats(*args) == 2 * row
    assert swg_model.swg_max_lead_beats(*args) == 4 * row
    assert swg_model.swg_bypass_beats(*args, full_rate=False) == 2 * row
    assert swg_model.swg_bypass_beats(*args, full_rate=True) == 4 * row
    assert swg_model.swg_input_limit(*args, 7) == 10 * row  # two rows into the next frame
    assert swg_model.swg_full_rate_extra_rows(8, 3, 1, 1) == 0
    assert swg_model.swg_full_rate_extra_rows(8, 3, 1, 0) == 2  # valid 3x3: rows 5-7 + next 0-2
    assert swg_model.swg_cycles_per_frame(8, 8, 64, 8, 3, 1, 0) > 6 * 6 * 9 * 8
    assert swg_model.swg_cycles_per_frame(8, 8, 64, 8, 3, 1, 0, extra_rows=2) == 6 * 6 * 9 * 8
    with pytest.raises(ValueError):
        swg_model.swg_buffer_beats(8, 8, 64, 6, 3, 1, 1)
    with pytest.raises(ValueError):
        swg_model.swg_buffer_beats(8, 8, 64, 8, 3, 1, 3)


# ---------------------------------------------------------------------------------------------------
# K = S pooling
# ---------------------------------------------------------------------------------------------------
# (H, W, C, E, IN_EW, OUT_EW, MODE, K, input kind, IR op)
POOL_CASES = {
    "max_bipolar_k2_odd": (5, 7, 4, 2, 1, 1, 1, 2, "bipolar", "MaxPool"),
    "sum_signed_k2_odd": (5, 5, 3, 1, 4, 6, 2, 2, "signed", "SumPool"),
    "max_signed_k3": (7, 8, 4, 4, 4, 4, 0, 3, "signed", "MaxPool"),
    "sum_bipolar_k2_wide": (4, 5, 8, 8, 1, 4, 3, 2, "bipolar", "SumPool"),
    "max_unsigned_k2": (4, 4, 2, 1, 3, 3, 0, 2, "unsigned", "MaxPool"),
}


def test_pool():
    params, in_w, out_w = {}, {}, {}
    for name, (h, w, c, e, iew, oew, mode, k, kind, op) in POOL_CASES.items():
        params[name] = dict(H=h, W=w, C=c, E=e, IN_EW=iew, OUT_EW=oew, MODE=mode, K=k,
                            IN_SIGNED=int(kind == "signed"))
        in_w[name], out_w[name] = e * iew, e * oew
    sim = _multi_build("bnn_pool", params, in_w, out_w)
    for seed, (in_stall, out_stall) in enumerate(STALLS):
        rng = np.random.default_rng(seed + 10)
        xs, inputs, expect = {}, {}, {}
        for i, (name, (h, w, c, e, iew, oew, mode, k, kind, op)) in enumerate(POOL_CASES.items()):
            xs[name] = _values(rng, kind, iew, (FRAMES, h, w, c))
            inputs[f"s{i}_axis"] = _pack(xs[name], e, iew, kind)
            expect[f"m{i}_axis"] = FRAMES * (h // k) * (w // k) * (c // e)
        res = sim.run(inputs=inputs, expect=expect, in_stall=in_stall, out_stall=out_stall, seed=seed + 1)
        for i, (name, (h, w, c, e, iew, oew, mode, k, kind, op)) in enumerate(POOL_CASES.items()):
            ref = golden_numpy._max_pool if op == "MaxPool" else golden_numpy._sum_pool
            want = ref(None, _layer(op, kernel=k, stride=k), xs[name])
            assert want.shape == (FRAMES, (h - k) // k + 1, (w - k) // k + 1, c)
            out_kind = kind if op == "MaxPool" else "signed"
            got = _unpack(res.outputs[f"m{i}_axis"], e, oew, out_kind)
            assert np.array_equal(got, want.reshape(-1)), (name, in_stall)
            if in_stall == 0 and out_stall == 0:  # an input beat every cycle; results 3 cycles after
                inc = res.in_cycles[f"s{i}_axis"]  # the last beat of their window
                cb = c // e
                assert inc[-1] - inc[0] + 1 == FRAMES * h * w * cb, name
                assert res.out_cycles[f"m{i}_axis"][-1] - inc[-1] == 3 - (h % k) * w * cb - (w % k) * cb, name


# ---------------------------------------------------------------------------------------------------
# global sum pooling
# ---------------------------------------------------------------------------------------------------
# (H, W, C, E, IN_EW, OUT_EW, input kind)
GSP_CASES = {
    "signed_e2": (2, 3, 4, 2, 4, 7, "signed"),
    "unsigned_e1": (3, 3, 3, 1, 2, 6, "unsigned"),
    "bipolar_e_eq_c": (1, 5, 4, 4, 1, 4, "bipolar"),
}


def test_global_sumpool():
    params, in_w, out_w = {}, {}, {}
    for name, (h, w, c, e, iew, oew, kind) in GSP_CASES.items():
        params[name] = dict(PIXELS=h * w, C=c, E=e, IN_EW=iew, OUT_EW=oew, IN_SIGNED=int(kind == "signed"),
                            BIPOLAR=int(kind == "bipolar"))
        in_w[name], out_w[name] = e * iew, e * oew
    sim = _multi_build("bnn_global_sumpool", params, in_w, out_w)
    frames = 4
    for seed, (in_stall, out_stall) in enumerate(STALLS):
        rng = np.random.default_rng(seed + 20)
        xs, inputs, expect = {}, {}, {}
        for i, (name, (h, w, c, e, iew, oew, kind)) in enumerate(GSP_CASES.items()):
            xs[name] = _values(rng, kind, iew, (frames, h, w, c))
            inputs[f"s{i}_axis"] = _pack(xs[name], e, iew, kind)
            expect[f"m{i}_axis"] = frames * (c // e)
        res = sim.run(inputs=inputs, expect=expect, in_stall=in_stall, out_stall=out_stall, seed=seed + 1)
        for i, (name, (h, w, c, e, iew, oew, kind)) in enumerate(GSP_CASES.items()):
            want = golden_numpy._global_sum_pool(None, _layer("GlobalSumPool"), xs[name])
            got = _unpack(res.outputs[f"m{i}_axis"], e, oew, "signed")
            assert np.array_equal(got, want.reshape(-1)), (name, in_stall)
            if in_stall == 0 and out_stall == 0:
                inc, outc = res.in_cycles[f"s{i}_axis"], res.out_cycles[f"m{i}_axis"]
                assert inc[-1] - inc[0] + 1 == frames * h * w * (c // e), name
                assert outc[-1] - inc[-1] == 3, name  # read, read register, add


# ---------------------------------------------------------------------------------------------------
# label select
# ---------------------------------------------------------------------------------------------------
# (C, E, IN_EW, LARGEST, signed)
LABEL_CASES = {
    "argmax_c10_e2": (10, 2, 6, 1, True),
    "argmin_c7_e1": (7, 1, 5, 0, True),
    "argmax_c8_e8_unsigned": (8, 8, 3, 1, False),
}


def test_label_select():
    params, in_w, out_w = {}, {}, {}
    for name, (c, e, iew, largest, signed) in LABEL_CASES.items():
        out_w[name] = max(1, (c - 1).bit_length())
        params[name] = dict(C=c, E=e, IN_EW=iew, IN_SIGNED=int(signed), LARGEST=largest, OUT_W=out_w[name])
        in_w[name] = e * iew
    sim = _multi_build("bnn_label_select", params, in_w, out_w)
    frames = 40
    for seed, (in_stall, out_stall) in enumerate(STALLS):
        rng = np.random.default_rng(seed + 30)
        xs, inputs = {}, {}
        for i, (name, (c, e, iew, largest, signed)) in enumerate(LABEL_CASES.items()):
            kind = "signed" if signed else "unsigned"
            x = _values(rng, kind, iew, (frames, c))
            # ties: frames drawn from the extremes and 0, from 2-3 small values, all maximal, all minimal
            lo, hi = (-(1 << (iew - 1)), (1 << (iew - 1)) - 1) if signed else (0, (1 << iew) - 1)
            x[:10] = rng.choice(np.array([lo, 0, hi]), (10, c))
            x[10:20] = rng.integers(-1 if signed else 0, 2, (10, c))
            x[20] = hi
            x[21] = lo
            ties = sum(int((row == (row.max() if largest else row.min())).sum() > 1) for row in x)
            assert ties >= 10
            xs[name] = x
            inputs[f"s{i}_axis"] = _pack(x, e, iew, kind)
        res = sim.run(inputs=inputs, expect={f"m{i}_axis": frames for i in range(len(LABEL_CASES))},
                      in_stall=in_stall, out_stall=out_stall, seed=seed + 1)
        for i, (name, (c, e, iew, largest, signed)) in enumerate(LABEL_CASES.items()):
            want = golden_numpy._label_select(None, _layer("LabelSelect", largest=bool(largest)), xs[name])
            assert res.outputs[f"m{i}_axis"] == want.tolist(), (name, in_stall)
            if in_stall == 0 and out_stall == 0:
                inc = res.in_cycles[f"s{i}_axis"]
                assert inc[-1] - inc[0] + 1 == frames * (c // e), name
                assert res.out_cycles[f"m{i}_axis"][-1] == inc[-1] + 1, name


# ---------------------------------------------------------------------------------------------------
# every tested parameter set lints clean; parameter sets the modules do not support are refused
# ---------------------------------------------------------------------------------------------------
def _case_params():
    for name, (h, w, c, e, ew, kind, k, s, pad, pad_value) in SWG_CASES.items():
        yield "bnn_swg", name, dict(H=h, W=w, C=c, E=e, EW=ew, K=k, S=s, PAD=pad, EXTRA_ROWS=SWG_EXTRA.get(name, 0),
                                    PAD_VALUE=pack_beats([pad_value], 1, ew, bipolar=kind == "bipolar")[0])
    for name, (h, w, c, e, iew, oew, mode, k, kind, _) in POOL_CASES.items():
        yield "bnn_pool", name, dict(H=h, W=w, C=c, E=e, IN_EW=iew, OUT_EW=oew, MODE=mode, K=k,
                                     IN_SIGNED=int(kind == "signed"))
    for name, (h, w, c, e, iew, oew, kind) in GSP_CASES.items():
        yield "bnn_global_sumpool", name, dict(PIXELS=h * w, C=c, E=e, IN_EW=iew, OUT_EW=oew,
                                               IN_SIGNED=int(kind == "signed"), BIPOLAR=int(kind == "bipolar"))
    for name, (c, e, iew, largest, signed) in LABEL_CASES.items():
        yield "bnn_label_select", name, dict(C=c, E=e, IN_EW=iew, IN_SIGNED=int(signed), LARGEST=largest,
                                             OUT_W=max(1, (c - 1).bit_length()))


def test_lint_every_case():
    for module, name, params in _case_params():
        cmd = ["verilator", "--lint-only", "-Wall", "--top-module", module,
               *(f"-G{k}={v}" for k, v in params.items()), str(RTL / f"{module}.sv"),
               *(str(RTL / f"{d}.sv") for d in RTL_DEPENDS.get(module, ()))]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        assert proc.returncode == 0, f"{module} {name}:\n{proc.stderr[-2000:]}"


BAD_PARAMS = [
    ("bnn_swg", {"C": 4, "E": 3}),                    # E does not divide C
    ("bnn_swg", {"K": 3, "PAD": 3}),                  # padding as large as the kernel
    ("bnn_swg", {"READ_REGS": 1}),                    # the read pipeline has 0, 2 or 3 registers
    ("bnn_swg", {"READ_REGS": 4}),
    ("bnn_swg", {"W": 3, "C": 1, "E": 1, "K": 1, "PAD": 0, "READ_REGS": 2}),  # W*C/E < 4: no room ahead
    ("bnn_pool", {"MODE": 0, "IN_EW": 4, "OUT_EW": 6}),  # max with a different output width
    ("bnn_pool", {"H": 3, "K": 4}),                   # window larger than the map
    ("bnn_global_sumpool", {"BIPOLAR": 1, "IN_EW": 2}),
    ("bnn_label_select", {"C": 10, "OUT_W": 3}),      # index does not fit
    ("bnn_addsat", {"OUT_EW": 4, "OUT_MIN": 0, "OUT_MAX": 16}),   # the clamp range does not fit 4 bits
    ("bnn_addsat", {"OUT_MIN": 5, "OUT_MAX": 4}),
    ("bnn_concat", {"E": 2, "C0": 3, "C1": 4}),       # C0 not a multiple of E
    ("bnn_dwc", {"IN_E": 4, "OUT_E": 6}),             # neither divides the other
    ("bnn_fork", {"N": 1}),
    ("bnn_rmw", {"WORDS": 8, "AW": 2}),               # 8 words need 3 address bits
    ("bnn_rmw", {"WORDS": 0}),
]


@pytest.mark.parametrize("module,params", BAD_PARAMS + [("bnn_swg", {}), ("bnn_label_select", {"C": 8, "OUT_W": 3}),
                                                        ("bnn_pool", {}), ("bnn_rmw", {"WORDS": 8, "AW": 3})])
def test_unsupported_params_are_refused(module, params):
    chparam = f"chparam {' '.join(f'-set {k} {v}' for k, v in params.items())} {module}; " if params else ""
    reads = "".join(f"read_verilog -sv {RTL / f'{m}.sv'}; " for m in (module, *RTL_DEPENDS.get(module, ())))
    proc = subprocess.run(["yosys", "-q", "-p", f"{reads}{chparam}hierarchy -check -top {module}"],
                          capture_output=True, text=True)
    if (module, params) in BAD_PARAMS:
        assert proc.returncode != 0 and f"{module}: need" in proc.stdout + proc.stderr, proc.stderr
    else:
        assert proc.returncode == 0, proc.stderr
