"""The integer dataflow IR: the single input of every hardware backend and golden model.

A directory holding

* ``graph.json`` – schema version, tensors (shape, datatype), layers in topological
  (streaming) order, the input and the outputs;
* ``tensors.npz`` – weights (±1 as int8), thresholds (int64) and directions (int8),
  referenced from layer attributes by key.

Every value in the IR is an integer. Shapes are channels-last: ``(H, W, C)`` for feature
maps, ``(C,)`` after global pooling. A BIPOLAR value is stored and computed as −1/+1
(bit 0/1 in hardware).

Layers (``op`` and its attributes; every layer also has ``pe`` and ``simd``, the folding
fields a backend plans, default 1). `build_flow/ops.py` holds each op's spec (inputs, outputs,
attributes and their types, checked by `validate`) and the registry of every backend's
implementation of it:

=================  =======================================================================
SlidingWindow      kernel, stride, pad, pad_value: (H, W, C) -> (Ho, Wo, k·k·C), patch order
                   (ky, kx, c); the border is filled with pad_value (−1 for BIPOLAR inputs).
MatrixVector       weights (MH, MW) ±1; acc = Σ w·x over the last axis (XNOR-popcount for
                   BIPOLAR inputs, add/subtract for integer ones); ``flatten``: true makes a
                   fully connected layer read a whole (H, W, C) map in (h, w, c) order. With
                   ``thresholds``: y = y_min + Σ_k [acc ≥ T_k] per output channel (≤ where
                   direction is −1); without: the accumulators themselves.
Threshold          thresholds (C or 1, L), direction, y_min: the same step function alone.
MaxPool            kernel, stride (on BIPOLAR: an OR of the bits).
SumPool            kernel, stride: integer sum of each window.
GlobalSumPool      (H, W, C) -> (C,): integer sum.
Fork               one input, several identical outputs (a stream read by several layers).
AddSat             two inputs of the same datatype: clamp(a + b) to the output datatype. An
                   output datatype that holds every sum (one bit wider than the inputs)
                   never clamps: the exact sum, which a per-channel Threshold then reads
                   (the student's ``model.post_add``: an increasing function of the sum
                   and its re-quantizer, folded into thresholds).
Concat             channel concatenation of its inputs.
LabelSelect        (C,) -> index of the largest value (``largest``: true) or the smallest.
=================  =======================================================================

A Threshold or MatrixVector whose output datatype is BIPOLAR has levels {0, 1}, mapped to
−1/+1; otherwise ``y_min`` is the output datatype's minimum. A thresholds array has one row
per channel, or one row shared by all. Pools have no padding (output size floor((H − k)/s) + 1).
LabelSelect's output has shape ().
"""
from __future__ import annotations

import json
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from model.errors import FlowError

from .ops import OPS as OP_SPECS, check_attrs

SCHEMA_VERSION = 1
OPS = tuple(OP_SPECS)  # every op's inputs, outputs and attributes: build_flow/ops.py
_DTYPE = re.compile(r"^(BIPOLAR|UINT([1-9][0-9]?)|INT([1-9][0-9]?))$")


class IRError(FlowError):
    """An IR directory that cannot be read or does not make sense."""


def dtype_range(dtype: str) -> tuple[int, int]:
    """(min, max) of an IR datatype."""
    m = _DTYPE.match(dtype)
    if not m:
        raise IRError(f"unknown datatype '{dtype}'")
    if m.group(1) == "BIPOLAR":
        return -1, 1
    if m.group(2):
        return 0, 2 ** int(m.group(2)) - 1
    bits = int(m.group(3))
    return -2 ** (bits - 1), 2 ** (bits - 1) - 1


def int_dtype_for(lo: int, hi: int) -> str:
    """The narrowest INTn/UINTn holding [lo, hi]."""
    if lo >= 0:
        return f"UINT{max(1, int(hi).bit_length())}"
    bits = max(int(-lo - 1).bit_length(), int(hi).bit_length()) + 1
    return f"INT{bits}"


@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: str


@dataclass
class Layer:
    name: str
    op: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    pe: int = 1
    simd: int = 1


@dataclass
class Graph:
    tensors: dict[str, Tensor]
    layers: list[Layer]
    input: str
    outputs: dict[str, str]                  # role -> tensor: "logits" (accumulators), "label"
    arrays: dict[str, np.ndarray]            # weights / thresholds / directions by key
    meta: dict[str, Any] = field(default_factory=dict)  # logit_scale, input transform, source

    def transform(self, step) -> "Graph":
        """A new graph: `step` (a build_flow.ir_passes.IRPass) applied to a copy of this one."""
        return step(self)

    def tensor(self, name: str) -> Tensor:
        return self.tensors[name]

    def producer(self, tensor: str) -> Layer | None:
        return next((l for l in self.layers if tensor in l.outputs), None)

    def consumers(self, tensor: str) -> list[Layer]:
        return [l for l in self.layers if tensor in l.inputs]


