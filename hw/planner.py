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
budget); `predict_cycles` gives each layer's cycles per frame (the bottleneck sets the
frame interval); `estimate_resources` a first-order LUT/FF/BRAM figure per layer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from build_flow.ir import Graph, Layer, dtype_range
from model.atomic import atomic_write
from model.errors import ConfigError

from .stream import elem_width

# ops whose folding the file names; SlidingWindow and Fork follow their neighbours
ELEMENTWISE_HEADROOM = 4
# The planner's cap on input bits one PE sums per cycle: bnn_mvtu adds SIMD terms in one
# registered adder tree, and ~256 one-bit terms (8 levels) is where that tree stays well inside
# a 100 MHz cycle on 7-series parts (FINN's own foldings stay at or below SIMD 64). A folding file
# may go beyond it by hand; timing is then the user's to check (Yosys does not time paths).
MAX_SIMD_BITS = 256
FOLDED_OPS = ("MatrixVector", "Threshold", "MaxPool", "SumPool", "GlobalSumPool", "AddSat", "Concat", "LabelSelect")


@dataclass
class Folding:
    layers: dict[str, dict[str, int]]          # layer name -> {"pe": …, "simd": …}
    clock_mhz: float = 100.0
    target_fps: float | None = None
    source: str = "planner"
    notes: list[str] = field(default_factory=list)

    def pe(self, name: str) -> int:
        return self.layers[name]["pe"]

    def simd(self, name: str) -> int:
        return self.layers[name].get("simd", 1)


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _sliding_window_of(graph: Graph, layer: Layer) -> Layer | None:
    p = graph.producer(layer.inputs[0])
    return p if p is not None and p.op == "SlidingWindow" else None


def _mv_shape(graph: Graph, layer: Layer) -> tuple[int, int, int, int]:
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


def _channels(graph: Graph, layer: Layer) -> int:
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

def stream_elems(graph: Graph, folding: Folding) -> dict[str, int]:
    """Elements per beat of every IR tensor's stream (as its producer emits it)."""
    elems = {graph.input: graph.tensors[graph.input].shape[-1]}  # one pixel per beat
    for layer in graph.layers:
        if layer.op == "MatrixVector":
            e = folding.pe(layer.name)
        elif layer.op == "SlidingWindow":
            consumer = graph.consumers(layer.outputs[0])[0]
            e = window_elems(folding.simd(consumer.name), graph.tensors[layer.inputs[0]].shape[-1])
        elif layer.op == "Fork":
            e = elems[layer.inputs[0]]
        else:
            e = folding.pe(layer.name)
        for out in layer.outputs:
            elems[out] = e
    return elems


