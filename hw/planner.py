"""Folding: how many elements each layer of the IR handles per cycle, and what that costs.

* A MatrixVector layer is folded by PE (output channels in parallel, divides MH) and SIMD
  (inputs in parallel, divides MW). Behind a sliding window SIMD may exceed the channel count C:
  the window streams gcd(SIMD, C) elements per beat (whole kernel positions when C divides SIMD)
  and a width converter packs them, so a 3-channel first layer can take all 27 inputs of a
  3x3 window per cycle instead of needing many PEs (each PE carries a threshold unit).
* Every other layer streams E elements per beat: ``pe`` in the folding file (divides the
  channel count). A Fork takes its input's width.

The folding file (YAML, hand-editable)::

    clock_mhz: 100
    target_fps: 3000          # what the plan aimed at (informational)
    layers:
      Conv_0: {pe: 16, simd: 3}
      BipolarQuant_7: {pe: 8}

`plan` picks the cheapest folding meeting a frame rate (or the fastest within a LUT
budget); `predict_cycles` gives each layer's cycles per frame, and each width converter's
(`<layer>_dwc<i>`: it moves gcd(producer's E, consumer's E) elements per cycle), the bottleneck
setting the frame interval; `estimate_resources` a LUT/FF/BRAM figure per layer and for the FIFOs and width
converters between layers, each module costed as the RTL builds it from costs measured in Yosys.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
import yaml

from build_flow.ir import Graph, Layer, dtype_range
from build_flow.ops import implementation, register
from model.atomic import atomic_write
from model.config import read_yaml
from model.errors import ConfigError

from .bram import PORTS, SLICE_FROM, banked_rams, sliced_rams
from .mvtu_mem import FAMILIES, logic_rom_bank, threshold_width, weight_banks, weight_layout, weight_rom
from .stream import elem_width

# ops whose folding the file names; SlidingWindow and Fork follow their neighbours
ELEMENTWISE_HEADROOM = 4
# The planner's cap on input bits one PE sums per cycle: bnn_mvtu adds SIMD terms in an adder
# tree that `mvtu_pipeline` splits into registered stages (so the clock does not depend on SIMD),
# but each stage's registers and the tree's fabric grow with it (FINN's own foldings stay at or
# below SIMD 64). A folding file may go beyond it by hand; `make pnr` then times it.
MAX_SIMD_BITS = 256
# Timing model of bnn_mvtu's pipeline (`mvtu_pipeline`): the logic levels of one cycle. One adder
# level of the popcount/adder tree (a LUT, a short carry chain and its route) is taken as
# TREE_LEVEL_NS; a cycle keeps CYCLE_OVERHEAD_NS for clock-to-out, setup and clock skew. Measured with
# nextpnr-ecp5 on the ECP5-85F (speed 6): the unpipelined tree of a SIMD = 96 conv (7 adder levels +
# the 2*pop - SIMD step) took 16.2 ns behind the block RAM's 5.6 ns clock-to-out (README, hw/README).
TREE_LEVEL_NS = 2.0
CYCLE_OVERHEAD_NS = 2.5
FOLDED_OPS = ("MatrixVector", "Threshold", "MaxPool", "SumPool", "GlobalSumPool", "AddSat", "Concat", "LabelSelect")


@dataclass
class Folding:
    layers: dict[str, dict[str, int]]          # layer name -> {"pe": …, "simd": …}
    clock_mhz: float = 100.0
    target_fps: float | None = None
    source: str = "planner"
    notes: list[str] = field(default_factory=list)
    family: str = "xc7"                         # the FPGA family the RTL is built for (mvtu_mem.FAMILIES)

    def pe(self, name: str) -> int:
        return self.layers[name]["pe"]

    def simd(self, name: str) -> int:
        return self.layers[name].get("simd", 1)


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _sliding_window_of(graph: Graph, layer: Layer) -> Layer | None:
    p = graph.producer(layer.inputs[0])
    return p if p is not None and p.op == "SlidingWindow" else None


def mv_shape(graph: Graph, layer: Layer) -> tuple[int, int, int, int]:
    """(MH, MW, vectors per frame, input channels C): SIMD divides MW; behind a sliding window
    the window streams gcd(SIMD, C) elements per beat (C = MW without one)."""
    mh, mw = graph.arrays[layer.attrs["weights"]].shape
    out = graph.tensors[layer.outputs[0]].shape
    vectors = int(np.prod(out[:-1])) if len(out) > 1 else 1
    win = _sliding_window_of(graph, layer)
    channels = graph.tensors[win.inputs[0]].shape[-1] if win is not None else mw
    return mh, mw, vectors, channels


def window_elems(simd: int, channels: int) -> int:
    """Elements per beat a sliding window streams to a MatrixVector of this SIMD."""
    return math.gcd(simd, channels)


def _window_cycles(graph: Graph, window: Layer, e: int) -> int:
    return max(_elements(graph, window.outputs[0]), _elements(graph, window.inputs[0])) // e


def layer_channels(graph: Graph, layer: Layer) -> int:
    """The channel count an element-wise layer's E must divide (both halves for Concat)."""
    if layer.op == "Concat":
        return math.gcd(*[graph.tensors[n].shape[-1] for n in layer.inputs])
    return graph.tensors[layer.inputs[0]].shape[-1]


def _elements(graph: Graph, name: str) -> int:
    return int(np.prod(graph.tensors[name].shape)) or 1


def _streamed(graph: Graph, layer: Layer) -> int:
    """Elements an element-wise layer passes per frame at E per cycle (a Concat: its output)."""
    return _elements(graph, layer.outputs[0] if layer.op == "Concat" else layer.inputs[0])


# ---------------------------------------------------------------- cycles

