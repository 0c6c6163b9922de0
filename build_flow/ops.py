"""The IR's ops, each as a spec (its inputs, outputs and attributes with their types), and the
registry through which every backend declares its implementation of each op.

The loader (`build_flow.ir.validate`) checks every layer against its op's spec, so a backend
reads attributes it can trust. A backend registers one implementation per op with
:func:`implements`; `tests/test_ops.py` fails when any backend lacks an op, so a new op (one
entry in :data:`OPS`) lists every place that still has to learn it.

Backends (the module that registers, and what its implementation of an op is):

* ``golden_numpy`` — verify/golden_numpy.py: ``fn(graph, layer, *inputs) -> output`` in numpy;
* ``golden_onnx``  — verify/golden_onnx.py: emits the op's onnxruntime nodes;
* ``rtl``          — hw/generate.py: the Verilog module and parameters of the op, and what its
  inputs absorb (fork FIFO sizing);
* ``planner``      — hw/planner.py: the op's cycles per frame and its LUT / FF / BRAM estimate;
* ``finn``         — build_flow/finn/folding.py: the FINN layer the op becomes.

Only numpy-free standard Python here: the IR core imports it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["Attr", "OpSpec", "OPS", "BACKENDS", "register", "implements", "implementation", "implemented", "missing",
           "check_attrs"]


@dataclass(frozen=True)
class Attr:
    """One layer attribute: its JSON type (``int``, ``bool``; ``array``: the key of an array in
    tensors.npz) and whether a layer must have it."""
    kind: str
    required: bool = True

    def accepts(self, value: Any) -> bool:
        if self.kind == "int":
            return isinstance(value, int) and not isinstance(value, bool)
        if self.kind == "bool":
            return isinstance(value, bool)
        if self.kind == "array":
            return isinstance(value, str)
        raise ValueError(f"unknown attribute kind {self.kind!r}")


@dataclass(frozen=True)
class OpSpec:
    """What a layer of this op looks like: the number of inputs and outputs (``None``: one or
    more) and its attributes."""
    name: str
    inputs: int | None
    outputs: int | None
    attrs: dict[str, Attr] = field(default_factory=dict)
    doc: str = ""


_ACT = {"thresholds": Attr("array", False), "direction": Attr("array", False), "y_min": Attr("int", False)}
_POOL = {"kernel": Attr("int"), "stride": Attr("int")}

OPS: dict[str, OpSpec] = {s.name: s for s in (
    OpSpec("SlidingWindow", 1, 1, {"kernel": Attr("int"), "stride": Attr("int"), "pad": Attr("int"),
                                   "pad_value": Attr("int")}, "(H, W, C) -> (Ho, Wo, k*k*C) patches"),
    OpSpec("MatrixVector", 1, 1, {"weights": Attr("array"), "flatten": Attr("bool", False), **_ACT},
           "±1 weights times the input vector, optionally thresholded"),
    OpSpec("Threshold", 1, 1, {"thresholds": Attr("array"), "direction": Attr("array"), "y_min": Attr("int")},
           "the multi-threshold step function alone"),
    OpSpec("MaxPool", 1, 1, dict(_POOL), "max of each window (OR on BIPOLAR)"),
    OpSpec("SumPool", 1, 1, dict(_POOL), "integer sum of each window"),
    OpSpec("GlobalSumPool", 1, 1, {}, "(H, W, C) -> (C,) integer sum"),
    OpSpec("Fork", 1, None, {}, "one stream read by several layers"),
    OpSpec("AddSat", 2, 1, {}, "clamp(a + b) to the output datatype"),
    OpSpec("Concat", None, 1, {}, "channel concatenation"),
    OpSpec("LabelSelect", 1, 1, {"largest": Attr("bool", False)}, "index of the largest (or smallest) value"),
)}

BACKENDS = ("golden_numpy", "golden_onnx", "rtl", "planner", "finn")
_IMPLS: dict[str, dict[str, Any]] = {b: {} for b in BACKENDS}


_KIND_TEXT = {"int": "an integer", "bool": "true or false", "array": "the name of an array in tensors.npz"}


def check_attrs(op: str, attrs: dict) -> str | None:
    """What is wrong with a layer's attributes for `op` (None: nothing)."""
    spec = OPS[op]
    for key, value in attrs.items():
        a = spec.attrs.get(key)
        if a is None:
            known = ", ".join(spec.attrs) or "none"
            return f"unknown attribute '{key}' (this op takes: {known})"
        if value is None and not a.required:
            continue
        if not a.accepts(value):
            return f"attribute '{key}' = {value!r} must be {_KIND_TEXT[a.kind]}"
    for key, a in spec.attrs.items():
        if a.required and key not in attrs:
            return f"missing attribute '{key}'"
    return None


def register(backend: str, op: str, impl: Any) -> Any:
    """Register `impl` as `backend`'s implementation of `op` (once per backend and op)."""
    if backend not in _IMPLS:
        raise ValueError(f"unknown backend {backend!r} (known: {', '.join(BACKENDS)})")
    if op not in OPS:
        raise ValueError(f"{backend}: unknown IR op {op!r}")
    if op in _IMPLS[backend]:
        raise ValueError(f"{backend}: {op} is registered twice")
    _IMPLS[backend][op] = impl
    return impl


def implements(backend: str, *ops: str) -> Callable:
    """Decorator: register the decorated object as `backend`'s implementation of `ops`."""
    def deco(impl):
        for op in ops:
            register(backend, op, impl)
        return impl
    return deco


def implementation(backend: str, op: str) -> Any:
    """`backend`'s implementation of `op`; a clear error when it has none."""
    try:
        return _IMPLS[backend][op]
    except KeyError:
        raise LookupError(f"the {backend} backend has no implementation of IR op '{op}'") from None


def implemented(backend: str) -> dict[str, Any]:
    """op -> implementation of one backend (a copy)."""
    return dict(_IMPLS[backend])


def missing(backend: str) -> list[str]:
    """The IR ops `backend` has not registered (import its module first)."""
    return [op for op in OPS if op not in _IMPLS[backend]]
