"""Cycle-accurate, bit-level UART simulation of a design whose only I/O is a serial line.

``build_uart`` compiles a top module with ports ``clk, rst, uart_rx, uart_tx`` (other outputs are
ignored) and a generated C++ testbench (template ``hw/sim/tb_uart.cpp.in``); ``UartSimulator.run``
sends bytes into ``uart_rx`` bit by bit and decodes the bytes the design sends on ``uart_tx``::

    sim = build_uart("uart_echo", [Path("tests/rtl/uart_echo.sv"), *rtl_sources],
                     params={"CLKS_PER_BIT": 8})
    res = sim.run(b"hello", expect=5, clks_per_bit=8, gap_prob=0.5, max_gap=40, skew=0.02, seed=1)
    res.received, res.rx_cycles, res.tx_start_cycles, res.cycles

The line format is 8N1, LSB first, idle high, `clks_per_bit` clock cycles per bit (the same value
as the design's parameter; a ``CLKS_PER_BIT`` build parameter is checked against it). The
testbench holds ``rst`` high for 4 cycles with the line idle (registers start random, so reset bugs
show), then counts cycles from 0. Before each byte it waits, with probability `gap_prob`, a
uniformly random 1..`max_gap` cycles, so start bits land at any phase of the design's clock. `skew` makes the testbench's bits longer (0.02: 2 % slower baud; each
bit boundary is rounded on its own, so the error accumulates over a byte as on a real line);
`bad_stop` names bytes (by index) whose stop bit is sent low, a framing error.

``uart_tx`` must be high right after reset; a byte on it starts at a falling edge of the idle line,
each bit is sampled in its middle at exactly `clks_per_bit`, the start bit must still be low there
and the stop bit high (else `SimError`). `rx_cycles` holds the cycle each byte's stop bit was
sampled, `tx_start_cycles` the cycle each sent byte's start bit began, and `cycles` the cycle at
which every byte was sent and `expect` bytes were received. The run then goes on for `drain_bits`
bit times; any further byte on ``uart_tx`` is an error, as is reaching `max_cycles` first (0: a
bound from the byte counts, four times the longest the line traffic alone could take, plus
100000 cycles).

Binaries share ``hw.sim``'s cache (``hw.sim.cache_dir()``), build lock and Verilator runtime objects.
"""
from __future__ import annotations

import operator
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hw.sim import SimError, _build_binary

__all__ = ["UartResult", "UartSimulator", "build_uart"]


@dataclass
class UartResult:
    received: bytes
    rx_cycles: list[int]
    tx_start_cycles: list[int]
    cycles: int