# ---------------------------------------------------------------- save / load

def save_ir(graph: Graph, out_dir: str | Path) -> Path:
    """Write atomically: a temp directory beside `out_dir`, renamed into place."""
    validate(graph, str(out_dir))
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        doc = {
            "schema_version": SCHEMA_VERSION,
            "input": graph.input,
            "outputs": graph.outputs,
            "meta": graph.meta,
            "tensors": {t.name: {"shape": list(t.shape), "dtype": t.dtype} for t in graph.tensors.values()},
            "layers": [{"name": l.name, "op": l.op, "inputs": l.inputs, "outputs": l.outputs, "attrs": l.attrs,
                        "pe": l.pe, "simd": l.simd} for l in graph.layers],
        }
        (tmp / "graph.json").write_text(json.dumps(doc, indent=1, default=_json_scalar))
        np.savez(tmp / "tensors.npz", **graph.arrays)
        old = None
        if out_dir.exists():  # move the old IR aside first, so a crash never leaves neither
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=out_dir.parent))
            out_dir.rename(old / out_dir.name)
        tmp.rename(out_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _json_scalar(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def load_ir(ir_dir: str | Path) -> Graph:
    ir_dir = Path(ir_dir)
    gfile = ir_dir / "graph.json"
    if not gfile.is_file():
        raise IRError(f"{ir_dir}: not an IR directory (no graph.json)")
    try:
        doc = json.loads(gfile.read_text())
    except json.JSONDecodeError as exc:
        raise IRError(f"{gfile}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except UnicodeDecodeError as exc:
        raise IRError(f"{gfile}: not UTF-8 text (byte {exc.start})") from None
    if not isinstance(doc, dict):
        raise IRError(f"{gfile}: the top level must be an object, got {type(doc).__name__}")
    version = doc.get("schema_version")
    if version != SCHEMA_VERSION:
        raise IRError(f"{gfile}: schema_version {version!r} is not supported (this flow reads {SCHEMA_VERSION})")
    try:
        with np.load(ir_dir / "tensors.npz", allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except Exception as exc:  # corrupt bytes reach zipfile, zlib and numpy's header parser, which raise anything
        raise IRError(f"{ir_dir / 'tensors.npz'}: unreadable ({' '.join(str(exc).split()) or type(exc).__name__})") \
            from None
    _check_document(doc, str(gfile))
    try:
        graph = Graph(
            tensors={n: Tensor(n, tuple(t["shape"]), t["dtype"]) for n, t in doc["tensors"].items()},
            layers=[Layer(l["name"], l["op"], list(l["inputs"]), list(l["outputs"]), dict(l.get("attrs", {})),
                          l.get("pe", 1), l.get("simd", 1)) for l in doc["layers"]],
            input=doc["input"], outputs=dict(doc["outputs"]), arrays=arrays, meta=dict(doc.get("meta", {})))
    except (KeyError, TypeError) as exc:
        raise IRError(f"{gfile}: missing or malformed field {exc}") from None
    return validate(graph, str(gfile))


def _check_document(doc: dict, where: str) -> None:
    """The JSON types graph.json must have, before any field is used (validate checks meaning)."""
    def need(ok: bool, what: str):
        if not ok:
            raise IRError(f"{where}: {what}")

    def names(v) -> bool:
        return isinstance(v, list) and all(isinstance(x, str) for x in v)

    tensors, layers = doc.get("tensors"), doc.get("layers")
    need(isinstance(tensors, dict), "'tensors' must be an object of name -> {shape, dtype}")
    for name, t in tensors.items():
        need(isinstance(t, dict) and isinstance(t.get("dtype"), str) and isinstance(t.get("shape"), list)
             and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in t["shape"]),
             f"tensor '{name}' needs a 'shape' of non-negative integers and a 'dtype' string")
    need(isinstance(layers, list), "'layers' must be a list")
    for i, l in enumerate(layers):
        need(isinstance(l, dict) and isinstance(l.get("name"), str) and isinstance(l.get("op"), str),
             f"layer {i} needs a 'name' and an 'op' string")
        need(names(l.get("inputs")) and names(l.get("outputs")), f"layer '{l['name']}': inputs and outputs "
                                                                 "must be lists of tensor names")
        need(isinstance(l.get("attrs", {}), dict), f"layer '{l['name']}': 'attrs' must be an object")
        for key in ("weights", "thresholds", "direction"):
            ref = l.get("attrs", {}).get(key)
            need(ref is None or isinstance(ref, str), f"layer '{l['name']}': {key} must name an array")
    need(isinstance(doc.get("input"), str), "'input' must be a tensor name")
    outputs = doc.get("outputs")
    need(isinstance(outputs, dict) and all(isinstance(v, str) for v in outputs.values()),
         "'outputs' must be an object of role -> tensor name")
    need(isinstance(doc.get("meta", {}), dict), "'meta' must be an object")


# ---------------------------------------------------------------- validation

def validate(graph: Graph, where: str) -> Graph:
    """Check references, datatypes and array shapes; errors name the layer and the field."""
    def bad(layer: Layer | None, msg: str):
        raise IRError(f"{where}: " + (f"layer '{layer.name}' ({layer.op}): " if layer else "") + msg)

    for t in graph.tensors.values():
        try:
            dtype_range(t.dtype)
        except IRError:
            bad(None, f"tensor '{t.name}' has unknown datatype '{t.dtype}'")
    if graph.input not in graph.tensors:
        bad(None, f"input tensor '{graph.input}' is not declared")
    produced = {graph.input}
    for layer in graph.layers:
        if layer.op not in OPS:
            bad(layer, f"unknown op (known: {', '.join(OPS)})")
        for name in layer.inputs:
            if name not in graph.tensors:
                bad(layer, f"input '{name}' is not declared")
            if name not in produced:
                bad(layer, f"input '{name}' is used before it is produced (layers must be in streaming order)")
        for name in layer.outputs:
            if name not in graph.tensors:
                bad(layer, f"output '{name}' is not declared")
            produced.add(name)
        if not layer.inputs or not layer.outputs:
            bad(layer, "needs at least one input and one output")
        spec = OP_SPECS[layer.op]
        for what, names, n in (("inputs", layer.inputs, spec.inputs), ("outputs", layer.outputs, spec.outputs)):
            if n is not None and len(names) != n:
                bad(layer, f"has {len(names)} {what}, the op takes {n}")
        problem = check_attrs(layer.op, layer.attrs)
        if problem:
            bad(layer, problem)
        if (layer.attrs.get("thresholds") is None) != (layer.attrs.get("direction") is None):
            bad(layer, "thresholds and direction come together")
        if layer.op == "MatrixVector" and "weights" not in layer.attrs:
            bad(layer, "has no weights")
        for key in ("weights", "thresholds", "direction"):
            ref = layer.attrs.get(key)
            if ref is not None and ref not in graph.arrays:
                bad(layer, f"{key} '{ref}' is missing from tensors.npz")
        if layer.op == "MatrixVector":
            w = graph.arrays[layer.attrs["weights"]]
            in_shape = graph.tensors[layer.inputs[0]].shape
            if not in_shape or not graph.tensors[layer.outputs[0]].shape:
                bad(layer, "needs non-scalar input and output tensors")
            mw = int(np.prod(in_shape)) if layer.attrs.get("flatten") else in_shape[-1]
            mh = graph.tensors[layer.outputs[0]].shape[-1]
            if w.shape != (mh, mw):
                bad(layer, f"weights have shape {w.shape}, the tensors need ({mh}, {mw})")
            if not np.isin(w, (-1, 1)).all():
                bad(layer, "weights must be ±1")
        if layer.attrs.get("thresholds") is not None:
            t = graph.arrays[layer.attrs["thresholds"]]
            d = graph.arrays[layer.attrs["direction"]]
            lo, hi = dtype_range(graph.tensors[layer.outputs[0]].dtype)
            levels = 1 if graph.tensors[layer.outputs[0]].dtype == "BIPOLAR" else hi - lo
            if t.ndim != 2 or t.shape[1] != levels:
                bad(layer, f"thresholds have shape {t.shape}; the output datatype needs {levels} per channel")
            if d.shape != (t.shape[0],) or not np.isin(d, (-1, 1)).all():
                bad(layer, "direction must hold one ±1 per threshold row")
            channels = graph.tensors[layer.outputs[0]].shape[-1]
            if t.shape[0] not in (1, channels):
                bad(layer, f"{t.shape[0]} threshold rows for {channels} channels (need 1 or {channels})")
            y_min = 0 if graph.tensors[layer.outputs[0]].dtype == "BIPOLAR" else lo
            if layer.attrs.get("y_min") != y_min:
                bad(layer, f"y_min = {layer.attrs.get('y_min')!r}, the output datatype needs {y_min}")
        for fname in ("pe", "simd"):
            value = getattr(layer, fname)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                bad(layer, f"{fname} = {getattr(layer, fname)} must be >= 1")
    for role, name in graph.outputs.items():
        if name not in produced:
            bad(None, f"output '{role}' names tensor '{name}', which no layer produces")
    return graph
