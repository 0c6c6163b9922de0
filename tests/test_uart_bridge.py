"""bnn_uart_bridge against the protocol's software model (hw/uart_link.py), through the AXI-Stream
harness with random stalls on every stream: pixels reach the accelerator side packed and in order,
every response is byte-exact (sync, status, label, sign-extended scores, CRC), a corrupted request
CRC sets status bit 0 and still passes the frame through, bytes between frames are ignored."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hw.sim import Port, build
from hw.uart_link import STATUS_CRC, LinkError, LinkFormat, crc8

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [ROOT / "hw/rtl/bnn_uart_bridge.sv", ROOT / "tests/rtl/uart_bridge_tb.sv"]


def _sim(fmt: LinkFormat):
    return build("uart_bridge_tb", SOURCES, params=fmt.rtl_params(),
                 inputs=[Port("s_axis", 8), Port("s_score_axis", fmt.score_e * fmt.score_ew),
                         Port("s_label_axis", fmt.label_w)],
                 outputs=[Port("m_axis", 8), Port("m_pix_axis", fmt.in_e * 8)])


def _score_beats(fmt: LinkFormat, scores) -> list[int]:
    """The accelerator's score stream: SCORE_E two's complement elements per beat, first lowest."""
    mask = (1 << fmt.score_ew) - 1
    beats = []
    for i in range(0, len(scores), fmt.score_e):
        b = 0
        for j, s in enumerate(scores[i:i + fmt.score_e]):
            b |= (int(s) & mask) << (j * fmt.score_ew)
        beats.append(b)
    return beats


def _pix_beats(fmt: LinkFormat, pixels) -> list[int]:
    flat = [int(p) for p in np.asarray(pixels).reshape(-1)]
    return [sum(p << (8 * j) for j, p in enumerate(flat[i:i + fmt.in_e])) for i in range(0, len(flat), fmt.in_e)]


@pytest.mark.parametrize("fmt", [
    LinkFormat(n_bytes=12, in_e=3, n_scores=4, score_e=2, score_ew=10, label_w=2),
    LinkFormat(n_bytes=8, in_e=1, n_scores=3, score_e=1, score_ew=18, label_w=4),
    LinkFormat(n_bytes=6, in_e=6, n_scores=2, score_e=2, score_ew=8, label_w=1),
], ids=["e3-s2x10", "e1-s1x18", "e6-s2x8"])
def test_frames_match_the_protocol_model(fmt):
    rng = np.random.default_rng(fmt.n_bytes)
    frames, send, scores_in, labels_in, expect_resp, expect_pix = 3, b"", [], [], b"", []
    lo, hi = -(1 << (fmt.score_ew - 1)), 1 << (fmt.score_ew - 1)
    for f in range(frames):
        pixels = rng.integers(0, 256, fmt.n_bytes)
        scores = rng.integers(lo, hi, fmt.n_scores)
        scores[0], scores[-1] = lo, hi - 1              # the extremes of the sign extension
        label = int(rng.integers(0, 1 << fmt.label_w))
        req = fmt.encode_request(pixels)
        bad = f == 1                                    # the second request's CRC is wrong
        if bad:
            req = req[:-1] + bytes([req[-1] ^ 0x5C])
        send += bytes([0x00, 0x5A, 0xFF])[: f + 1] + req  # junk between frames is ignored
        scores_in += _score_beats(fmt, scores)
        labels_in.append(label)
        expect_resp += fmt.encode_response(label, scores, STATUS_CRC if bad else 0)
        expect_pix += _pix_beats(fmt, pixels)
    sim = _sim(fmt)
    res = sim.run(inputs={"s_axis": list(send), "s_score_axis": scores_in, "s_label_axis": labels_in},
                  expect={"m_axis": len(expect_resp), "m_pix_axis": len(expect_pix)},
                  in_stall=0.3, out_stall=0.3, seed=7)
    assert res.outputs["m_pix_axis"] == expect_pix
    assert bytes(res.outputs["m_axis"]) == expect_resp
    for k in range(frames):                             # and the host's decoder reads them back
        status, label, scores = fmt.decode_response(expect_resp[k * fmt.response_len:(k + 1) * fmt.response_len])
        assert (status, label) == ((STATUS_CRC if k == 1 else 0), labels_in[k])


def test_response_waits_for_the_request_crc():
    """The response leaves only after the request's CRC byte has arrived, even when the results
    are there first: no response for a request whose last byte is still missing."""
    fmt = LinkFormat(n_bytes=6, in_e=3, n_scores=2, score_e=1, score_ew=8, label_w=2)
    req = fmt.encode_request(list(range(6)))
    sim = _sim(fmt)
    res = sim.run(inputs={"s_axis": list(req[:-1]), "s_score_axis": [1, 2], "s_label_axis": [3]},
                  expect={"m_axis": 0, "m_pix_axis": 2}, seed=3)
    assert res.outputs["m_axis"] == []


def test_crc8_matches_the_standard_check_value():
    assert crc8(b"123456789") == 0xF4                  # CRC-8/SMBUS check value


def test_decode_refuses_corrupt_responses():
    fmt = LinkFormat(n_bytes=6, in_e=3, n_scores=2, score_e=1, score_ew=12, label_w=2)
    good = fmt.encode_response(2, [-5, 100])
    assert fmt.decode_response(good) == (0, 2, [-5, 100])
    with pytest.raises(LinkError, match="CRC"):
        fmt.decode_response(good[:-1] + bytes([good[-1] ^ 1]))
    with pytest.raises(LinkError, match="expected 0x5a"):
        fmt.decode_response(b"\x00" + good[1:])
    with pytest.raises(LinkError, match="bytes, expected"):
        fmt.decode_response(good[:-1])
    with pytest.raises(LinkError, match="pixel bytes"):
        fmt.encode_request([0] * 5)


@pytest.mark.parametrize("module,params,message", [
    ("bnn_uart_rx", {"CLKS_PER_BIT": 3}, "at least 4 clock cycles per bit"),
    ("bnn_uart_tx", {"CLKS_PER_BIT": 1}, "at least 2 clock cycles per bit"),
    ("bnn_uart_bridge", {"N_BYTES": 10, "IN_E": 3}, "N_BYTES = 10 is not a positive multiple of IN_E = 3"),
    ("bnn_uart_bridge", {"N_SCORES": 10, "SCORE_E": 4}, "N_SCORES = 10 is not a positive multiple"),
    ("bnn_uart_bridge", {"LABEL_W": 9}, "LABEL_W = 9 does not fit"),
])
def test_impossible_parameters_stop_elaboration(module, params, message):
    """Used on its own, each module refuses parameters it cannot build, naming the values."""
    import subprocess
    cmd = ["verilator", "--lint-only", *[f"-G{k}={v}" for k, v in params.items()], str(ROOT / f"hw/rtl/{module}.sv")]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode != 0
    assert message in proc.stderr


def test_link_format_refuses_what_the_bridge_cannot_carry():
    design = {"ports": {"input": {"port": "s_axis", "dtype": "BIPOLAR", "ew": 1, "bipolar": True, "elems": 8,
                                  "shape": [4, 4, 8]},
                        "outputs": {}}}
    with pytest.raises(LinkError, match="input port s_axis: BIPOLAR"):
        LinkFormat.from_design(design)
    design["ports"]["input"].update(dtype="UINT8", ew=8, bipolar=False)
    with pytest.raises(LinkError, match="one label stream"):
        LinkFormat.from_design(design)
