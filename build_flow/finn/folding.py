"""The project's folding (hw/planner.py, one source of truth) as FINN's folding_config.json.

Two halves, one per environment:

* :func:`ordered_plan` (project side) turns the IR and a planner `Folding` into a plan in dataflow
  order: every MatrixVector's PE/SIMD, and every element-wise layer's PE grouped by FINN kind.
* :func:`finn_folding_config` (FINN side, plain data in and out) maps that plan onto the FINN
  dataflow partition's nodes, given as ``{"name", "op_type", "attrs", "cycles_at_1"}`` dicts in
  graph order:

  - MVAU nodes take the IR MatrixVector layers' PE/SIMD in order (both lists are in dataflow order;
    their counts and matrix shapes must agree);
  - a ConvolutionInputGenerator (and the FMPadding in front of it) takes gcd(SIMD, channels) of the
    MVAU it feeds, as the project's window does (FINN's InsertDWC packs its beats up to the SIMD), or
    the PE of the Pool it feeds;
  - an element-wise node (Thresholding, AddStreams, DuplicateStreams, pools, LabelSelect) takes the PE
    of the IR layer of the same kind in the same position when FINN has as many nodes of that kind as
    the IR has layers; otherwise (FINN split or merged them) the smallest PE
    that keeps it within a quarter of the planned frame interval, as the planner does for its own.

A folding that does not fit raises :class:`FoldingError` naming the node and the field.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

from build_flow.ops import register

# IR op -> FINN op kind (op_type without the _hls/_rtl suffix)
IR_TO_FINN = {
    "MatrixVector": "MVAU",
    "Threshold": "Thresholding",
    "AddSat": "AddStreams",
    "Fork": "DuplicateStreams",
    "MaxPool": "StreamingMaxPool",
    "SumPool": "Pool",
    "GlobalSumPool": "GlobalAccPool",
    "Concat": "StreamingConcat",
    "LabelSelect": "LabelSelect",
}
# the FINN backend's implementation of each IR op: the FINN op kind it becomes. A SlidingWindow
# becomes FMPadding (when padded) and a ConvolutionInputGenerator, folded after its consumer.
for _op, _kind in {**IR_TO_FINN, "SlidingWindow": "ConvolutionInputGenerator"}.items():
    register("finn", _op, _kind)
# FINN kind -> (folding attribute, attribute holding the count it must divide). StreamingConcat has no
# folding attribute at the pinned commit (one element per cycle), so it is not listed.
FINN_FOLD_ATTR = {
    "Thresholding": ("PE", "NumChannels"),
    "AddStreams": ("PE", "NumChannels"),
    "DuplicateStreams": ("PE", "NumChannels"),
    "StreamingMaxPool": ("PE", "NumChannels"),
    "Pool": ("PE", "Channels"),
    "GlobalAccPool": ("PE", "NumChannels"),
    "LabelSelect": ("PE", "Labels"),
    "ConvolutionInputGenerator": ("SIMD", "IFMChannels"),
    "FMPadding": ("SIMD", "NumChannels"),
}
# implementation styles for cppsim: every node as HLS, so every node runs as compiled C++
# (the XNOR MVAU, AddStreams, DuplicateStreams and LabelSelect are HLS-only in FINN main anyway)
IMPL_STYLE = "hls"
ELEMENTWISE_HEADROOM = 4


class FoldingError(ValueError):
    """A folding that does not fit the FINN graph (the message names the node and field)."""


def finn_kind(op_type: str) -> str:
    for suffix in ("_hls", "_rtl"):
        if op_type.endswith(suffix):
            return op_type[: -len(suffix)]
    return op_type


# ---------------------------------------------------------------- project side

def ordered_plan(graph, folding) -> dict:
    """The planner's folding in dataflow order (a JSON-able dict, read by the FINN-side build)."""
    from hw.planner import layer_channels, mv_shape, predict_cycles, stream_elems

    elems = stream_elems(graph, folding)
    cycles = predict_cycles(graph, folding)
    plan = {"clock_mhz": folding.clock_mhz, "target_fps": folding.target_fps,
            "interval_cycles": max(cycles.values()), "source": folding.source,
            "matrix_vector": [], "elementwise": {}}
    for layer in graph.layers:
        if layer.op == "MatrixVector":
            mh, mw, vectors, _ = mv_shape(graph, layer)
            plan["matrix_vector"].append({"ir": layer.name, "pe": folding.pe(layer.name),
                                          "simd": folding.simd(layer.name), "mh": mh, "mw": mw,
                                          "cycles": cycles[layer.name]})
        elif layer.op in IR_TO_FINN:
            pe = elems[layer.inputs[0]] if layer.op == "Fork" else folding.pe(layer.name)
            plan["elementwise"].setdefault(IR_TO_FINN[layer.op], []).append(
                {"ir": layer.name, "pe": pe, "channels": layer_channels(graph, layer), "cycles": cycles[layer.name]})
    return plan


