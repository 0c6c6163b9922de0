"""Block-RAM shapes: how the RTL splits a deep memory so that no read crosses RAMs stacked in depth.

An 18-kbit block RAM (Lattice ECP5 DP16KD, Xilinx 7-series RAMB18 alike) has one port width per
depth: 16,384 x 1, 8,192 x 2, 4,096 x 4, 2,048 x 9, 1,024 x 18, 512 x 36. Left to itself, Yosys
packs a deep memory into the fewest RAMs, which stacks them in depth: a read then runs through the
RAMs' slow clock-to-out, a route across all of them and a depth mux in one cycle (the critical path
of the placed CNV_1W1A and flagship designs). The RTL avoids that in two ways:

* width slices: a memory no deeper than one RAM at 1 bit (16,384 words) is split into
  ``ceil(width / slice_width(depth))`` memories of ``slice_width(depth)`` bits, each exactly one RAM
  deep, so every RAM drives its own output bits (bnn_fifo ``SLICE``, bnn_mvtu ``WSLICE``);
* banks (ROMs only): a deeper ROM, or one that packs into fewer RAMs so, is split in depth into
  banks of a power-of-two depth, each width-sliced and read into its own register before the
  bank mux (bnn_mvtu ``WBANK``; `rom_banks` chooses the depth).
"""
from __future__ import annotations

__all__ = ["PORTS", "MAX_DEPTH", "SLICE_FROM", "slice_width", "slices", "sliced_rams", "rom_banks",
           "banked_rams"]

# (port width, depth) of an 18-kbit block RAM, narrowest port first
PORTS = ((1, 16384), (2, 8192), (4, 4096), (9, 2048), (18, 1024), (36, 512))
MAX_DEPTH = PORTS[0][1]
# memories up to this depth are one RAM deep at the widest port already: nothing to slice
SLICE_FROM = PORTS[-1][1] + 1


def slice_width(depth: int) -> int:
    """Bits of the widest port of one RAM that holds `depth` words (1 beyond 16,384 words, where
    the RAMs are stacked in depth however the memory is sliced)."""
    return next((w for w, d in reversed(PORTS) if depth <= d), 1)


def slices(depth: int, width: int) -> list[tuple[int, int]]:
    """(low bit, bits) of every width slice of a depth x width memory, the last one the rest."""
    sw = min(slice_width(depth), width)
    return [(lo, min(sw, width - lo)) for lo in range(0, width, sw)]


def sliced_rams(depth: int, width: int) -> int:
    """18-kbit RAMs of a width-sliced memory (each slice one RAM deep; beyond 16,384 words, stacked)."""
    return -(-width // slice_width(depth)) * -(-depth // MAX_DEPTH)


def banked_rams(depth: int, width: int, bank: int) -> int:
    """18-kbit RAMs of a depth x width ROM in banks of `bank` words (0: one bank), each width-sliced."""
    if not bank or bank >= depth:
        return sliced_rams(depth, width)
    full, rest = divmod(depth, bank)
    return full * sliced_rams(bank, width) + (sliced_rams(rest, width) if rest else 0)


def rom_banks(depth: int, width: int) -> int:
    """WBANK for a depth x width block-RAM ROM: the power-of-two bank depth (512 .. 16,384 words) that
    takes the fewest RAMs, the fewest banks on a tie; 0 (one bank) when one is best."""
    options = [(banked_rams(depth, width, 0), 1, 0)] if depth <= MAX_DEPTH else []
    options += [(banked_rams(depth, width, d), -(-depth // d), d) for _, d in PORTS if d < depth]
    return min(options)[2]