def _as_int(value):
    """`value` as an int (numpy integers too), or None; bools and floats are not integers here."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def _check_int(name: str, value, lo: int) -> int:
    v = _as_int(value)
    if v is None or v < lo:
        raise ValueError(f"{name} = {value!r} is not an integer >= {lo}")
    return v


def _as_bytes(top: str, send) -> bytes:
    if isinstance(send, (bytes, bytearray)):
        return bytes(send)
    vals = None if isinstance(send, str) else [_as_int(b) for b in send]
    if vals is None or any(v is None or not 0 <= v < 256 for v in vals):
        raise ValueError(f"{top}: send = {send!r} is not a sequence of bytes")
    return bytes(vals)


def _byte_time(clks_per_bit: int, skew: float) -> int:
    return round(10 * clks_per_bit * (1.0 + skew))


def _default_limit(n_send: int, expect: int, clks_per_bit: int, skew: float, max_gap: int) -> int:
    line = n_send * (_byte_time(clks_per_bit, skew) + max_gap) + expect * 10 * clks_per_bit
    return 4 * line + 100_000


class UartSimulator:
    """A compiled UART testbench; `run` may be called any number of times."""

    def __init__(self, binary: Path, top: str, params: dict):
        self.binary, self.top, self.params = binary, top, dict(params)

    def _validate(self, send, expect, clks_per_bit, gap_prob, max_gap, skew, bad_stop, seed, max_cycles,
                  drain_bits) -> tuple[bytes, list[int], list[int]]:
        """The bytes to send, the sorted `bad_stop` indices and the integer arguments, checked."""
        send = _as_bytes(self.top, send)
        ints = [_check_int(name, value, lo) for name, value, lo in [
            ("expect", expect, 0), ("clks_per_bit", clks_per_bit, 4), ("max_gap", max_gap, 0), ("seed", seed, 0),
            ("max_cycles", max_cycles, 0), ("drain_bits", drain_bits, 0)]]
        declared = self.params.get("CLKS_PER_BIT")
        if declared is not None and declared != clks_per_bit:
            raise ValueError(f"{self.top}: clks_per_bit = {clks_per_bit} but the design was built with "
                             f"CLKS_PER_BIT = {declared} (model a baud mismatch with skew)")
        if not 0.0 <= gap_prob < 1.0:
            raise ValueError(f"gap_prob = {gap_prob!r} is not in [0, 1)")
        if gap_prob > 0 and max_gap < 1:
            raise ValueError(f"gap_prob = {gap_prob} needs max_gap >= 1 (max_gap = {max_gap})")
        if not -0.2 <= skew <= 0.2:  # far beyond any 8N1 receiver's tolerance (about 5 %)
            raise ValueError(f"skew = {skew!r} is not in [-0.2, 0.2]")
        bad = []
        for i in bad_stop:
            v = _as_int(i)
            if v is None or not 0 <= v < len(send):
                raise ValueError(f"bad_stop index {i!r} is not a byte index in [0, {len(send)})")
            bad.append(v)
        return send, sorted(set(bad)), ints

    def run(self, send: bytes, expect: int, clks_per_bit: int, gap_prob: float = 0.0, max_gap: int = 0,
            skew: float = 0.0, bad_stop=(), seed: int = 1, max_cycles: int = 0, drain_bits: int = 30) -> UartResult:
        """Send `send` into uart_rx and simulate until `expect` bytes came back on uart_tx."""
        send, bad, ints = self._validate(send, expect, clks_per_bit, gap_prob, max_gap, skew, bad_stop, seed,
                                         max_cycles, drain_bits)
        expect, clks_per_bit, max_gap, seed, max_cycles, drain_bits = ints
        if max_cycles == 0:
            max_cycles = _default_limit(len(send), expect, clks_per_bit, skew, max_gap)
        with tempfile.TemporaryDirectory(prefix="bnn-uart-") as tmp:
            Path(tmp, "send.hex").write_text("".join(f"{b:x}\n" for b in send))
            Path(tmp, "bad_stop.txt").write_text("".join(f"{i}\n" for i in bad))
            cmd = [str(self.binary), tmp, str(clks_per_bit), repr(float(skew)), repr(float(gap_prob)), str(max_gap),
                   str(seed), str(max_cycles), str(drain_bits * clks_per_bit), str(expect)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                err = proc.stderr.strip() or proc.stdout.strip() or f"exit status {proc.returncode}"
                raise SimError(f"{self.top}: UART simulation failed: {err}")
            return _read_result(Path(tmp))


def _read_result(tmp: Path) -> UartResult:
    received, rx_cycles = bytearray(), []
    for line in (tmp / "recv.txt").read_text().splitlines():
        h, c = line.split()
        received.append(int(h, 16))
        rx_cycles.append(int(c))
    lines = (tmp / "summary.txt").read_text().splitlines()
    cycles = int(lines[0].split()[1])
    starts = [int(ln.split()[1]) for ln in lines[1:]]
    return UartResult(received=bytes(received), rx_cycles=rx_cycles, tx_start_cycles=starts, cycles=cycles)


def build_uart(top: str, sources, params: dict | None = None, extra_args: list[str] = ()) -> UartSimulator:
    """Compile (or fetch from the cache) the UART testbench for module `top`."""
    params = dict(params or {})
    binary = _build_binary(top, sources, params, "tb_uart.cpp.in", {}, extra_args)
    return UartSimulator(binary, top, params)
