"""The IR as a standard ONNX model run by onnxruntime: a golden model independent of numpy's.

The model takes "image" (uint8, (N, H, W, C), N dynamic) and returns one int64 output per
role of the graph ("logits", "label"). It keeps the IR's channels-last layout, so the ops on
the channel axis (MatMul, the threshold comparison, Concat, ArgMax) read as in ir.py; only
a convolution transposes to NCHW and back.

Exactness: every IR tensor is an int64 ONNX value, and everything but the matrix products
is integer arithmetic or data movement in int64 (Pad, Gather, Add, Clip, ReduceSum,
ReduceMax, GreaterOrEqual, ArgMax). Conv and MatMul run in float32 only where every partial
sum is an integer below 2^24 in magnitude, bounded at emission by the largest input
magnitude (the declared datatype's range, and the pad value; run_numpy checks that values
respect their datatypes) times the largest L1 norm of a weight row: float32 holds every
such integer, so each product and partial sum is exact in any summation order. Above that
bound the MatMul runs in int64 on gathered patches (onnxruntime's CPU Conv has neither a
double nor an int64 kernel).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from build_flow.ir import Graph, IRError, Layer, dtype_range, validate
from build_flow.ops import implementation, implements
from model.atomic import atomic_write
from verify.golden_numpy import check_images

OPSET = 18
FLOAT32_EXACT = 2 ** 24  # float32 represents every integer of smaller magnitude


class _Emitter:
    """Collects the nodes and constants; `values` maps an IR tensor to its int64 ONNX value."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.nodes: list[onnx.NodeProto] = []
        self.consts: list[onnx.TensorProto] = []
        self.values: dict[str, str] = {}
        self.prefix = "input"  # the layer being emitted, for readable value names
        self.folded = {l.outputs[0]: l for l in graph.layers if _folds_into_conv(graph, l)}
        self._count = 0

    def _name(self, hint: str) -> str:
        self._count += 1
        return f"{self.prefix}/{hint}_{self._count}"

    def const(self, array) -> str:
        name = self._name("const")
        self.consts.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def op(self, op_type: str, *inputs: str, **attrs) -> str:
        out = self._name(op_type)
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=out, **attrs))
        return out


def _folds_into_conv(graph: Graph, layer: Layer) -> bool:
    """A SlidingWindow read only by one MatrixVector becomes part of that layer's Conv."""
    if layer.op != "SlidingWindow" or layer.outputs[0] in graph.outputs.values():
        return False
    readers = graph.consumers(layer.outputs[0])
    return len(readers) == 1 and readers[0].op == "MatrixVector" and readers[0].inputs == layer.outputs


def ir_to_onnx(graph: Graph, internals: tuple[str, ...] | list[str] = ()) -> onnx.ModelProto:
    """The IR as an opset-18 ONNX model: "image" uint8 (N, H, W, C) in, int64 outputs named by role,
    then the IR tensors named in `internals` as outputs of the same names (for comparisons)."""
    validate(graph, "graph")
    e = _Emitter(graph)
    e.values[graph.input] = e.op("Cast", "image", to=TensorProto.INT64)
    for layer in graph.layers:
        if layer.outputs[0] in e.folded:
            continue  # emitted by the MatrixVector that reads it
        e.prefix = layer.name
        inputs = [e.values.get(name) for name in layer.inputs]  # None: a folded SlidingWindow
        try:
            out = implementation("golden_onnx", layer.op)(e, layer, *inputs)
        except KeyError as exc:
            raise IRError(f"layer '{layer.name}' ({layer.op}): missing attribute {exc}") from None
        e.values.update(zip(layer.outputs, out if isinstance(out, list) else [out]))
    outputs = []
    for role, name in graph.outputs.items():
        e.nodes.append(helper.make_node("Identity", [e.values[name]], [role], name=f"output/{role}"))
        outputs.append(helper.make_tensor_value_info(role, TensorProto.INT64, ["N", *graph.tensors[name].shape]))
    for name in internals:
        if name not in e.values:
            raise IRError(f"tensor '{name}' is not computed on its own in the ONNX model (unknown, or folded into "
                          "the matrix unit that reads it)")
        e.nodes.append(helper.make_node("Identity", [e.values[name]], [name], name=f"output/{name}"))
        outputs.append(helper.make_tensor_value_info(name, TensorProto.INT64, ["N", *graph.tensors[name].shape]))
    image = helper.make_tensor_value_info("image", TensorProto.UINT8, ["N", *graph.tensors[graph.input].shape])
    model = helper.make_model(helper.make_graph(e.nodes, "bnn_ir", [image], outputs, e.consts),
                              opset_imports=[helper.make_opsetid("", OPSET)], producer_name="verify.golden_onnx")
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise IRError(f"graph: not a valid ONNX model (run_numpy names the layer): {exc}") from None
    return model