# ---------------------------------------------------------------- FINN side (plain data)

def _divides(node: dict, field: str, value: int, count_attr: str) -> None:
    counts = node["attrs"].get(count_attr)
    counts = counts if isinstance(counts, (list, tuple)) else [counts]
    for c in counts:
        if c is not None and int(c) % value:
            raise FoldingError(f"FINN node {node['name']} ({node['op_type']}): {field} = {value} does not divide "
                               f"{count_attr} = {c}")


def finn_folding_config(plan: dict, nodes: list[dict]) -> dict:
    """FINN folding_config.json contents for the partition `nodes` (graph order)."""
    mvaus = [n for n in nodes if finn_kind(n["op_type"]) == "MVAU"]
    mvs = plan["matrix_vector"]
    if len(mvaus) != len(mvs):
        raise FoldingError(f"the FINN graph has {len(mvaus)} MVAU nodes ({', '.join(n['name'] for n in mvaus)}) "
                           f"but the folding has {len(mvs)} MatrixVector layers ({', '.join(m['ir'] for m in mvs)})")
    config: dict = {"Defaults": {}}
    for node, mv in zip(mvaus, mvs):
        mh, mw = node["attrs"].get("MH"), node["attrs"].get("MW")
        if (mh, mw) != (mv["mh"], mv["mw"]):
            raise FoldingError(f"FINN node {node['name']} (MVAU, MH={mh}, MW={mw}) does not match IR layer "
                               f"{mv['ir']} (MH={mv['mh']}, MW={mv['mw']}): the graphs differ")
        _divides(node, "PE", mv["pe"], "MH")
        _divides(node, "SIMD", mv["simd"], "MW")
        config[node["name"]] = {"PE": mv["pe"], "SIMD": mv["simd"]}

    consumers = _consumers(nodes)
    by_kind: dict[str, list[dict]] = {}
    for n in nodes:
        by_kind.setdefault(finn_kind(n["op_type"]), []).append(n)
    interval = max(1, int(plan.get("interval_cycles") or 1))
    windows = ("ConvolutionInputGenerator", "FMPadding")
    # windows last: each takes its consumer's folding (an MVAU's SIMD, or a Pool's PE)
    for node in sorted(nodes, key=lambda n: finn_kind(n["op_type"]) in windows):
        kind = finn_kind(node["op_type"])
        if kind not in FINN_FOLD_ATTR:
            continue
        field, count_attr = FINN_FOLD_ATTR[kind]
        if kind in windows:
            value = math.gcd(_window_simd(node, consumers, config), _count(node, count_attr))
        else:
            ir_layers = plan["elementwise"].get(kind, [])
            same = by_kind[kind]
            if len(ir_layers) == len(same):
                value = ir_layers[same.index(node)]["pe"]
            else:
                value = _default_pe(node, count_attr, interval)
        _divides(node, field, value, count_attr)
        config[node["name"]] = {field: value}
    return config


def _consumers(nodes: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for n in nodes:
        for t in n.get("inputs", []):
            out.setdefault(t, []).append(n)
    return out


def _window_simd(node: dict, consumers: dict, config: dict) -> int:
    """The parallelism of what this window generator feeds (through a FMPadding and a SWG): an
    MVAU's SIMD, or a Pool's PE (the pool's window generator is depthwise: one channel group per beat)."""
    current = node
    for _ in range(3):
        nxt = [c for t in current.get("outputs", []) for c in consumers.get(t, [])]
        if len(nxt) != 1:
            break
        current = nxt[0]
        kind = finn_kind(current["op_type"])
        if kind == "MVAU":
            return config[current["name"]]["SIMD"]
        if kind == "Pool":
            return config[current["name"]]["PE"]
    raise FoldingError(f"FINN node {node['name']} ({node['op_type']}): SIMD: no single MVAU or Pool consumer to "
                       f"take it from")


def _count(node: dict, count_attr: str) -> int:
    counts = node["attrs"].get(count_attr)
    if counts is None:
        raise FoldingError(f"FINN node {node['name']} ({node['op_type']}): has no {count_attr} attribute")
    return int(min(counts) if isinstance(counts, (list, tuple)) else counts)


def _default_pe(node: dict, count_attr: str, interval: int) -> int:
    c = _count(node, count_attr)
    cycles = int(node.get("cycles_at_1") or c)
    for d in range(1, c + 1):
        if c % d == 0 and cycles // d <= max(1, interval // ELEMENTWISE_HEADROOM):
            return d
    return c


def specialize_config(nodes: list[dict]) -> dict:
    """specialize_layers_config.json: the implementation style of every node."""
    config: dict = {"Defaults": {}}
    for n in nodes:
        config[n["name"]] = {"preferred_impl_style": IMPL_STYLE}
    return config


def write_json(doc: dict, path: str | Path) -> Path:
    """Written to a temporary file beside `path`, then renamed: never half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, path)
    return path
