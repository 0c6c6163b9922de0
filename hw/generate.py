"""IR + folding -> a streaming accelerator in SystemVerilog, in one build folder.

    OUT/rtl/bnn_top.sv      the top level: one instance per IR layer, AXI-Stream between them
    OUT/rtl/lib/*.sv        the library modules it uses (copied from hw/rtl, so OUT is self-contained)
    OUT/rtl/mem/*.mem       weight / threshold / direction memories ($readmemh)
    OUT/rtl/filelist.f      the sources in compile order
    OUT/design.json         ports, streams, FIFOs and the planner's cycles: what testbenches and reports read

Between layers the generator inserts what the streams need: width converters where the
producer's and the consumer's elements per beat differ (through their gcd), a fork where a
graph output is also read inside the graph, and FIFOs on the branches of every Fork, sized
so that the join (AddSat or Concat) never deadlocks and rarely throttles (`branch_fifo_depths`).
"""
from __future__ import annotations

import json
import math
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from build_flow.ir import Graph, Layer
from build_flow.ops import implementation
from model.errors import FlowError

from .rtl_ops import ident as _ident  # (importing rtl_ops registers the RTL implementation of every IR op)
from .planner import (Folding, fifo_in_bram, apply_folding, estimate_resources, pipeline_report, predict_cycles,
                      stream_elems)
from .stream import elem_width, is_signed

RTL_DIR = Path(__file__).parent / "rtl"
# every submodule a module instantiates, nested ones included
RTL_DEPENDS = {"bnn_mvtu": ("bnn_thres_step", "bnn_rom"), "bnn_threshold": ("bnn_thres_step",),
               "bnn_pool": ("bnn_rmw", "bnn_out_fifo"), "bnn_global_sumpool": ("bnn_rmw", "bnn_out_fifo"),
               "bnn_rmw": ("bnn_out_fifo",), "bnn_swg": ("bnn_out_fifo",)}
TOP = "bnn_top"
OUT_PORT_FIFO_DEPTH = 2   # beats of the FIFO in front of every output port (bnn_fifo, in flip-flops)
# beats of the FIFO behind every join (AddSat, Concat): the flagship's critical path on the ECP5 was a
# valid/ready chain from a fork FIFO's count through two forks and a join into a FIFO's read enable
JOIN_FIFO_DEPTH = 2
# beats every branch FIFO gets beyond its computed need: the need bounds deadlock, not throttling.
# When every layer runs at the frame interval (a balanced plan), small branch FIFOs throttle the
# join: the flagship at 28,672 planned cycles measured +5.2 % with 8 beats, +3.9 % with 32, +2.1 %
# with 64 (a few hundred LUTRAM bits per branch).
FIFO_SLACK = 64
FIFO_MARGIN = 1.1  # times the computed need


class GenerateError(FlowError):
    """An IR the RTL backend cannot build (names the layer and why)."""


