"""The bit-level UART testbench (hw/uart_sim.py) with a loopback design (tests/rtl/uart_echo.sv:
bnn_uart_rx -> bnn_fifo -> bnn_uart_tx): bytes at random phases, baud skew, framing errors and
back-to-back throughput, which also tests the two UART modules; and small broken designs that each
trip one of the testbench's checks."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hw.sim import SimError
from hw.uart_sim import build_uart

ROOT = Path(__file__).resolve().parents[1]
ECHO = [ROOT / "tests" / "rtl" / "uart_echo.sv"] + [ROOT / "hw" / "rtl" / f"{m}.sv"
                                                   for m in ("bnn_uart_rx", "bnn_fifo", "bnn_uart_tx")]
CPB = 8


def _echo(cpb: int):
    return build_uart("uart_echo", ECHO, {"CLKS_PER_BIT": cpb})


@pytest.fixture(scope="module")
def echo():
    return _echo(CPB)


def _rand_bytes(n: int, seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


@pytest.mark.parametrize("cpb", [CPB, 5])
def test_echo_random_bytes_at_random_phases(cpb):
    sim = _echo(cpb)
    data = _rand_bytes(200, seed=cpb)
    res = sim.run(data, expect=200, clks_per_bit=cpb, gap_prob=0.5, max_gap=4 * cpb, seed=3)
    assert res.received == data
    assert len(res.rx_cycles) == len(res.tx_start_cycles) == 200
    assert np.all(np.diff(res.rx_cycles) >= 10 * cpb)  # a byte on the line takes 10 bit times
    starts = np.diff(res.tx_start_cycles)
    assert starts.min() == 10 * cpb and 40 < (starts > 10 * cpb).sum() < 160  # gaps about half the time
    assert set(np.array(res.tx_start_cycles) % cpb) == set(range(cpb))  # start bits at every phase
    assert res.cycles > res.rx_cycles[-1] > res.tx_start_cycles[-1]


def test_echo_is_seeded(echo):
    data = _rand_bytes(30, seed=5)
    a = echo.run(data, 30, CPB, gap_prob=0.5, max_gap=50, seed=7)
    b = echo.run(data, 30, CPB, gap_prob=0.5, max_gap=50, seed=7)
    c = echo.run(data, 30, CPB, gap_prob=0.5, max_gap=50, seed=8)
    assert a == b
    assert a.tx_start_cycles != c.tx_start_cycles and a.received == c.received == data
    # numpy bytes and integers work as well
    d = echo.run(np.frombuffer(data, np.uint8), np.int64(30), CPB, gap_prob=0.5, max_gap=50, seed=7)
    assert d == a


@pytest.mark.parametrize("skew", [0.02, -0.02])
def test_echo_tolerates_baud_skew(echo, skew):
    data = _rand_bytes(200, seed=11)
    res = echo.run(data, 200, CPB, gap_prob=0.3, max_gap=30, skew=skew, seed=2)
    assert res.received == data
    starts = np.diff(res.tx_start_cycles)
    assert starts.min() == round(10 * CPB * (1 + skew))  # the testbench's bytes really are longer/shorter


def test_skew_beyond_tolerance_breaks_the_line(echo):
    # 8 % slow: the receiver samples the stop bit inside data bit 7 (0 here) and drops every byte
    zeros = bytes(20)
    assert echo.run(zeros, 20, CPB, skew=0.02).received == zeros
    res = echo.run(zeros, 0, CPB, skew=0.08)
    assert res.received == b"" and len(res.tx_start_cycles) == 20


@pytest.mark.parametrize("gap_prob", [0.0, 0.4])
def test_echo_drops_bytes_with_a_low_stop_bit(echo, gap_prob):
    data = _rand_bytes(60, seed=13)
    # first, a pair, last; without gaps the next start bit follows a low stop bit with no edge (the
    # pair lost the byte after it before bnn_uart_rx resynchronized after a framing error)
    bad = (0, 17, 18, 59)
    kept = bytes(b for i, b in enumerate(data) if i not in bad)
    res = echo.run(data, len(kept), CPB, gap_prob=gap_prob, max_gap=25, bad_stop=bad, seed=4)
    assert res.received == kept
    assert len(res.tx_start_cycles) == 60


def test_echo_throughput_back_to_back(echo):
    data = _rand_bytes(100, seed=17)
    res = echo.run(data, 100, CPB)
    assert res.received == data
    assert res.tx_start_cycles == [10 * CPB * i for i in range(100)]
    assert set(np.diff(res.rx_cycles)) == {10 * CPB}
    # bytes arriving 2 % faster than the echo can send: the FIFO fills, bnn_uart_tx is the bottleneck
    # and still leaves no gap between bytes
    fast = echo.run(data, 100, CPB, skew=-0.02)
    assert fast.received == data
    assert set(np.diff(fast.tx_start_cycles)) == {round(10 * CPB * 0.98)}
    assert set(np.diff(fast.rx_cycles)) == {10 * CPB}


def test_run_rejects_bad_arguments(echo):
    ok = dict(send=b"ab", expect=2, clks_per_bit=CPB)
    cases = [
        (dict(clks_per_bit=3), "clks_per_bit = 3"),
        (dict(clks_per_bit=16), "clks_per_bit = 16 but the design was built with CLKS_PER_BIT = 8"),
        (dict(gap_prob=1.0), "gap_prob = 1.0"),
        (dict(gap_prob=-0.1), "gap_prob = -0.1"),
        (dict(gap_prob=0.5), "needs max_gap >= 1"),
        (dict(max_gap=-1), "max_gap = -1"),
        (dict(skew=0.5), "skew = 0.5"),
        (dict(bad_stop=[2]), r"bad_stop index 2 is not a byte index in \[0, 2\)"),
        (dict(send=[1, 256]), r"send = \[1, 256\]"),
        (dict(send="ab"), "send = 'ab'"),
        (dict(expect=-1), "expect = -1"),
        (dict(expect=1.5), "expect = 1.5"),
        (dict(max_cycles=-5), "max_cycles = -5"),
    ]
    for change, msg in cases:
        with pytest.raises(ValueError, match=msg):
            echo.run(**{**ok, **change})


def test_run_reports_missing_and_extra_bytes(echo):
    with pytest.raises(SimError, match=r"cycle limit 2000 reached; bytes sent 3/3, received 3/4"):
        echo.run(b"abc", 4, CPB, max_cycles=2000)
    with pytest.raises(SimError, match=r"cycle limit \d+ reached; bytes sent 3/3, received 3/4"):
        echo.run(b"abc", 4, CPB)  # the default limit
    with pytest.raises(SimError, match=r"uart_tx sent an extra byte \(#3, expected 2\) starting at cycle \d+"):
        echo.run(b"abc", 2, CPB)  # found while draining
    with pytest.raises(SimError, match=r"extra byte \(#1, expected 0\).*bytes sent [0-9]/9"):
        echo.run(b"abcdefghi", 0, CPB)  # found while still sending


# a design that breaks the line protocol in one of several ways (t counts cycles after reset)
BROKEN_SV = """
module uart_broken #(parameter int MODE = 0, parameter int CLKS_PER_BIT = 8) (
    input logic clk, input logic rst, input logic uart_rx, output logic uart_tx, output logic [7:0] dbg);
    logic [7:0] t;
    assign dbg = t;  // an extra output the testbench ignores
    always_ff @(posedge clk) begin
        if (t != 8'hff) t <= t + 1'b1;
        if (rst) t <= '0;
    end
    always_comb case (MODE)
        0: uart_tx = 1'b1;                    // never answers
        1: uart_tx = 1'b0;                    // not idle after reset
        2: uart_tx = !(t >= 20 && t < 22);    // a 2-cycle pulse, not a start bit
        default: uart_tx = !(t >= 20 && t < 20 + 10 * CLKS_PER_BIT);  // low through the stop bit
    endcase
endmodule
"""


@pytest.mark.parametrize("mode,msg", [
    (0, r"cycle limit 5000 reached; bytes sent 2/2, received 0/1 \(uart_tx=1\)"),
    (1, r"uart_tx is low right after reset \(cycle 0\), not idle high"),
    (2, r"glitch on uart_tx: the start bit from cycle 20 is high at its middle \(cycle 24\)"),
    (3, r"framing error on uart_tx: byte #1 \(data 0x00\) from cycle 20 has a low stop bit \(cycle 96\)"),
], ids=["mute", "low_after_reset", "glitch", "low_stop_bit"])
def test_testbench_catches_broken_lines(tmp_path, mode, msg):
    src = tmp_path / "uart_broken.sv"
    src.write_text(BROKEN_SV)
    sim = build_uart("uart_broken", [src], {"MODE": mode, "CLKS_PER_BIT": CPB})
    with pytest.raises(SimError, match=msg):
        sim.run(b"\x55\xaa", 1, CPB, max_cycles=5000)