def save_onnx(graph: Graph, path: str | Path) -> Path:
    """Write `ir_to_onnx(graph)` atomically (temp file + rename)."""
    model = ir_to_onnx(graph)
    atomic_write(path, lambda tmp: onnx.save(model, tmp))
    return Path(path)


def run_onnxruntime(graph_or_model: Graph | onnx.ModelProto, images, batch_size: int = 16,
                    internals: tuple[str, ...] | list[str] = ()) -> dict[str, np.ndarray]:
    """Run on uint8 `images` (N, H, W, C); returns role -> (N, ...) int64 array, like run_numpy, and
    each IR tensor named in `internals` (a Graph only) under its name."""
    model = ir_to_onnx(graph_or_model, internals) if isinstance(graph_or_model, Graph) else graph_or_model
    image = model.graph.input[0]
    images = check_images(images, tuple(d.dim_value for d in image.type.tensor_type.shape.dim[1:]),
                          f"input '{image.name}'")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # no fusions changing float math
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    roles = [o.name for o in session.get_outputs()]
    batches = [session.run(roles, {image.name: images[i:i + batch_size]})
               for i in range(0, len(images), batch_size)]
    return {role: np.concatenate([b[j] for b in batches]).astype(np.int64) for j, role in enumerate(roles)}


# ---------------------------------------------------------------- ops: (emitter, layer, *inputs) -> value(s)

def _max_abs_input(graph: Graph, layer: Layer) -> int:
    lo, hi = dtype_range(graph.tensors[layer.inputs[0]].dtype)
    return max(-lo, hi, abs(layer.attrs.get("pad_value", 0)))


def _patches(e: _Emitter, layer: Layer, x: str, p: int = 0, pad_value: int = 0) -> str:
    """(N, H, W, C) -> (N, Ho, Wo, k·k, C): the padded input gathered at every window (exact, int64)."""
    h, w, c = e.graph.tensors[layer.inputs[0]].shape
    k, s = layer.attrs["kernel"], layer.attrs["stride"]
    hp, wp = h + 2 * p, w + 2 * p
    ho, wo = (hp - k) // s + 1, (wp - k) // s + 1
    oy, ox, ky, kx = np.ix_(range(ho), range(wo), range(k), range(k))
    pixel = ((oy * s + ky) * wp + ox * s + kx).ravel()  # in (oy, ox, ky, kx) order
    padded = e.op("Pad", x, e.const([0, p, p, 0, 0, p, p, 0]), e.const(np.int64(pad_value)))
    pixels = e.op("Reshape", padded, e.const([-1, hp * wp, c]))
    return e.op("Reshape", e.op("Gather", pixels, e.const(pixel), axis=1), e.const([-1, ho, wo, k * k, c]))


@implements("golden_onnx", "SlidingWindow")
def _sliding_window(e, layer, x):
    patches = _patches(e, layer, x, layer.attrs["pad"], layer.attrs["pad_value"])
    return e.op("Reshape", patches, e.const([0, 0, 0, -1]))  # patch order (ky, kx, c)


def _conv(e: _Emitter, window: Layer, x: str, w: np.ndarray) -> str:
    """SlidingWindow `window` then the ±1 matrix `w` as one float32 Conv (padded by Pad with the
    pad value: Conv's own pads would pad with 0)."""
    k, s, p = window.attrs["kernel"], window.attrs["stride"], window.attrs["pad"]
    kernel = w.reshape(len(w), k, k, -1).transpose(0, 3, 1, 2)  # patch order (ky, kx, c) -> OIHW
    nchw = e.op("Transpose", e.op("Cast", x, to=TensorProto.FLOAT), perm=[0, 3, 1, 2])
    padded = e.op("Pad", nchw, e.const([0, 0, p, p, 0, 0, p, p]), e.const(np.float32(window.attrs["pad_value"])))
    y = e.op("Conv", padded, e.const(kernel.astype(np.float32)), kernel_shape=[k, k], strides=[s, s])
    return e.op("Cast", e.op("Transpose", y, perm=[0, 2, 3, 1]), to=TensorProto.INT64)


def _matmul(e: _Emitter, x: str, w: np.ndarray, bound: int) -> str:
    """x @ w.T on the last axis: float32 below the exact bound, int64 above."""
    if bound < FLOAT32_EXACT:
        y = e.op("MatMul", e.op("Cast", x, to=TensorProto.FLOAT), e.const(w.T.astype(np.float32)))
        return e.op("Cast", y, to=TensorProto.INT64)
    return e.op("MatMul", x, e.const(w.T.astype(np.int64)))