@dataclass
class Stream:
    """One AXI-Stream bus of the top level."""
    name: str
    ew: int
    elems: int
    signed: bool
    bipolar: bool
    dtype: str
    shape: tuple

    @property
    def width(self) -> int:
        return self.ew * self.elems

    @property
    def beats(self) -> int:
        return max(1, int(np.prod(self.shape)) // self.elems) if self.shape else 1


@dataclass
class _Top:
    wires: list[str] = field(default_factory=list)
    instances: list[str] = field(default_factory=list)
    modules: set = field(default_factory=set)
    fifos: list[dict] = field(default_factory=list)
    dwcs: list[dict] = field(default_factory=list)
    count: int = 0


def _param_text(params: dict) -> str:
    def value(v):
        return f'"{v}"' if isinstance(v, str) else str(int(v))
    return ", ".join(f".{k}({value(v)})" for k, v in params.items())


# ---------------------------------------------------------------- FIFO sizing

def _branch_absorb(graph: Graph, start: str, elems: dict) -> float:
    """Along one branch from tensor `start` to its join: total absorption in elements of `start`."""
    total, tensor = 0.0, start
    size0 = int(np.prod(graph.tensors[start].shape))
    while True:
        readers = graph.consumers(tensor)
        if len(readers) != 1:
            return total
        layer = readers[0]
        idx = layer.inputs.index(tensor)
        scale = size0 / max(1, int(np.prod(graph.tensors[tensor].shape)))
        total += implementation("rtl", layer.op).absorb(graph, layer, idx, elems) * scale
        if layer.op == "Fork":
            # a nested fork: its branches run side by side; the larger one bounds this branch
            return total + max(_branch_absorb(graph, out, elems) * scale for out in layer.outputs)
        if len(layer.inputs) > 1:
            return total
        tensor = layer.outputs[0]


def branch_fifo_depths(graph: Graph, fork: Layer, elems: dict) -> list[int]:
    """FIFO depth (beats) for each output of `fork`: what the other branches can swallow before
    the join pairs their data with this branch's, plus slack."""
    absorb = [_branch_absorb(graph, out, elems) for out in fork.outputs]
    e = elems[fork.inputs[0]]
    depths = []
    for i in range(len(fork.outputs)):
        others = max(a for j, a in enumerate(absorb) if j != i)
        depths.append(int(math.ceil(others * FIFO_MARGIN / e)) + FIFO_SLACK)
    return depths


# ---------------------------------------------------------------- generation

def generate(graph: Graph, folding: Folding, out_dir: str | Path) -> dict:
    """Write the build folder (atomically: a temp folder renamed into OUT/rtl); returns design.json's content."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    graph = apply_folding(graph, folding)
    tmp = Path(tempfile.mkdtemp(prefix=".rtl.", dir=out_dir))
    try:
        design = _write_rtl(graph, folding, tmp)
        final = out_dir / "rtl"
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    # paths inside the design point at the final folder
    text = json.dumps(design, indent=1).replace(str(tmp), str(final))
    (out_dir / "design.json").write_text(text)
    for f in (final / "bnn_top.sv", final / "filelist.f"):
        f.write_text(f.read_text().replace(str(tmp), str(final)))
    return json.loads(text)


def _stream_of(graph: Graph, tensor: str, elems: int) -> Stream:
    t = graph.tensors[tensor]
    return Stream(_ident(tensor), elem_width(t.dtype), elems, is_signed(t.dtype), t.dtype == "BIPOLAR", t.dtype,
                  tuple(t.shape))


def _write_rtl(graph: Graph, folding: Folding, rtl: Path) -> dict:
    mem = rtl / "mem"
    mem.mkdir(parents=True)
    elems = stream_elems(graph, folding)
    top = _Top()
    streams: dict[str, Stream] = {}

    def declare(name: str, width: int) -> str:
        top.wires.append(f"    logic [{width - 1}:0] {name}_tdata;\n    logic {name}_tvalid;\n    logic {name}_tready;")
        return name

    def connect(prefix: str, wire: str) -> str:
        return f".{prefix}_tdata({wire}_tdata), .{prefix}_tvalid({wire}_tvalid), .{prefix}_tready({wire}_tready)"

    def instance(module: str, name: str, params: dict, ports: str) -> None:
        top.modules.add(module)
        top.instances.append(f"    {module} #({_param_text(params)}) {name} (\n        .clk(clk), .rst(rst),\n"
                             f"        {ports});")

    def fifo(wire: str, s: Stream, elems: int, depth: int, hint: str) -> str:
        width = elems * s.ew
        top.count += 1
        out = declare(f"{hint}_fifo{top.count}", width)
        instance("bnn_fifo", f"u_{out}", {"W": width, "DEPTH": depth, "OUT_REG": int(fifo_in_bram(depth, width))},
                 f"{connect('s_axis', wire)},\n        {connect('m_axis', out)}")
        top.fifos.append({"name": out, "stream": s.name, "depth": depth, "width": width, "bits": depth * width})
        return out

    def adapt(wire: str, s: Stream, want: int, fifo_depth: int, hint: str, after_depth: int = 0) -> str:
        """`wire` carrying `s` (s.elems per beat) as a bus of `want` elements; a FIFO of `fifo_depth`
        beats (of the producer's width, in which the depth is computed) comes first, one of
        `after_depth` beats of the consumer's width last."""
        if fifo_depth:
            wire = fifo(wire, s, s.elems, fifo_depth, hint)
        steps = []
        g = math.gcd(s.elems, want)
        for a, b in ((s.elems, g), (g, want)):
            if a != b:
                steps.append((a, b))
        for a, b in steps:
            top.count += 1
            out = declare(f"{hint}_dwc{top.count}", b * s.ew)
            instance("bnn_dwc", f"u_{out}", {"EW": s.ew, "IN_E": a, "OUT_E": b},
                     f"{connect('s_axis', wire)},\n        {connect('m_axis', out)}")
            top.dwcs.append({"name": out, "stream": s.name, "in_e": a, "out_e": b})
            wire = out
        if after_depth:
            wire = fifo(wire, s, want, after_depth, hint)
        return wire

    # the sinks of every tensor: layer inputs and top-level output ports
    sinks: dict[str, list] = {}
    for layer in graph.layers:
        for i, name in enumerate(layer.inputs):
            sinks.setdefault(name, []).append((layer, i))
    for role, name in graph.outputs.items():
        sinks.setdefault(name, []).append(role)

    fifo_depth: dict[tuple[str, int], int] = {}
    for layer in graph.layers:
        if layer.op == "Fork":
            for out, depth in zip(layer.outputs, branch_fifo_depths(graph, layer, elems)):
                reader = graph.consumers(out)[0]
                fifo_depth[(reader.name, reader.inputs.index(out))] = depth

    # A matrix-vector unit with several neuron folds reads a whole input vector in its first fold
    # and re-reads its buffer in the others: a FIFO of one vector in front lets the producer
    # deliver the next vector meanwhile, so that fold 0 of a layer is not paced by a slow
    # producer (without it a chain of fully connected layers runs at half rate: measured on CNV).
    # It sits after the width converter, at SIMD width: in front of one, fold 0 would wait for
    # the converter to pack each beat (measured: +11 % cycles with a window at SIMD/9 per beat).
    vector_fifo: dict[tuple[str, int], int] = {}
    for layer in graph.layers:
        if layer.op == "MatrixVector":
            mh, mw = graph.arrays[layer.attrs["weights"]].shape
            if mh // layer.pe > 1:
                vector_fifo[(layer.name, 0)] = max(4, mw // layer.simd + 2)

    # where each tensor's bus comes from (after an output fork, one wire per sink)
    source_wire: dict[tuple, str] = {}

    def produce(tensor: str, wire: str) -> None:
        s = streams[tensor]
        targets = sinks.get(tensor, [])
        if len(targets) == 1:
            source_wire[_key(targets[0])] = wire
            return
        outs = [declare(f"{s.name}_copy{k}", s.width) for k in range(len(targets))]
        instance("bnn_fork", f"u_{s.name}_outfork", {"W": s.width, "N": len(outs)},
                 f"{connect('s_axis', wire)},\n"
                 f"        .m_axis_tdata({{{', '.join(o + '_tdata' for o in reversed(outs))}}}),\n"
                 f"        .m_axis_tvalid({{{', '.join(o + '_tvalid' for o in reversed(outs))}}}),\n"
                 f"        .m_axis_tready({{{', '.join(o + '_tready' for o in reversed(outs))}}})")
        for target, o in zip(targets, outs):
            source_wire[_key(target)] = o

    def _key(target) -> tuple:
        return ("port", target) if isinstance(target, str) else (target[0].name, target[1])

    def take(layer: Layer, i: int, want: int) -> str:
        tensor = layer.inputs[i]
        wire = source_wire[(layer.name, i)]
        return adapt(wire, streams[tensor], want, fifo_depth.get((layer.name, i), 0), f"{_ident(layer.name)}_in{i}",
                     vector_fifo.get((layer.name, i), 0))

    streams[graph.input] = _stream_of(graph, graph.input, elems[graph.input])
    in_stream = streams[graph.input]
    produce(graph.input, "s_axis")

    for layer in graph.layers:
        for out in layer.outputs:
            streams[out] = _stream_of(graph, out, elems[out])
        ins = [streams[n] for n in layer.inputs]
        outs = [declare(f"{streams[o].name}", streams[o].width) for o in layer.outputs]
        name = f"u_{_ident(layer.name)}"
        try:
            module, params, want = implementation("rtl", layer.op).module(graph, layer, ins, streams[layer.outputs[0]],
                                                                           mem, folding)
        except ValueError as exc:
            raise GenerateError(f"layer '{layer.name}' ({layer.op}): {exc}") from None
        if layer.op == "Fork":
            src = take(layer, 0, want[0])
            instance(module, name, params,
                     f"{connect('s_axis', src)},\n"
                     f"        .m_axis_tdata({{{', '.join(o + '_tdata' for o in reversed(outs))}}}),\n"
                     f"        .m_axis_tvalid({{{', '.join(o + '_tvalid' for o in reversed(outs))}}}),\n"
                     f"        .m_axis_tready({{{', '.join(o + '_tready' for o in reversed(outs))}}})")
        elif len(layer.inputs) == 2:
            a, b = take(layer, 0, want[0]), take(layer, 1, want[1])
            instance(module, name, params,
                     f"{connect('s0_axis', a)},\n        {connect('s1_axis', b)},\n        {connect('m_axis', outs[0])}")
            # a join's ready is combinational in both its inputs' state and its reader's ready: a
            # two-beat FIFO behind it (its ready a register) ends the valid/ready chain there
            s_out = streams[layer.outputs[0]]
            outs[0] = fifo(outs[0], s_out, s_out.elems, JOIN_FIFO_DEPTH, f"{_ident(layer.name)}_out")
        else:
            src = take(layer, 0, want[0])
            instance(module, name, params, f"{connect('s_axis', src)},\n        {connect('m_axis', outs[0])}")
        for o, wire in zip(layer.outputs, outs):
            produce(o, wire)

    ports = {"input": {"port": "s_axis", **_stream_doc(in_stream)}, "outputs": {}}
    port_text = [f"    input  logic [{in_stream.width - 1}:0] s_axis_tdata,",
                 "    input  logic s_axis_tvalid,", "    output logic s_axis_tready"]
    assigns = []
    for role, tensor in graph.outputs.items():
        s = streams[tensor]
        port = f"m_axis_{role}"
        ports["outputs"][role] = {"port": port, **_stream_doc(s)}
        port_text[-1] += ","
        port_text += [f"    output logic [{s.width - 1}:0] {port}_tdata,", f"    output logic {port}_tvalid,",
                      f"    input  logic {port}_tready"]
        # a two-beat FIFO at every output port: its ready is a register, so a port's ready (placed
        # wherever the pins are) starts no path into the network (CNV_1W1A's critical path was
        # label_select's counter -> its ready with the port's -> the output fork -> MatMul_2, 10.76 ns)
        wire = fifo(source_wire[("port", role)], s, s.elems, OUT_PORT_FIFO_DEPTH, f"{role}_out")
        assigns.append(f"    assign {port}_tdata = {wire}_tdata;\n    assign {port}_tvalid = {wire}_tvalid;\n"
                       f"    assign {wire}_tready = {port}_tready;")

    lib = rtl / "lib"
    lib.mkdir()
    sources = []
    for module in sorted(top.modules | {d for m in top.modules for d in RTL_DEPENDS.get(m, ())}):
        shutil.copy(RTL_DIR / f"{module}.sv", lib / f"{module}.sv")
        sources.append(str((lib / f"{module}.sv").resolve()))
    body = "\n".join(top.wires) + "\n\n" + "\n\n".join(top.instances) + "\n\n" + "\n".join(assigns)
    source = graph.meta.get("source", {}).get("name", "model")
    (rtl / "bnn_top.sv").write_text(
        f"// Generated by hw/generate.py from the IR of '{source}' with folding '{folding.source}'. Do not edit:\n"
        f"// regenerate (make rtl) or edit the folding file.\n"
        f"module {TOP} (\n    input  logic clk,\n    input  logic rst,\n" + "\n".join(port_text) + "\n);\n\n"
        + body + "\n\nendmodule\n")
    sources.append(str((rtl / "bnn_top.sv").resolve()))
    (rtl / "filelist.f").write_text("\n".join(sources) + "\n")
    cycles = predict_cycles(graph, folding)
    return {
        "top": TOP, "sources": sources, "clock_mhz": folding.clock_mhz, "family": folding.family,
        "folding": folding.layers,
        "ports": ports, "fifos": top.fifos, "dwcs": top.dwcs,
        "layers": [{"name": l.name, "op": l.op, "instance": f"u_{_ident(l.name)}", "pe": l.pe, "simd": l.simd}
                   for l in graph.layers],
        "predicted": {"cycles": cycles, "frame_cycles": max(cycles.values()),
                      "bottleneck": max(cycles, key=cycles.get),
                      "resources": estimate_resources(graph, folding),
                      "pipeline": pipeline_report(graph, folding)},
    }


def _stream_doc(s: Stream) -> dict:
    return {"tensor": s.name, "dtype": s.dtype, "shape": list(s.shape), "elems": s.elems, "ew": s.ew,
            "width": s.width, "signed": s.signed, "bipolar": s.bipolar, "beats_per_frame": s.beats}
