"""The host link of an open bitstream: the framed byte protocol between a host and the UART bridge
(`hw/rtl/bnn_uart_bridge.sv`) in front of the accelerator. One source of truth for the RTL's
testbenches, the bit-level simulation (`hw/uart_sim.py`) and the host script (`hw/uart_host.py`).

Request (host -> board), one frame:
    0xA5 | N pixel bytes (the accelerator's input stream in (h, w, c) order, uint8) | CRC-8
Response (board -> host), after the frame's results left the accelerator:
    0x5A | status | label | S scores, B bytes each (little-endian two's complement) | CRC-8

N, S and B are fixed by the design (`LinkFormat.from_design`). The CRCs are CRC-8 with polynomial
0x07, initial value 0, no reflection (CRC-8/SMBUS): the request's over its N pixel bytes, the
response's over every byte after its sync byte. The bridge ignores bytes other than 0xA5 between
frames, so a host resynchronizes by waiting for a response (or a timeout) and sending again.

status bits: 0 the request's CRC did not match (the frame still went through the accelerator, so
the stream stays aligned; its result is not to be trusted), 1 a received byte was lost (receiver
overrun), 2 a stop bit was low (framing error). A response with status 0 carries the label and the
class scores of exactly the pixels that were sent.
"""
from __future__ import annotations

from dataclasses import dataclass

from model.errors import FlowError

REQUEST_SYNC = 0xA5
RESPONSE_SYNC = 0x5A
STATUS_CRC = 1
STATUS_OVERRUN = 2
STATUS_FRAMING = 4
STATUS_NAMES = {STATUS_CRC: "request CRC mismatch", STATUS_OVERRUN: "receiver overrun",
                STATUS_FRAMING: "framing error"}


class LinkError(FlowError):
    """A response that is not what the protocol allows, or a design the bridge cannot serve."""


def _crc8_table() -> list[int]:
    table = []
    for byte in range(256):
        c = byte
        for _ in range(8):
            c = ((c << 1) ^ 0x07) & 0xFF if c & 0x80 else (c << 1) & 0xFF
        table.append(c)
    return table


_CRC8 = _crc8_table()


def crc8(data: bytes, crc: int = 0) -> int:
    """CRC-8/SMBUS (poly 0x07, init 0): the value the bridge computes byte by byte."""
    for b in data:
        crc = _CRC8[crc ^ b]
    return crc


@dataclass(frozen=True)
class LinkFormat:
    """What one design's frames look like on the wire."""
    n_bytes: int       # pixel bytes per request
    in_e: int          # bytes per input beat of the accelerator
    n_scores: int      # class scores per response
    score_e: int       # scores per beat of the accelerator's score stream
    score_ew: int      # bits per score (two's complement)
    label_w: int       # bits of the label
    score_role: str = "logits"  # the design's output names (golden-model roles) of the two streams
    label_role: str = "label"

    @property
    def score_bytes(self) -> int:
        return (self.score_ew + 7) // 8

    @property
    def request_len(self) -> int:
        return self.n_bytes + 2

    @property
    def response_len(self) -> int:
        return 4 + self.n_scores * self.score_bytes

    @classmethod
    def from_design(cls, design: dict) -> "LinkFormat":
        """The format of a generated design (its design.json `ports`); refuses what the bridge
        cannot carry, naming the port."""
        ports = design["ports"]
        inp, outs = ports["input"], ports["outputs"]
        if inp["ew"] != 8 or inp["bipolar"]:
            raise LinkError(f"input port {inp['port']}: {inp['dtype']} elements; the UART bridge sends "
                            f"bytes (UINT8/INT8 pixels)")
        labels = [r for r, o in outs.items() if not o["signed"] and o["elems"] == 1 and o["beats_per_frame"] == 1]
        scores = [r for r in outs if r not in labels]
        if len(labels) != 1 or len(scores) != 1:
            raise LinkError(f"outputs {sorted(outs)}: the UART bridge needs one label stream (one unsigned "
                            f"beat per frame) and one class-score stream")
        label, score = outs[labels[0]], outs[scores[0]]
        if label["ew"] > 8:
            raise LinkError(f"output {label['port']}: a {label['ew']}-bit label does not fit the response's byte")
        if not score["signed"] or score["bipolar"]:
            raise LinkError(f"output {score['port']}: {score['dtype']} scores; the bridge sends two's complement")
        n = 1
        for d in inp["shape"]:
            n *= d
        return cls(n_bytes=n, in_e=inp["elems"], n_scores=score["beats_per_frame"] * score["elems"],
                   score_e=score["elems"], score_ew=score["ew"], label_w=label["ew"],
                   score_role=scores[0], label_role=labels[0])

    def rtl_params(self) -> dict:
        """The bridge's parameters (bnn_uart_bridge)."""
        return {"N_BYTES": self.n_bytes, "IN_E": self.in_e, "N_SCORES": self.n_scores,
                "SCORE_E": self.score_e, "SCORE_EW": self.score_ew, "LABEL_W": self.label_w}

    def encode_request(self, pixels) -> bytes:
        """One request frame of `pixels` (any array of n_bytes uint8 values in stream order)."""
        data = bytes(int(p) & 0xFF for p in _flat(pixels))
        if len(data) != self.n_bytes:
            raise LinkError(f"a frame has {self.n_bytes} pixel bytes, got {len(data)}")
        return bytes([REQUEST_SYNC]) + data + bytes([crc8(data)])

    def encode_response(self, label: int, scores, status: int = 0) -> bytes:
        """The response the bridge sends for (label, scores): the software model of the RTL."""
        body = bytes([status & 0xFF, int(label) & 0xFF])
        for s in scores:
            body += int(s).to_bytes(self.score_bytes, "little", signed=True)
        return bytes([RESPONSE_SYNC]) + body + bytes([crc8(body)])

    def decode_response(self, data: bytes) -> tuple[int, int, list[int]]:
        """(status, label, scores) of one response; LinkError on a wrong length, sync byte or CRC."""
        if len(data) != self.response_len:
            raise LinkError(f"response of {len(data)} bytes, expected {self.response_len}")
        if data[0] != RESPONSE_SYNC:
            raise LinkError(f"response starts with 0x{data[0]:02x}, expected 0x{RESPONSE_SYNC:02x}")
        body, crc = data[1:-1], data[-1]
        if crc8(body) != crc:
            raise LinkError(f"response CRC 0x{crc:02x} != 0x{crc8(body):02x} computed")
        b = self.score_bytes
        scores = [int.from_bytes(body[2 + i * b:2 + (i + 1) * b], "little", signed=True)
                  for i in range(self.n_scores)]
        return body[0], body[1], scores


def status_text(status: int) -> str:
    return ", ".join(name for bit, name in STATUS_NAMES.items() if status & bit) or "ok"


def _flat(x):
    try:
        import numpy as np
        return np.asarray(x).reshape(-1).tolist()
    except ImportError:  # pragma: no cover - numpy is a dependency
        return list(x)