def _out_elems(graph: Graph, layer: Layer, layers: dict, elems: dict) -> int | None:
    """Elements per beat of `layer`'s outputs under the folding `layers`, given its inputs' `elems`;
    None while unknown (a sliding window whose matrix unit is not folded yet)."""
    if layer.op == "SlidingWindow":
        consumer = graph.consumers(layer.outputs[0])[0].name
        if consumer not in layers:
            return None
        return window_elems(layers[consumer].get("simd", 1), graph.tensors[layer.inputs[0]].shape[-1])
    if layer.op == "Fork":
        return elems.get(layer.inputs[0])
    return layers[layer.name]["pe"]


def stream_elems(graph: Graph, folding: Folding) -> dict[str, int]:
    """Elements per beat of every IR tensor's stream (as its producer emits it)."""
    elems = {graph.input: graph.tensors[graph.input].shape[-1]}  # one pixel per beat
    for layer in graph.layers:
        for out in layer.outputs:
            elems[out] = _out_elems(graph, layer, folding.layers, elems)
    return elems


def predict_cycles(graph: Graph, folding: Folding) -> dict[str, int]:
    """Cycles per frame of every layer at full rate; the largest is the frame interval."""
    elems = stream_elems(graph, folding)
    cycles = {}
    for layer in graph.layers:
        cycles[layer.name] = int(implementation("planner", layer.op).cycles(graph, layer, folding, elems))
        for i, tensor in enumerate(layer.inputs):
            want = _wanted_elems(graph, layer, folding, elems)
            if want != elems[tensor]:
                cycles[f"{layer.name}_dwc{i}"] = dwc_cycles(graph, tensor, elems[tensor], want)
    return cycles


