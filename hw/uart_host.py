"""The host side of an open bitstream: stream images to the board over its serial link (or to a
Verilator model of the same board top) and check every answer against the golden outputs it is
handed. The command line that loads the images and computes the golden outputs from the IR is
`python -m build_flow.board_check` (`make board-check`, `make uartsim`).

Each image goes out as one request (hw/uart_link.py) and the host waits for its response (one frame
in flight; a timeout resynchronizes the bridge with a frame of zero bytes and retries once). Every
response must have status 0, the golden label and the golden class scores (every integer).

`SimLink` replaces the board with a Verilator simulation of the same top (bnn_uart_top: receiver,
bridge, accelerator, transmitter) driven bit by bit on its serial line (hw/uart_sim.py), with random
idle gaps between bytes and a baud skew.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from model.errors import ConfigError

from .uart_link import LinkError, LinkFormat, status_text

DEFAULT_TIMEOUT_S = 5.0


class SerialLink:
    """The board over a USB-serial port (pyserial)."""

    def __init__(self, port: str, baud: int, timeout: float = DEFAULT_TIMEOUT_S):
        try:
            import serial
        except ImportError as exc:
            raise ConfigError("pyserial is not installed: pip install -e '.[pnr]' (make setup)") from exc
        try:
            self.port = serial.Serial(port, baudrate=baud, timeout=timeout)
        except (serial.SerialException, ValueError) as exc:
            raise ConfigError(f"--port {port}: {exc}") from None
        self.port.reset_input_buffer()

    def exchange(self, request: bytes, n: int) -> bytes:
        for attempt in range(2):
            self.port.write(request)
            got = self.port.read(n)
            if len(got) == n:
                return got
            # lost bytes leave the bridge mid-frame: a frame of zeros completes it (zeros never
            # start a frame), and its answer is discarded
            self.port.write(bytes(len(request)))
            time.sleep(0.2)
            self.port.reset_input_buffer()
        raise LinkError(f"no response from the board: {len(got)} of {n} bytes within {self.port.timeout} s "
                        f"(twice); check the port, the baud rate and that the bitstream is loaded")


class SimLink:
    """bnn_uart_top in Verilator with a bit-level serial line: one simulation run per request."""

    def __init__(self, build: Path, design: dict, fmt: LinkFormat, gaps: float = 0.0, skew: float = 0.0,
                 seed: int = 0):
        from .board import link_sources, sim_clks_per_bit, write_uart_top
        from .uart_sim import build_uart

        self.cpb = sim_clks_per_bit(design, fmt)
        top = write_uart_top(design, build / "board")
        t0 = time.perf_counter()
        self.sim = build_uart("bnn_uart_top", link_sources(design, top), {"CLKS_PER_BIT": self.cpb})
        self.build_s = time.perf_counter() - t0
        self.gaps, self.skew, self.seed, self.runs = gaps, skew, seed, 0
        self.frame_cycles = design["predicted"]["frame_cycles"]
        self.cycles: list[int] = []

    def exchange(self, request: bytes, n: int) -> bytes:
        bit_cycles = 10 * self.cpb * (len(request) + n)
        res = self.sim.run(send=request, expect=n, clks_per_bit=self.cpb, gap_prob=self.gaps,
                           max_gap=4 * self.cpb, skew=self.skew, seed=self.seed * 100003 + self.runs,
                           max_cycles=4 * bit_cycles + 20 * self.frame_cycles)
        self.runs += 1
        self.cycles.append(res.cycles)
        return res.received


def check_images(link, fmt: LinkFormat, images: np.ndarray, golden: dict, labels=None, log=print) -> dict:
    """Every image through `link`; counts of answers that differ from the golden model."""
    bad_status = bad_label = bad_scores = correct = 0
    t0 = time.perf_counter()
    for i, img in enumerate(images):
        status, label, scores = fmt.decode_response(link.exchange(fmt.encode_request(img), fmt.response_len))
        want_label = int(np.asarray(golden[fmt.label_role][i]).reshape(-1)[0])
        want_scores = [int(v) for v in np.asarray(golden[fmt.score_role][i]).reshape(-1)]
        if status:
            bad_status += 1
            log(f"image {i}: status {status} ({status_text(status)})")
        if label != want_label:
            bad_label += 1
            log(f"image {i}: label {label}, golden {want_label}")
        if scores != want_scores:
            bad_scores += 1
            log(f"image {i}: scores {scores}, golden {want_scores}")
        if labels is not None:
            correct += int(label == int(labels[i]))
    secs = time.perf_counter() - t0
    doc = {"images": len(images), "status_errors": bad_status, "label_mismatches": bad_label,
           "score_mismatches": bad_scores, "mismatches": bad_status + bad_label + bad_scores,
           "seconds": round(secs, 2), "images_per_s": round(len(images) / max(secs, 1e-9), 2)}
    if labels is not None:
        doc["accuracy"] = round(correct / max(len(images), 1), 4)
    return doc
