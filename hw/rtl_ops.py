"""The RTL backend's implementation of each IR op, registered with `build_flow.ops`: the module of
hw/rtl a layer becomes, its parameters (memory files written on the way) and the elements per beat
it takes on each input, and how much of an input the module holds before the matching output
leaves (hw/generate.py sizes the FIFOs of fork branches by it).

`module(graph, layer, ins, out, mem, folding) -> (module, parameters, elements wanted per input)`
raises ValueError naming what the RTL cannot build; hw/generate.py adds the layer's name.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from build_flow.ir import Graph, Layer, dtype_range
from build_flow.ops import register

from .mvtu_mem import activation_stages, logic_rom_bank, mvtu_params, threshold_params, weight_layout, weight_rom
from .planner import Folding, mvtu_extra_latency, mvtu_pipeline
from .swg_model import swg_full_rate_extra_rows, swg_max_lead_beats, swg_out_fifo, swg_read_regs

if TYPE_CHECKING:
    from .generate import Stream

MVTU_MAX_EXTRA = 8  # bnn_mvtu's pipeline registers (MEM_REG + TREE_REGS) the FIFO sizing allows for


@dataclass(frozen=True)
class RtlOp:
    """What the RTL backend knows of one IR op."""
    module: Callable[["Graph", "Layer", list, "Stream", Path, Folding], tuple[str, dict, list[int]]]
    absorb: Callable[["Graph", "Layer", int, dict], float]


def ident(name: str) -> str:
    """An IR name as a Verilog identifier (also the stem of a layer's memory files)."""
    return re.sub(r"\W", "_", name)


def _default_absorb(graph: Graph, layer: Layer, idx: int, elems: dict) -> float:
    """An input, an output and a skid register of one beat each, and a little slack."""
    return 4 * elems[layer.outputs[0]]


def rtl_op(*ops: str, absorb: Callable = _default_absorb) -> Callable:
    """Register the decorated module builder (with `absorb`) as the RTL implementation of `ops`."""
    def deco(fn):
        for op in ops:
            register("rtl", op, RtlOp(fn, absorb))
        return fn
    return deco


# ---------------------------------------------------------------- absorption (elements of input idx)

def _mv_absorb(graph: Graph, layer: Layer, idx: int, elems: dict) -> float:
    # the pipeline holds one step per register: 4 + MVTU_MAX_EXTRA steps of SIMD elements, and
    # the activation's stages
    thresholds = layer.attrs.get("thresholds")
    act = activation_stages(graph.arrays[thresholds].shape[1]) if thresholds else 0
    return 2 * graph.arrays[layer.attrs["weights"]].shape[1] + (4 + MVTU_MAX_EXTRA + act) * layer.simd


def _swg_absorb(graph: Graph, layer: Layer, idx: int, elems: dict) -> float:
    h, w, c = graph.tensors[layer.inputs[idx]].shape
    a, e = layer.attrs, elems[layer.outputs[0]]
    extra = swg_full_rate_extra_rows(h, a["kernel"], a["stride"], a["pad"])
    return (swg_max_lead_beats(h, w, c, e, a["kernel"], a["stride"], a["pad"], extra)
            + swg_out_fifo(swg_read_regs(w, c, e))) * e


def _threshold_absorb(graph: Graph, layer: Layer, idx: int, elems: dict) -> float:
    # input register, the activation's stages, output + skid registers
    return (4 + activation_stages(graph.arrays[layer.attrs["thresholds"]].shape[1])) * elems[layer.outputs[0]]


def _pool_absorb(graph: Graph, layer: Layer, idx: int, elems: dict) -> float:
    t = graph.tensors[layer.inputs[idx]]
    return layer.attrs["kernel"] * t.shape[1] * t.shape[2] + 4 * elems[layer.outputs[0]]


def _global_pool_absorb(graph: Graph, layer: Layer, idx: int, elems: dict) -> float:
    return int(np.prod(graph.tensors[layer.inputs[idx]].shape))


def _concat_absorb(graph: Graph, layer: Layer, idx: int, elems: dict) -> float:
    # input 0 flows while input 1 waits for its half of the pixel
    return graph.tensors[layer.inputs[idx]].shape[-1] if idx == 0 else 0


# ---------------------------------------------------------------- modules

@rtl_op("MatrixVector", absorb=_mv_absorb)
def _matrix_vector(graph, layer, ins, out, mem, folding):
    a, x = layer.attrs, ins[0]
    w = graph.arrays[a["weights"]]
    rom = weight_rom(*w.shape, layer.pe, layer.simd)
    wbank, wslice = weight_layout(*rom)
    params = mvtu_params(mem, ident(layer.name), w, x.dtype, out.dtype, layer.pe,
                         layer.simd, graph.arrays[a["thresholds"]] if a.get("thresholds") else None,
                         graph.arrays[a["direction"]] if a.get("direction") else None, a.get("y_min"),
                         wbank=wbank, wslice=wslice, logic_bank=logic_rom_bank(*rom, folding.family))
    mem_reg, levels = mvtu_pipeline(layer.simd, x.ew, folding.clock_mhz, rom)
    if mvtu_extra_latency(layer.simd, mem_reg, levels) > MVTU_MAX_EXTRA:
        raise ValueError(f"SIMD {layer.simd}: the matrix unit's pipeline exceeds {MVTU_MAX_EXTRA} registers")
    params.update({"MEM_REG": mem_reg, "TREE_LEVELS": levels})
    return "bnn_mvtu", params, [layer.simd]


@rtl_op("SlidingWindow", absorb=_swg_absorb)
def _sliding_window(graph, layer, ins, out, mem, folding):
    a, x = layer.attrs, ins[0]
    h, w, c = x.shape
    pad_value = a["pad_value"]
    if a["pad"] == 0:
        pattern = 0  # nothing is padded
    elif x.bipolar:
        if pad_value not in (-1, 1):
            raise ValueError(f"pad value {pad_value} is not bipolar")
        pattern = int(pad_value > 0)
    else:
        pattern = pad_value & ((1 << x.ew) - 1)
    e = out.elems
    extra = swg_full_rate_extra_rows(h, a["kernel"], a["stride"], a["pad"])  # 0 for pad-1 and 1x1 convs
    return "bnn_swg", {"H": h, "W": w, "C": c, "E": e, "EW": x.ew, "K": a["kernel"], "S": a["stride"],
                       "PAD": a["pad"], "PAD_VALUE": pattern, "EXTRA_ROWS": extra,
                       "READ_REGS": swg_read_regs(w, c, e)}, [e]


@rtl_op("Threshold", absorb=_threshold_absorb)
def _threshold(graph, layer, ins, out, mem, folding):
    a, x = layer.attrs, ins[0]
    params = threshold_params(mem, ident(layer.name), x.shape[-1], layer.pe, x.dtype, out.dtype,
                              graph.arrays[a["thresholds"]], graph.arrays[a["direction"]], a.get("y_min"))
    return "bnn_threshold", params, [layer.pe]


@rtl_op("MaxPool", "SumPool", absorb=_pool_absorb)
def _pool(graph, layer, ins, out, mem, folding):
    a, x = layer.attrs, ins[0]
    if a["kernel"] != a["stride"]:
        raise ValueError(f"kernel {a['kernel']} != stride {a['stride']}: the RTL pools non-overlapping windows only")
    h, w, c = x.shape
    mode = 2 if layer.op == "SumPool" else (1 if x.bipolar else 0)
    return "bnn_pool", {"H": h, "W": w, "C": c, "E": layer.pe, "IN_EW": x.ew, "OUT_EW": out.ew, "MODE": mode,
                        "K": a["kernel"], "IN_SIGNED": int(x.signed)}, [layer.pe]


@rtl_op("GlobalSumPool", absorb=_global_pool_absorb)
def _global_sum_pool(graph, layer, ins, out, mem, folding):
    x = ins[0]
    h, w, c = x.shape
    return "bnn_global_sumpool", {"PIXELS": h * w, "C": c, "E": layer.pe, "IN_EW": x.ew, "OUT_EW": out.ew,
                                  "IN_SIGNED": int(x.signed), "BIPOLAR": int(x.bipolar)}, [layer.pe]


@rtl_op("Fork")
def _fork(graph, layer, ins, out, mem, folding):
    return "bnn_fork", {"W": ins[0].width, "N": len(layer.outputs)}, [ins[0].elems]


@rtl_op("AddSat")
def _add_sat(graph, layer, ins, out, mem, folding):
    x = ins[0]
    if ins[0].dtype != ins[1].dtype:
        raise ValueError(f"inputs of different datatypes ({ins[0].dtype}, {ins[1].dtype})")
    lo, hi = dtype_range(out.dtype)
    return "bnn_addsat", {"E": layer.pe, "IN_EW": x.ew, "IN_SIGNED": int(x.signed), "OUT_EW": out.ew,
                          "OUT_MIN": lo, "OUT_MAX": hi}, [layer.pe, layer.pe]


@rtl_op("Concat", absorb=_concat_absorb)
def _concat(graph, layer, ins, out, mem, folding):
    if len(ins) != 2 or ins[0].ew != ins[1].ew:
        raise ValueError("the RTL concatenates two inputs of one element width")
    return "bnn_concat", {"E": layer.pe, "EW": ins[0].ew, "C0": ins[0].shape[-1], "C1": ins[1].shape[-1]}, \
        [layer.pe, layer.pe]


@rtl_op("LabelSelect")
def _label_select(graph, layer, ins, out, mem, folding):
    x = ins[0]
    return "bnn_label_select", {"C": x.shape[-1], "E": layer.pe, "IN_EW": x.ew, "IN_SIGNED": int(x.signed),
                                "LARGEST": int(layer.attrs.get("largest", True)), "OUT_W": out.ew}, [layer.pe]