def _mv_cycles(graph: Graph, layer: Layer, folding: Folding, elems: dict) -> int:
    mh, mw, vectors, _ = mv_shape(graph, layer)
    return vectors * (mw // folding.simd(layer.name)) * (mh // folding.pe(layer.name))


def _swg_cycles(graph: Graph, layer: Layer, folding: Folding, elems: dict) -> int:
    return _window_cycles(graph, layer, elems[layer.outputs[0]])


def _fork_cycles(graph: Graph, layer: Layer, folding: Folding, elems: dict) -> int:
    return _elements(graph, layer.inputs[0]) // elems[layer.inputs[0]]


def _elementwise_cycles(graph: Graph, layer: Layer, folding: Folding, elems: dict) -> int:
    return _streamed(graph, layer) // folding.pe(layer.name)  # one beat of E elements per cycle


def dwc_cycles(graph: Graph, tensor: str, have: int, want: int) -> int:
    """Cycles per frame of the width converter from `have` to `want` elements per beat: it goes
    through gcd(have, want) elements per beat (bnn_dwc converts whole multiples only), so a
    stream of 4 elements per beat read 7 at a time moves one element per cycle."""
    return _elements(graph, tensor) // math.gcd(have, want)


def binary_macs(graph: Graph) -> int:
    """XNOR-popcount MACs per frame: MH x MW per vector of every MatrixVector with BIPOLAR input."""
    total = 0
    for layer in graph.layers:
        if layer.op == "MatrixVector" and graph.tensors[layer.inputs[0]].dtype == "BIPOLAR":
            mh, mw, vectors, _ = mv_shape(graph, layer)
            total += mh * mw * vectors
    return total


# ---------------------------------------------------------------- resources (calibrated on Yosys)
#
# Each module is costed as the RTL builds it; the per-primitive costs below were measured with
# Yosys 0.23 `synth_xilinx` (7-series) on the generated modules synthesized one at a time, LUTs
# counted as hw/synth.py counts them (LUTRAM, SRLs and INV cells included).

# bnn_mvtu's XNOR-popcount: an adder tree over SIMD one-bit XNORs whose node widths Yosys trims to
# the count they can hold (_popcount_tree_luts: 2.75 LUTs per input at SIMD 32, 2.94 at 252; an
# XNOR folds into its first adder). With more than one neuron fold the input comes through the
# fold buffer's 2:1 mux, which abc copies into every PE's leaves: 0.5 more per product (measured
# per PE: 2.9 without the buffer; with it 3.6 at SIMD 252, 3.1 at SIMD 32).
POPCOUNT_BUFFER_LUTS = 0.5
# Integer inputs (±x per weight, then full-width adders): LUTs per product per partial-sum bit
# (measured 2.3 on the 8-bit stems: SIMD 27 x PE 2 and SIMD 3 x PE 16).
INT_PRODUCT_LUTS = 2.3
# A distributed ROM (weights, threshold levels) reads one word per cycle. Narrow words take one LUT
# per bit per 64 words, as LUT6s would; words of >= 128 bits (PE*SIMD of most convolutions) map
# block by block: about 1.5 LUTs per bit per 32 words, a last block of <= 4 words 0.2. Measured
# LUTs per bit of word in bnn_mvtu: 28 words 1.44, 32: 1.6, 36: 1.47, 48: 3.15, 64: 3.62,
# 96: 5.52, 112: 5.5 and 6.3 (1008- and 504-bit words).
WIDE_ROM_BITS = 128
WIDE_ROM_BLOCK_LUTS = 1.5
# Yosys' own choice for a ROM without a style (the threshold levels): 16 kbit of 224 words stayed in
# logic, of 448 words went to block RAM (flagship Conv_1 / Conv_3)
THRESHOLD_BRAM_WORDS = 257
# Fixed costs per module (counters, handshakes), measured.
MVTU_CONTROL_LUTS = 30    # plus 2 per bit of its three fold / address counters
SWG_LUTS = 215            # bnn_swg: 190..250 on the 12 windows of the flagship and CNV_1W1A
FIFO_CONTROL_LUTS = (15, 40, 90)  # bnn_fifo pointers and flags: <= 32 beats, LUTRAM, block RAM
# element-wise modules: (fixed LUTs, LUTs per bit of the beat); measured e.g. bnn_pool summing
# 8 x 8 bits 392, 4 x 8 bits 339; OR-pooling 8 x 1 bit 133; bnn_addsat 8 x 6 bits 148
ELEMENTWISE_LUTS = {"SumPool": (280, 2), "MaxPool": (110, 2), "GlobalSumPool": (100, 3), "AddSat": (4, 3),
                    "Concat": (20, 1), "LabelSelect": (10, 1)}
# the extra resources entry: FIFOs and width converters the generator inserts between layers
GLUE = "(FIFOs, width converters)"

_BRAM_SHAPES = ((1.0, ((72, 512), (36, 1024), (18, 2048), (9, 4096), (4, 8192), (2, 16384), (1, 32768))),
                (0.5, PORTS))  # a RAMB18: the 18-kbit RAM's ports (hw/bram.py)


def estimate_resources(graph: Graph, folding: Folding) -> dict[str, dict[str, float]]:
    """LUT / FF / BRAM36 per layer, plus the FIFOs and width converters between layers (the
    GLUE entry), each module costed as the RTL builds it (see the constants above). Within
    15 % of Yosys in total on the flagship and CNV_1W1A; Yosys (make synth) gives the real count."""
    elems = stream_elems(graph, folding)
    res = {}
    for layer in graph.layers:
        lut, ff, bram = _layer_resources(graph, layer, folding, elems)
        res[layer.name] = _rounded(lut, ff, bram)
    res[GLUE] = _rounded(*_glue_resources(graph, folding, elems))
    return res


def _rounded(lut: float, ff: float, bram: float) -> dict[str, float]:
    return {"lut": round(lut), "ff": round(ff), "bram36": round(bram, 1)}


def _layer_resources(graph: Graph, layer: Layer, folding: Folding, elems: dict) -> tuple[float, float, float]:
    """(LUT, FF, BRAM36) of the module the generator instantiates for one IR layer."""
    return implementation("planner", layer.op).resources(graph, layer, folding, elems)


def _fork_resources(graph: Graph, layer: Layer, folding: Folding, elems: dict) -> tuple[float, float, float]:
    # bnn_fork: one register of the beat, a valid bit per output
    return 4.0, elem_width(graph.tensors[layer.inputs[0]].dtype) * elems[layer.inputs[0]] + len(layer.outputs), 0.0


def _mv_resources(graph: Graph, layer: Layer, pe: int, simd: int) -> tuple[float, float, float]:
    """(LUT, FF, BRAM36) of one bnn_mvtu at this folding (what the planner minimizes)."""
    mh, mw, _, _ = mv_shape(graph, layer)
    in_dt = graph.tensors[layer.inputs[0]].dtype
    ew = elem_width(in_dt)
    acc_w = _acc_width(mw, in_dt)
    nf, sf = mh // pe, mw // simd
    out_w = elem_width(graph.tensors[layer.outputs[0]].dtype)
    if in_dt == "BIPOLAR":
        dot = _popcount_tree_luts(simd) + (POPCOUNT_BUFFER_LUTS * simd if nf > 1 else 0.0)
    else:
        dot = INT_PRODUCT_LUTS * simd * _partial_sum_width(simd, ew)
    counter_bits = sum(max(1, (n - 1).bit_length()) for n in (sf, nf, sf * nf))
    lut = pe * (dot + acc_w + out_w) + MVTU_CONTROL_LUTS + 2 * counter_bits
    # input (and fold buffer read) registers, partial sums and accumulators, output and skid, control
    ff = ew * simd * (2 if nf > 1 else 1) + pe * (2 * acc_w + 2 * out_w) + 2 * counter_bits + 20
    rom = weight_rom(mh, mw, pe, simd)
    w_lut, w_bram = _weight_rom(*rom)
    lut, bram = lut + w_lut, w_bram
    ff += pe * simd if w_bram == 0 else 0  # the weight register sits in the block RAM's output
    # the pipeline at the default clock (mvtu_pipeline): operand register, registered tree heights
    mem_reg, levels = mvtu_pipeline(simd, ew, 100.0, rom)
    ff += mem_reg * (pe * simd + ew * simd)
    ff += (weight_banks(*rom) - 1) * pe * simd  # the bank registers: one word per bank
    for h in range(1, tree_levels(simd)):
        if levels and h % levels == 0:
            ff += pe * (-(-simd // (1 << h))) * (h + ew)
    if nf > 1:  # the fold buffer: one vector, read and written at one address
        lut += ew * simd * -(-sf // 64)
    if layer.attrs.get("thresholds") is not None:
        t = graph.arrays[layer.attrs["thresholds"]]
        t_lut, t_ff, t_bram = _threshold_unit(t, acc_w, pe, nf)
        lut, ff, bram = lut + t_lut, ff + t_ff, bram + t_bram
    return lut, ff, bram


def _acc_width(mw: int, in_dt: str) -> int:
    lo, hi = dtype_range(in_dt)
    return (mw * max(abs(lo), abs(hi))).bit_length() + 1


def _partial_sum_width(simd: int, ew: int) -> int:
    """bnn_mvtu's PW, $clog2(SIMD + 1) + IN_EW + 2: every adder-tree node's width for integer inputs."""
    return simd.bit_length() + ew + 2


@lru_cache(maxsize=None)
def _popcount_tree_luts(simd: int) -> float:
    """LUTs of bnn_mvtu's heap-ordered adder tree over `simd` one-bit terms (leaves padded to a
    power of two): one LUT per result bit of every adder with two non-empty inputs, a node
    holding n terms being n.bit_length() bits wide once Yosys trims it."""
    leaves = 1 << max(0, (simd - 1).bit_length())

    def node(lo: int, size: int) -> tuple[int, int]:  # (terms below, LUTs below) of leaves lo..lo+size-1
        if size == 1:
            return int(lo < simd), 0
        (a, la), (b, lb) = node(lo, size // 2), node(lo + size // 2, size // 2)
        return a + b, la + lb + ((a + b).bit_length() if a and b else 0)

    return float(node(0, leaves)[1])


def _threshold_unit(thresholds: np.ndarray, x_w: int, n: int, groups: int) -> tuple[float, float, float]:
    """(LUT, FF, BRAM36) of bnn_thres_step for N elements per beat and G threshold groups.
    Binary search (L = 2^S - 1 >= 15, as hw/mvtu_mem.use_search picks): per element S comparators
    and S-1 child selects in 2S-3 register stages, level j's ROM holding G*2^(j-1) words of 2
    thresholds per element. Parallel: L comparators and a popcount per element, one ROM word of N*L
    thresholds per group. Every ROM read is registered twice (its read register and a copy in front
    of the comparator).
    Measured in bnn_mvtu (LUTs with it minus without), L 63: PE 4, 14 groups: 1237 (1224 here);
    PE 4, 28 groups: 1133 (1168); PE 2, 56 groups: 539 (572); PE 2, 28 groups of 14 bits: 794 (796)."""
    levels = thresholds.shape[1]
    search = levels >= 15 and (levels + 1) & levels == 0
    s = levels.bit_length()
    if thresholds.shape[0] == 1 or bool(np.all(thresholds == thresholds[0])):
        # one row for every channel (a per-tensor requantizer): the ROMs are constants, which Yosys
        # folds into the comparators; each count bit is then a small function of x (measured
        # 81..127 LUT for the flagship's and CNV's three)
        return n * s * (x_w + 1), n * ((s - 1) * (x_w + s) if search else s), 0.0
    t_w = threshold_width(thresholds)
    cw = max(x_w, t_w) + 1
    if search:
        lut = n * (s * cw + (s - 1) * t_w)
        # stage registers (element, direction, bits), every ROM read registered twice, directions
        ff = n * ((2 * s - 3) * (x_w + s + 1) + 2 * (t_w + (s - 1) * 2 * t_w) + 2)
        roms = [(groups, n * t_w)] + [(groups << (j - 1), n * 2 * t_w) for j in range(1, s)]
    else:
        lut = n * (levels * cw + levels)
        ff = n * (2 * levels * t_w + 2)
        roms = [(groups, n * levels * t_w)]
    bram = 0.0
    for depth, width in roms:
        r_lut, r_bram = _rom(depth, width, bram_from=THRESHOLD_BRAM_WORDS)
        lut, bram = lut + r_lut, bram + r_bram
    return lut, ff, bram


def _threshold_layer_resources(graph: Graph, layer: Layer, e: int) -> tuple[float, float, float]:
    """bnn_threshold: the activation over E elements per beat, C/E groups."""
    x = graph.tensors[layer.inputs[0]]
    x_w = elem_width(x.dtype) + 1  # bnn_threshold compares its input as a signed value
    t_lut, t_ff, t_bram = _threshold_unit(graph.arrays[layer.attrs["thresholds"]], x_w, e, x.shape[-1] // e)
    out_w = elem_width(graph.tensors[layer.outputs[0]].dtype)
    return t_lut + 2 * e * out_w + 20, t_ff + e * (x_w + 2 * out_w) + 10, t_bram


def _window_resources(graph: Graph, layer: Layer, e: int) -> tuple[float, float, float]:
    """bnn_swg: address logic (about constant) and its line buffer of K+S rows, E elements a word."""
    h, w, c = graph.tensors[layer.inputs[0]].shape
    ew = elem_width(graph.tensors[layer.inputs[0]].dtype)
    k, s = layer.attrs["kernel"], layer.attrs["stride"]
    m_lut, m_bram = _buffer((k + s) * w * c // e, e * ew)
    return SWG_LUTS + m_lut, 60, m_bram


def _elementwise_resources(graph: Graph, layer: Layer, e: int) -> tuple[float, float, float]:
    """Pools, AddSat, Concat, LabelSelect: logic per bit of the beat, and a pool's row of sums."""
    ew = max(elem_width(graph.tensors[n].dtype) for n in (*layer.inputs, *layer.outputs))
    fixed, per_bit = ELEMENTWISE_LUTS.get(layer.op, (10, 1))
    lut, ff, bram = fixed + per_bit * e * ew, 2 * e * ew + 10, 0.0
    if layer.op in ("SumPool", "MaxPool", "GlobalSumPool"):
        out = graph.tensors[layer.outputs[0]].shape  # a pool holds one output row, a global pool one pixel
        m_lut, bram = _buffer(int(np.prod(out[-2:] if layer.op != "GlobalSumPool" else out[-1:])) // e, e * ew)
        lut += m_lut
    return lut, ff, bram


# ---------------------------------------------------------------- memories

def _weight_rom(depth: int, width: int) -> tuple[float, float]:
    """(LUT, BRAM36) of bnn_mvtu's weight ROM: sliced (and banked) as `weight_layout` builds it, the
    bank mux (a 4:1 mux per LUT6) only where there are banks; else as Yosys maps one memory."""
    bank, sliced = weight_layout(depth, width)
    if not sliced:
        return _rom(depth, width)
    banks = weight_banks(depth, width)
    return width * -(-(banks - 1) // 3), banked_rams(depth, width, bank) / 2


def _rom(depth: int, width: int, bram_from: int = 128) -> tuple[float, float]:
    """(LUT, BRAM36) of a ROM read one word per cycle: block RAM from `bram_from` words and 16 kbit
    (bnn_mvtu's WEIGHT_BRAM rule for weights: 128; THRESHOLD_BRAM_WORDS for what Yosys picks), else logic."""
    if depth >= bram_from and depth * width >= 16 * 1024:
        return _bram_read_mux(depth, width), _bram36(depth, width, 72 if bram_from <= 128 else 36)
    if depth <= 4:
        return 0.2 * width, 0.0
    if width >= WIDE_ROM_BITS:
        blocks, rest = divmod(depth, 32)
        last = 0.0 if rest == 0 else 0.2 if rest <= 4 else WIDE_ROM_BLOCK_LUTS
        return width * (WIDE_ROM_BLOCK_LUTS * blocks + last), 0.0
    return width * -(-depth // 64), 0.0


def fifo_in_bram(depth: int, width: int) -> bool:
    """Whether Yosys puts a bnn_fifo's memory in block RAM: deeper than 127 words and over 2 kbit
    (what it picked for bnn_fifo). Such a FIFO gets OUT_REG = 1 (hw/generate.py): a block RAM's
    clock-to-out would otherwise start the next module's logic, and the reader's ready would reach
    its RAMs' clock enables."""
    return depth >= 128 and depth * width > 2048


def _ram(depth: int, width: int) -> tuple[float, float]:
    """(LUT, BRAM36) of a FIFO's simple dual-port RAM: LUTRAM (RAM32M: 6 bits x 32 words per 4 LUTs,
    RAM64M: 3 x 64) unless `fifo_in_bram`."""
    if fifo_in_bram(depth, width):  # bnn_fifo slices a memory deeper than 512 words (hw/bram.py)
        return 0.0, sliced_rams(depth, width) / 2 if depth >= SLICE_FROM else _bram36(depth, width)
    return 4.0 * min(-(-width // 6) * -(-depth // 32), -(-width // 3) * -(-depth // 64)), 0.0


def _buffer(depth: int, width: int) -> tuple[float, float]:
    """(LUT, BRAM36) of a window's line buffer or a pool's row buffer: Yosys puts every one above
    2 kbit in block RAM (all 15 measured), the rest in LUTRAM."""
    if depth * width > 2048:
        return 0.0, _bram36(depth, width)
    return _ram(depth, width)


def _bram36(depth: int, width: int, max_width: int = 72) -> float:
    """Block RAMs (RAMB18 = 0.5) of the best aspect ratio for depth x width; `max_width` is a RAMB36's
    widest port (72 in simple dual-port mode, 36 for a ROM Yosys maps on its own), a RAMB18's is half."""
    return min(cost * -(-width // w) * -(-depth // d) for cost, shapes in _BRAM_SHAPES for w, d in shapes
               if w <= max_width * cost)


def _bram_read_mux(depth: int, width: int) -> float:
    """LUTs selecting the addressed row of block RAMs stacked in depth (a 4:1 mux per LUT6)."""
    rows = min(-(-depth // d) for _, shapes in _BRAM_SHAPES for w, d in shapes if w >= min(width, 72))
    return width * -(-(rows - 1) // 3)


# ---------------------------------------------------------------- FIFOs and width converters

def _glue_resources(graph: Graph, folding: Folding, elems: dict) -> tuple[float, float, float]:
    """(LUT, FF, BRAM36) of what hw/generate.py inserts between layers: a width converter where a
    stream's width changes (through the gcd), a one-vector FIFO in front of a multi-fold matrix
    unit, and a FIFO on every fork branch (sized by the generator's own rule)."""
    lut = ff = bram = 0.0
    fork_fifos = _fork_fifo_depths(graph, folding, elems)
    for layer in graph.layers:
        for i, tensor in enumerate(layer.inputs):
            ew = elem_width(graph.tensors[tensor].dtype)
            have, want = elems[tensor], _wanted_elems(graph, layer, folding, elems)
            parts = [_dwc(ew, a, b) for a, b in ((have, math.gcd(have, want)), (math.gcd(have, want), want)) if a != b]
            if (layer.name, i) in fork_fifos:
                parts.append(_fifo(fork_fifos[(layer.name, i)], have * ew))
            if layer.op == "MatrixVector" and i == 0:
                parts.append(_vector_fifo(graph, layer, folding.pe(layer.name), want))
            for p_lut, p_ff, p_bram in parts:
                lut, ff, bram = lut + p_lut, ff + p_ff, bram + p_bram
    return lut, ff, bram


def _wanted_elems(graph: Graph, layer: Layer, folding: Folding, elems: dict) -> int:
    """Elements per beat a layer's module takes on its inputs (hw/generate.py's `want`)."""
    if layer.op == "MatrixVector":
        return folding.simd(layer.name)
    if layer.op in ("SlidingWindow", "Fork"):
        return elems[layer.outputs[0]]
    return folding.pe(layer.name)


def _fork_fifo_depths(graph: Graph, folding: Folding, elems: dict) -> dict[tuple[str, int], int]:
    """(reader, input) -> depth of the FIFO the generator puts on each fork branch."""
    from dataclasses import replace

    from .generate import branch_fifo_depths  # the generator's rule (it imports this module)

    folded = apply_folding(replace(graph, layers=[copy.copy(l) for l in graph.layers]), folding)
    depths = {}
    for fork in (l for l in folded.layers if l.op == "Fork"):
        for out, depth in zip(fork.outputs, branch_fifo_depths(folded, fork, elems)):
            reader = folded.consumers(out)[0]
            depths[(reader.name, reader.inputs.index(out))] = depth
    return depths


def _vector_fifo(graph: Graph, layer: Layer, pe: int, simd: int) -> tuple[float, float, float]:
    """The one-vector FIFO, at SIMD width, in front of a matrix unit with several neuron folds."""
    mh, mw, _, _ = mv_shape(graph, layer)
    if mh // pe == 1:
        return 0.0, 0.0, 0.0
    return _fifo(max(4, mw // simd + 2), simd * elem_width(graph.tensors[layer.inputs[0]].dtype))


def _fifo(depth: int, width: int) -> tuple[float, float, float]:
    """bnn_fifo: DEPTH words plus the read register (and the two-beat output stage of a block-RAM one)."""
    m_lut, m_bram = _ram(depth, width)
    control = FIFO_CONTROL_LUTS[2 if m_bram else (0 if depth <= 32 else 1)]
    out_reg = 2 * (width + 1) if m_bram else 0
    return m_lut + control, width + 2 * math.ceil(math.log2(depth + 1)) + 4 + out_reg, m_bram


def _dwc(ew: int, in_e: int, out_e: int) -> tuple[float, float, float]:
    """bnn_dwc: gathering registers the wide beat (few LUTs); splitting shifts it out (about
    1.5 LUT per input bit, measured 12..194)."""
    if out_e > in_e:
        return 8.0, out_e * ew + 4, 0.0
    return 1.5 * in_e * ew + 5, in_e * ew + 4, 0.0


def total_luts(graph: Graph, folding: Folding) -> int:
    return sum(r["lut"] for r in estimate_resources(graph, folding).values())


# ---------------------------------------------------------------- planning

def fold_for_cycles(graph: Graph, target: int) -> dict[str, dict[str, int]]:
    """The cheapest folding whose every layer takes at most `target` cycles per frame (or
    the most parallel one a layer allows, when it cannot)."""
    layers = {}
    elems = {graph.input: graph.tensors[graph.input].shape[-1]}  # as stream_elems, built as we go

    def converts_in_time(tensor: str, want: int) -> bool:  # the width converter in front keeps up
        return elems.get(tensor) is None or dwc_cycles(graph, tensor, elems[tensor], want) <= target

    for layer in graph.layers:
        if layer.op == "MatrixVector":
            layers[layer.name] = _fold_matrix_vector(graph, layer, target, converts_in_time)
            window = _sliding_window_of(graph, layer)
            if window is not None:  # its width follows this unit's SIMD
                elems[window.outputs[0]] = _out_elems(graph, window, layers, elems)
        elif layer.op in FOLDED_OPS:
            # element-wise layers are cheap and bursty (a pool emits on every K-th row, a
            # concat alternates its inputs): a quarter of the interval keeps them off the
            # critical path (measured: at the full interval they cost 6 % of a frame).
            c, n = layer_channels(graph, layer), _streamed(graph, layer)
            ok = [e for e in _divisors(c) if n // e <= max(1, target // ELEMENTWISE_HEADROOM)]
            ok = [e for e in ok if all(converts_in_time(t, e) for t in layer.inputs)] or ok
            layers[layer.name] = {"pe": ok[0] if ok else c}
        for out in layer.outputs:
            elems.setdefault(out, _out_elems(graph, layer, layers, elems))
    return layers


def _fold_matrix_vector(graph: Graph, layer: Layer, target: int,
                        converts_in_time=lambda tensor, want: True) -> dict[str, int]:
    """The PE/SIMD of least estimated LUTs taking at most `target` cycles, its window (if any)
    and the width converter in front keeping up too; SIMD capped at MAX_SIMD_BITS input bits per
    PE (else the most parallel)."""
    mh, mw, vectors, channels = mv_shape(graph, layer)
    window = _sliding_window_of(graph, layer)
    ew = elem_width(graph.tensors[layer.inputs[0]].dtype)
    simds = [s for s in _divisors(mw) if s == 1 or s * ew <= MAX_SIMD_BITS]
    simds = [s for s in simds if window is None
             or _window_cycles(graph, window, window_elems(s, channels)) <= target] or simds
    if window is None:
        simds = [s for s in simds if converts_in_time(layer.inputs[0], s)] or simds
    else:
        simds = [s for s in simds if converts_in_time(window.inputs[0], window_elems(s, channels))] or simds
    options = [(_mv_choice_luts(graph, layer, pe, simd), pe * simd, -simd, pe, simd)
               for simd in simds for pe in _divisors(mh) if vectors * (mw // simd) * (mh // pe) <= target]
    if not options:  # out of reach: the most parallel folding allowed
        return {"pe": mh, "simd": max(simds)}
    *_, pe, simd = min(options)
    return {"pe": pe, "simd": simd}


def tree_levels(simd: int) -> int:
    """Adder levels of bnn_mvtu's heap tree over SIMD terms (leaves padded to a power of two)."""
    return max(0, (simd - 1).bit_length())


def levels_per_cycle(clock_mhz: float) -> int:
    """Logic levels (adder levels of the matrix unit's tree) that fit one cycle at `clock_mhz`."""
    return max(2, int((1000.0 / clock_mhz - CYCLE_OVERHEAD_NS) // TREE_LEVEL_NS))


def mvtu_pipeline(simd: int, ew: int, clock_mhz: float, weights: tuple[int, int] | None = None) -> tuple[int, int]:
    """(MEM_REG, TREE_LEVELS) of a bnn_mvtu at this SIMD and clock: the weight memory's read is
    always registered once more (its clock-to-out then ends at a register), twice when the
    weight ROM (`weights` = (depth, width)) is split into banks (`weight_layout`: a register behind
    each bank, one after the bank mux); the adder tree (its levels plus the leaf product or the
    final 2*pop - SIMD step) is split into stages of at most levels_per_cycle - 1 adder levels
    when it does not fit one cycle. `ew` (input bits) is taken as one more level for integer
    inputs (the negation of the leaves)."""
    del ew  # the leaf step counts as one level either way (XNOR, or a negation's carry chain)
    mem_reg = 2 if weights is not None and weight_banks(*weights) > 1 else 1
    per_cycle = levels_per_cycle(clock_mhz)
    if tree_levels(simd) + 1 <= per_cycle:
        return mem_reg, 0
    return mem_reg, max(1, per_cycle - 1)


def mvtu_extra_latency(simd: int, mem_reg: int, levels: int) -> int:
    """Cycles the pipeline registers add to bnn_mvtu's latency (MEM_REG + TREE_REGS)."""
    lv = tree_levels(simd)
    return mem_reg + (0 if levels <= 0 or lv <= 1 else (lv - 1) // levels)


def mvtu_cycle_levels(simd: int, levels: int) -> int:
    """Logic levels of the longest cycle of the adder tree: its adder levels per stage + 1 (leaf
    product or the 2*pop - SIMD step)."""
    lv = tree_levels(simd)
    return (min(lv, levels) if levels > 0 else lv) + 1


def pipeline_report(graph: Graph, folding: Folding) -> dict[str, dict[str, int]]:
    """Per matrix-vector layer: MEM_REG, TREE_LEVELS, the added latency and the adder-tree logic
    levels of its longest cycle (what the generator builds at folding.clock_mhz)."""
    out = {}
    for layer in graph.layers:
        if layer.op != "MatrixVector":
            continue
        simd = folding.simd(layer.name)
        ew = elem_width(graph.tensors[layer.inputs[0]].dtype)
        mh, mw, _, _ = mv_shape(graph, layer)
        rom = weight_rom(mh, mw, folding.pe(layer.name), simd)
        mem_reg, lv = mvtu_pipeline(simd, ew, folding.clock_mhz, rom)
        bank, sliced = weight_layout(*rom)
        out[layer.name] = {"simd": simd, "mem_reg": mem_reg, "weight_bank": bank, "weight_slices": sliced,
                           "weight_logic_bank": logic_rom_bank(*rom, folding.family),
                           "tree_levels": lv,
                           "extra_latency": mvtu_extra_latency(simd, mem_reg, lv),
                           "tree_levels_total": tree_levels(simd),
                           "logic_levels_per_cycle": mvtu_cycle_levels(simd, lv)}
    return out


def _mv_choice_luts(graph: Graph, layer: Layer, pe: int, simd: int) -> float:
    """What a folding of one matrix unit costs: the unit and the input FIFO its folding implies."""
    return _mv_resources(graph, layer, pe, simd)[0] + _vector_fifo(graph, layer, pe, simd)[0]


def plan(graph: Graph, clock_mhz: float = 100.0, fps: float | None = None, lut_budget: int | None = None) -> Folding:
    """A folding for `fps` frames/s at `clock_mhz`, or the fastest whose estimated LUTs fit `lut_budget`."""
    if (fps is None) == (lut_budget is None):
        raise ConfigError("plan: give a target frame rate (FPS=) or a LUT budget, not both or neither")
    if fps is not None:
        if fps <= 0:
            raise ConfigError(f"plan: FPS={fps} must be positive")
        target = max(1, int(clock_mhz * 1e6 // fps))
        folding = Folding(fold_for_cycles(graph, target), clock_mhz, fps)
    else:
        slow = max(predict_cycles(graph, Folding(fold_for_cycles(graph, 1 << 40), clock_mhz)).values())
        lo, hi = 1, slow  # the smallest frame interval whose folding fits the budget
        while lo < hi:
            mid = (lo + hi) // 2
            if total_luts(graph, Folding(fold_for_cycles(graph, mid), clock_mhz)) <= lut_budget:
                hi = mid
            else:
                lo = mid + 1
        # below the slowest layer's floor (a window at one position per cycle, say) a smaller
        # target only buys parallelism elsewhere: refold for the interval actually reached
        reached = max(predict_cycles(graph, Folding(fold_for_cycles(graph, lo), clock_mhz)).values())
        folding = Folding(fold_for_cycles(graph, reached), clock_mhz)
        folding.target_fps = round(clock_mhz * 1e6 / max(predict_cycles(graph, folding).values()), 1)
        if total_luts(graph, folding) > lut_budget:
            folding.notes.append(f"even the slowest folding is estimated above the {lut_budget} LUT budget")
    bottleneck = max(predict_cycles(graph, folding).values())
    if fps is not None and bottleneck > clock_mhz * 1e6 / fps:
        folding.notes.append(f"{fps:g} FPS is out of reach: the most parallel folding takes {bottleneck} cycles "
                             f"per frame ({clock_mhz * 1e6 / bottleneck:.0f} FPS at {clock_mhz:g} MHz)")
    return folding


# ---------------------------------------------------------------- the file

def save_folding(folding: Folding, path: str | Path) -> Path:
    doc = {"clock_mhz": folding.clock_mhz, "target_fps": folding.target_fps, "source": folding.source,
           "family": folding.family, "layers": folding.layers}
    if folding.notes:
        doc["notes"] = folding.notes
    text = "# bnn-flow folding config: PE/SIMD per layer (hw/planner.py); edit by hand, then FOLDING=<this file>\n"
    text += yaml.safe_dump(doc, sort_keys=False, default_flow_style=None)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))
    return Path(path)


def load_folding(path: str | Path, graph: Graph) -> Folding:
    """Read and check a folding file against `graph`; errors name the file, layer and field."""
    path = Path(path)
    doc = read_yaml(path, "folding file")
    if not isinstance(doc, dict) or not isinstance(doc.get("layers"), dict):
        raise ConfigError(f"{path}: expected a mapping with a 'layers' mapping")
    clock = doc.get("clock_mhz", 100.0)
    if not isinstance(clock, (int, float)) or isinstance(clock, bool) or clock <= 0:
        raise ConfigError(f"{path}: clock_mhz = {clock!r} must be a positive number")
    family = doc.get("family", "xc7")
    if family not in FAMILIES:
        raise ConfigError(f"{path}: family = {family!r} is not an FPGA family the RTL is built for "
                          f"({', '.join(FAMILIES)})")
    folding = Folding({}, float(clock), doc.get("target_fps"), source=str(path), family=family)
    known = {l.name: l for l in graph.layers if l.op in FOLDED_OPS}
    for name in doc["layers"]:
        if name not in known:
            raise ConfigError(f"{path}: layer '{name}' is not a folded layer of this model "
                              f"(folded layers: {', '.join(known)})")
    for name, layer in known.items():
        entry = doc["layers"].get(name)
        if not isinstance(entry, dict):
            raise ConfigError(f"{path}: layer '{name}' ({layer.op}) is missing (give pe{', simd' if layer.op == 'MatrixVector' else ''})")
        fields = ("pe", "simd") if layer.op == "MatrixVector" else ("pe",)
        for key in entry:
            if key not in fields:
                raise ConfigError(f"{path}: layer '{name}' ({layer.op}): unknown field '{key}' (fields: {', '.join(fields)})")
        values = {}
        for key in fields:
            v = entry.get(key)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"{path}: layer '{name}' ({layer.op}): {key} = {v!r} must be an integer >= 1")
            values[key] = v
        if layer.op == "MatrixVector":
            mh, mw, _, _ = mv_shape(graph, layer)
            if mh % values["pe"]:
                raise ConfigError(f"{path}: layer '{name}' (MatrixVector): pe = {values['pe']} does not divide "
                                  f"its {mh} output channels (MH)")
            if mw % values["simd"]:
                raise ConfigError(f"{path}: layer '{name}' (MatrixVector): simd = {values['simd']} does not divide "
                                  f"its MW ({mw})")
        else:
            c = layer_channels(graph, layer)
            if c % values["pe"]:
                raise ConfigError(f"{path}: layer '{name}' ({layer.op}): pe = {values['pe']} does not divide "
                                  f"its {c} channels")
        folding.layers[name] = values
    return folding


def apply_folding(graph: Graph, folding: Folding) -> Graph:
    """Record PE/SIMD in the IR layers' folding fields (the IR is what backends read)."""
    elems = stream_elems(graph, folding)
    for layer in graph.layers:
        if layer.op == "MatrixVector":
            layer.pe, layer.simd = folding.pe(layer.name), folding.simd(layer.name)
        elif layer.op in FOLDED_OPS:
            layer.pe = layer.simd = folding.pe(layer.name)
        else:
            layer.pe = layer.simd = elems[layer.outputs[0]]
    return graph


def folding_from_ir(graph: Graph) -> Folding:
    """The folding a folded IR carries (what `apply_folding` wrote, with the clock, target and
    source recorded in ``meta["folding"]``): backends and FINN read it from the saved IR."""
    meta = graph.meta.get("folding")
    if not isinstance(meta, dict):
        raise ConfigError("this IR carries no folding (meta.folding): plan it first (make rtl, or the FINN build)")
    layers = {}
    for layer in graph.layers:
        if layer.op == "MatrixVector":
            layers[layer.name] = {"pe": layer.pe, "simd": layer.simd}
        elif layer.op in FOLDED_OPS:
            layers[layer.name] = {"pe": layer.pe}
    return Folding(layers, float(meta.get("clock_mhz", 100.0)), meta.get("target_fps"), source=meta.get("source", "IR"),
                   family=meta.get("family", "xc7"))


def folding_meta(folding: Folding) -> dict:
    """What a folded IR records of its folding beside the layers' pe/simd."""
    return {"clock_mhz": folding.clock_mhz, "target_fps": folding.target_fps, "source": folding.source,
            "family": folding.family}


# ---------------------------------------------------------------- the planner's implementation of each IR op

@dataclass(frozen=True)
class PlannerOp:
    """Cycles per frame at full rate and (LUT, FF, BRAM36) of one IR op's module, each as
    fn(graph, layer, folding, elements per beat of every stream)."""
    cycles: Callable[[Graph, Layer, Folding, dict], int]
    resources: Callable[[Graph, Layer, Folding, dict], tuple[float, float, float]]


def _elementwise(graph: Graph, layer: Layer, folding: Folding, elems: dict) -> tuple[float, float, float]:
    return _elementwise_resources(graph, layer, elems[layer.outputs[0]])


register("planner", "MatrixVector", PlannerOp(
    _mv_cycles, lambda g, l, f, e: _mv_resources(g, l, f.pe(l.name), f.simd(l.name))))
register("planner", "SlidingWindow", PlannerOp(
    _swg_cycles, lambda g, l, f, e: _window_resources(g, l, e[l.outputs[0]])))
register("planner", "Threshold", PlannerOp(
    _elementwise_cycles, lambda g, l, f, e: _threshold_layer_resources(g, l, f.pe(l.name))))
register("planner", "Fork", PlannerOp(_fork_cycles, _fork_resources))
for _op in ("MaxPool", "SumPool", "GlobalSumPool", "AddSat", "Concat", "LabelSelect"):
    register("planner", _op, PlannerOp(_elementwise_cycles, _elementwise))