def predict_cycles(graph: Graph, folding: Folding) -> dict[str, int]:
    """Cycles per frame of every layer at full rate; the largest is the frame interval."""
    elems = stream_elems(graph, folding)
    cycles = {}
    for layer in graph.layers:
        out = layer.outputs[0]
        if layer.op == "MatrixVector":
            mh, mw, vectors, _ = _mv_shape(graph, layer)
            c = vectors * (mw // folding.simd(layer.name)) * (mh // folding.pe(layer.name))
        elif layer.op == "SlidingWindow":
            c = _window_cycles(graph, layer, elems[out])
        elif layer.op == "Fork":
            c = _elements(graph, layer.inputs[0]) // elems[layer.inputs[0]]
        else:  # one beat of E elements per cycle
            c = _streamed(graph, layer) // folding.pe(layer.name)
        cycles[layer.name] = int(c)
    return cycles


# ---------------------------------------------------------------- resources (first order)

def estimate_resources(graph: Graph, folding: Folding) -> dict[str, dict[str, float]]:
    """LUT / FF / BRAM36 per layer from simple per-bit costs: ~2 LUTs per XNOR-popcount
    bit-product (calibrated on Yosys for CNV_1W1A), twice the input width per integer
    product, threshold units as built (_threshold_unit: parallel comparators, or the binary
    search's comparators and level ROMs), deep memories in BRAM36 (_memory_luts_or_bram).
    A guide for planning; Yosys gives the real count."""
    elems = stream_elems(graph, folding)
    res = {}
    for layer in graph.layers:
        lut = ff = bram = 0.0
        if layer.op == "MatrixVector":
            lut, ff, bram = _mv_resources(graph, layer, folding.pe(layer.name), folding.simd(layer.name))
        elif layer.op == "SlidingWindow":
            h, w, c = graph.tensors[layer.inputs[0]].shape
            k, s = layer.attrs["kernel"], layer.attrs["stride"]
            ew = elem_width(graph.tensors[layer.inputs[0]].dtype)
            lut += 60 + elems[layer.outputs[0]] * ew
            lut += _memory_luts_or_bram((k + s) * w * c * ew, elems[layer.outputs[0]] * ew, res_bram := [0.0])
            bram += res_bram[0]
            ff += elems[layer.outputs[0]] * ew * 2 + 64
        elif layer.op == "Threshold":
            n_t = graph.arrays[layer.attrs["thresholds"]].shape[1]
            in_w = elem_width(graph.tensors[layer.inputs[0]].dtype)
            c, pe = graph.tensors[layer.inputs[0]].shape[-1], folding.pe(layer.name)
            t_lut, t_bram = _threshold_unit(n_t, in_w, pe, c // pe)  # bnn_threshold: the same circuit
            lut, bram = lut + t_lut + 20, bram + t_bram
        else:
            e = elems[layer.outputs[0]]
            ew = max(elem_width(graph.tensors[n].dtype) for n in (*layer.inputs, *layer.outputs))
            lut += 10 + e * ew * (2 if layer.op in ("AddSat", "SumPool", "GlobalSumPool", "MaxPool") else 1)
            ff += e * ew * 2
            if layer.op in ("SumPool", "MaxPool"):
                w, c = graph.tensors[layer.outputs[0]].shape[1:]
                lut += _memory_luts_or_bram(w * c * ew, e * ew, res_bram := [0.0])
                bram += res_bram[0]
        res[layer.name] = {"lut": round(lut), "ff": round(ff), "bram36": round(bram, 1)}
    return res


def _mv_resources(graph: Graph, layer: Layer, pe: int, simd: int) -> tuple[float, float, float]:
    """(LUT, FF, BRAM36) of one bnn_mvtu at this folding (what the planner minimizes)."""
    mh, mw, _, _ = _mv_shape(graph, layer)
    in_dt = graph.tensors[layer.inputs[0]].dtype
    lo, hi = dtype_range(in_dt)
    acc_w = (mw * max(abs(lo), abs(hi))).bit_length() + 1
    per_product = 2.0 if in_dt == "BIPOLAR" else 2.0 * elem_width(in_dt)  # Yosys: ~2 LUT per XNOR-popcount bit
    lut = pe * (simd * per_product + acc_w)
    ff = pe * acc_w * 2 + simd * elem_width(in_dt) * 2
    bram = [0.0]
    lut += _memory_luts_or_bram(mh * mw, pe * simd, bram)
    total_bram = bram[0]
    lut += _memory_luts_or_bram(mw * elem_width(in_dt), simd * elem_width(in_dt), bram)
    total_bram += bram[0]
    if layer.attrs.get("thresholds") is not None:
        n_t = graph.arrays[layer.attrs["thresholds"]].shape[1]
        t_lut, t_bram = _threshold_unit(n_t, acc_w, pe, mh // pe)
        lut, total_bram = lut + t_lut, total_bram + t_bram
    return lut, ff, total_bram


def _threshold_unit(levels: int, t_w: int, pe: int, nf: int) -> tuple[float, float]:
    """(LUT, BRAM36) of bnn_mvtu's activation for PE channels, NF channel groups. Binary search:
    one comparator per level and per-level ROMs (level j: NF*2^(j-1) words of 2 thresholds);
    parallel: one comparator per threshold and a popcount. Calibrated on Yosys: PE 4, 63 levels,
    NF 1 gives 843 LUT measured, 816 here."""
    bram = [0.0]
    if levels >= 15 and (levels + 1) & levels == 0:
        s = levels.bit_length()
        lut = pe * s * t_w + _memory_luts_or_bram(nf * pe * t_w, pe * t_w, bram)
        total = bram[0]
        for j in range(1, s):
            lut += _memory_luts_or_bram(nf * (1 << (j - 1)) * pe * 2 * t_w, pe * 2 * t_w, bram)
            total += bram[0]
        return lut, total
    lut = pe * levels * t_w * 0.6 + _memory_luts_or_bram(nf * pe * levels * t_w, pe * levels * t_w, bram)
    return lut, bram[0]


_BRAM36_SHAPES = ((72, 512), (36, 1024), (18, 2048), (9, 4096), (4, 8192), (2, 16384), (1, 32768))


def _memory_luts_or_bram(bits: int, width: int, bram_out: list[float]) -> float:
    """A memory of `bits` in words of `width`: deep ones (≥ 128 words, > 16 kbit) in BRAM36
    (the best of its aspect ratios), shallow ones in LUTRAM (one LUT per bit of width per
    64 words), as bnn_mvtu's WEIGHT_BRAM rule does."""
    width = max(1, width)
    depth = max(1, -(-bits // width))
    if depth >= 128 and bits > 16 * 1024:
        bram_out[0] = min(-(-width // w) * -(-depth // d) for w, d in _BRAM36_SHAPES)
        return 0.0
    return width * -(-depth // 64)


def total_luts(graph: Graph, folding: Folding) -> int:
    return sum(r["lut"] for r in estimate_resources(graph, folding).values())


# ---------------------------------------------------------------- planning

def fold_for_cycles(graph: Graph, target: int) -> dict[str, dict[str, int]]:
    """The cheapest folding whose every layer takes at most `target` cycles per frame (or
    the most parallel one a layer allows, when it cannot)."""
    layers = {}
    for layer in graph.layers:
        if layer.op == "MatrixVector":
            layers[layer.name] = _fold_matrix_vector(graph, layer, target)
        elif layer.op in FOLDED_OPS:
            # element-wise layers are cheap and bursty (a pool emits on every K-th row, a
            # concat alternates its inputs): a quarter of the interval keeps them off the
            # critical path (measured: at the full interval they cost 6 % of a frame).
            c, n = _channels(graph, layer), _streamed(graph, layer)
            ok = [e for e in _divisors(c) if n // e <= max(1, target // ELEMENTWISE_HEADROOM)]
            layers[layer.name] = {"pe": ok[0] if ok else c}
    return layers


def _fold_matrix_vector(graph: Graph, layer: Layer, target: int) -> dict[str, int]:
    """The PE/SIMD of least estimated LUTs taking at most `target` cycles, its window (if any)
    keeping up too; SIMD capped at MAX_SIMD_BITS input bits per PE (else the most parallel)."""
    mh, mw, vectors, channels = _mv_shape(graph, layer)
    window = _sliding_window_of(graph, layer)
    ew = elem_width(graph.tensors[layer.inputs[0]].dtype)
    simds = [s for s in _divisors(mw) if s == 1 or s * ew <= MAX_SIMD_BITS]
    simds = [s for s in simds if window is None
             or _window_cycles(graph, window, window_elems(s, channels)) <= target] or simds
    options = [(_mv_resources(graph, layer, pe, simd)[0], pe * simd, -simd, pe, simd)
               for simd in simds for pe in _divisors(mh) if vectors * (mw // simd) * (mh // pe) <= target]
    if not options:  # out of reach: the most parallel folding allowed
        return {"pe": mh, "simd": max(simds)}
    *_, pe, simd = min(options)
    return {"pe": pe, "simd": simd}


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
           "layers": folding.layers}
    if folding.notes:
        doc["notes"] = folding.notes
    text = "# bnn-flow folding config: PE/SIMD per layer (hw/planner.py); edit by hand, then FOLDING=<this file>\n"
    text += yaml.safe_dump(doc, sort_keys=False, default_flow_style=None)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))
    return Path(path)


def load_folding(path: str | Path, graph: Graph) -> Folding:
    """Read and check a folding file against `graph`; errors name the file, layer and field."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: folding file not found")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("layers"), dict):
        raise ConfigError(f"{path}: expected a mapping with a 'layers' mapping")
    clock = doc.get("clock_mhz", 100.0)
    if not isinstance(clock, (int, float)) or isinstance(clock, bool) or clock <= 0:
        raise ConfigError(f"{path}: clock_mhz = {clock!r} must be a positive number")
    folding = Folding({}, float(clock), doc.get("target_fps"), source=str(path))
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
            mh, mw, _, _ = _mv_shape(graph, layer)
            if mh % values["pe"]:
                raise ConfigError(f"{path}: layer '{name}' (MatrixVector): pe = {values['pe']} does not divide "
                                  f"its {mh} output channels (MH)")
            if mw % values["simd"]:
                raise ConfigError(f"{path}: layer '{name}' (MatrixVector): simd = {values['simd']} does not divide "
                                  f"its MW ({mw})")
        else:
            c = _channels(graph, layer)
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