@implements("golden_onnx", "MatrixVector")
def _matrix_vector(e, layer, x):
    w = e.graph.arrays[layer.attrs["weights"]].astype(np.int64)
    window = e.folded.get(layer.inputs[0])
    bound = _max_abs_input(e.graph, window or layer) * int(np.abs(w).sum(axis=1).max())
    if window is not None and bound < FLOAT32_EXACT:
        acc = _conv(e, window, e.values[window.inputs[0]], w)
    else:
        if window is not None:
            x = _sliding_window(e, window, e.values[window.inputs[0]])
        if layer.attrs.get("flatten"):  # a fully connected layer reading a whole (H, W, C) map
            x = e.op("Reshape", x, e.const([-1, w.shape[1]]))
        acc = _matmul(e, x, w, bound)
    if layer.attrs.get("thresholds") is None:
        return acc
    return _threshold(e, layer, acc, (-bound, bound))


LUT_MAX_ENTRIES = 1 << 22  # a per-channel table of levels is used below this size


@implements("golden_onnx", "Threshold")
def _threshold(e, layer, acc, acc_range=None):
    t = e.graph.arrays[layer.attrs["thresholds"]].astype(np.int64)
    d = e.graph.arrays[layer.attrs["direction"]].astype(np.int64)[:, None]
    out = e.graph.tensors[layer.outputs[0]]
    if len(t) not in (1, out.shape[-1]):
        raise IRError(f"layer '{layer.name}' ({layer.op}): {len(t)} threshold rows for {out.shape[-1]} channels")
    lo, hi = acc_range or dtype_range(e.graph.tensors[layer.inputs[0]].dtype)
    if t.shape[1] > 2 and len(t) * (hi - lo + 1) <= LUT_MAX_ENTRIES:
        levels = _threshold_table(e, t, d, lo, hi, acc)
    else:
        # acc <= T  <=>  -acc >= -T: one comparison serves both directions; (…, C, 1) against (C, L)
        signed = e.op("Mul", e.op("Unsqueeze", acc, e.const([-1])), e.const(d))
        hits = e.op("Cast", e.op("GreaterOrEqual", signed, e.const(d * t)), to=TensorProto.INT64)
        levels = e.op("ReduceSum", hits, e.const([-1]), keepdims=0)
    levels = e.op("Add", levels, e.const(np.int64(layer.attrs.get("y_min", 0))))
    if out.dtype == "BIPOLAR":  # levels {0, 1} -> -1/+1
        return e.op("Sub", e.op("Mul", levels, e.const(np.int64(2))), e.const(np.int64(1)))
    return levels


def _threshold_table(e: _Emitter, t: np.ndarray, d: np.ndarray, lo: int, hi: int, acc: str) -> str:
    """Many thresholds (an 8-bit requantizer has 255 per channel) as one Gather from a table
    of the level of every reachable value, row by row, built from the definition
    (count of d·v >= d·T_k); the (…, C, L) comparison would cost L times more per run."""
    values = np.arange(lo, hi + 1, dtype=np.int64)
    table = ((d[:, :, None] * values[None, None, :]) >= (d * t)[:, :, None]).sum(axis=1)  # (rows, hi-lo+1)
    offsets = np.arange(len(t), dtype=np.int64) * (hi - lo + 1) - lo  # row c starts at c·(hi−lo+1)
    index = e.op("Add", acc, e.const(offsets))  # (…, C) + (C,) or + (1,) for a shared row
    return e.op("Gather", e.const(table.reshape(-1)), index, axis=0)


@implements("golden_onnx", "MaxPool")
def _max_pool(e, layer, x):
    return e.op("ReduceMax", _patches(e, layer, x), e.const([3]), keepdims=0)


@implements("golden_onnx", "SumPool")
def _sum_pool(e, layer, x):
    return e.op("ReduceSum", _patches(e, layer, x), e.const([3]), keepdims=0)


@implements("golden_onnx", "GlobalSumPool")
def _global_sum_pool(e, layer, x):
    return e.op("ReduceSum", x, e.const([1, 2]), keepdims=0)


@implements("golden_onnx", "Fork")
def _fork(e, layer, x):
    return [x] * len(layer.outputs)


@implements("golden_onnx", "AddSat")
def _add_sat(e, layer, a, b):
    lo, hi = dtype_range(e.graph.tensors[layer.outputs[0]].dtype)
    return e.op("Clip", e.op("Add", a, b), e.const(np.int64(lo)), e.const(np.int64(hi)))


@implements("golden_onnx", "Concat")
def _concat(e, layer, *xs):
    return e.op("Concat", *xs, axis=-1)


@implements("golden_onnx", "LabelSelect")
def _label_select(e, layer, x):
    op = "ArgMax" if layer.attrs.get("largest", True) else "ArgMin"
    return e.op(op, x, axis=-1, keepdims=0, select_last_index=0)  # ties: the lowest index
