"""QONNX -> integer dataflow IR: a chain of small steps (see `lower`).

1. qonnx's own transformations prepare the graph (shapes, unique names, BatchNorm as a
   float32 Mul/Add pair);
2. `Lowering` translates QONNX nodes to IR layers, one handler per op (below);
3. IR passes (build_flow.ir_passes) fuse thresholds into matrix-vector units, merge
   duplicate layers and make forks explicit.

The translation walks the cleaned QONNX graph once, in topological order, and keeps for
every QONNX tensor one of three views:

* `IntView`  – the tensor is integers × a float scale (an IR tensor exists for it);
* `Pending`  – the tensor is a chain of float32 elementwise ops (Mul/Add/Div/Sub by
  scalar or per-channel constants, PRelu with scalar or per-channel slopes) applied to
  an IntView; it becomes integer again at the next Quant / BipolarQuant, where the
  whole chain plus the quantizer is folded into exact integer thresholds
  (build_flow.thresholds: the chain is evaluated in float32, in the order the model
  computes it, on every reachable integer; a chain that is not monotone per channel is
  refused, a decreasing one counts downwards);
* `Weights`  – a ±1 weight tensor (BipolarQuant of an initializer).

A residual add of two IntViews on one grid is held as a `_PendingSum`. Re-quantized at once
to that grid, it becomes an AddSat (integer add, then saturation). When a float chain
follows it instead (the student's ``model.post_add``), the sum is first materialized as
an AddSat whose output datatype holds every sum (one bit wider than the operands: it never
saturates), and the chain plus the quantizer after it become a per-channel Threshold on
that exact integer sum.

Anything that cannot be mapped exactly raises `LoweringError` naming the node, its op
and why; the caller writes no IR then.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.batchnorm_to_affine import BatchNormToAffine
from qonnx.transformation.general import GiveUniqueNodeNames
from qonnx.transformation.infer_shapes import InferShapes

from model.errors import FlowError

from .ir import Graph, Layer, Tensor, dtype_range, int_dtype_for
from .ir_passes import IR_PASSES
from .thresholds import find_thresholds


class LoweringError(FlowError):
    """A QONNX node the IR cannot express exactly."""


@dataclass
class IntView:
    tensor: str            # IR tensor name
    scale: float           # the QONNX value is IR integer × scale (exactly)
    lo: int                # integer range
    hi: int
    bipolar: bool = False
    pad: tuple[int, int] | None = None   # (amount, value) of a Pad waiting for the next conv
    flat_from: tuple[int, int, int] | None = None  # (C, H, W) when flattened from a feature map


@dataclass
class Pending:
    src: IntView
    ops: list[tuple[str, np.ndarray]] = field(default_factory=list)  # (Mul|Add|Sub|Div|PRelu, float32 const)
    nodes: list[str] = field(default_factory=list)  # the QONNX nodes of the chain, for error messages


@dataclass
class Weights:
    signs: np.ndarray      # ±1, the initializer's layout
    scale: np.ndarray      # BipolarQuant scale (broadcastable)


def _attrs(node) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


class Lowering:
    def __init__(self, model: ModelWrapper):
        self.m = model
        self.views: dict[str, IntView | Pending | Weights] = {}
        self.tensors: dict[str, Tensor] = {}
        self.layers: list[Layer] = []
        self.arrays: dict[str, np.ndarray] = {}
        self.input: str | None = None
        self.meta: dict = {}
        self.probes: dict[str, tuple[str, float, bool]] = {}  # QONNX quantizer output -> (IR tensor, scale, bipolar)

    # ------------------------------------------------------------ helpers

    def fail(self, node, why: str):
        raise LoweringError(f"node '{node.name}' ({node.op_type}): {why}")

    def new_tensor(self, base: str, shape, lo: int, hi: int, bipolar: bool = False) -> str:
        name = base
        i = 1
        while name in self.tensors:
            name, i = f"{base}_{i}", i + 1
        self.tensors[name] = Tensor(name, tuple(int(s) for s in shape), "BIPOLAR" if bipolar else int_dtype_for(lo, hi))
        return name

    def add_layer(self, op: str, name: str, inputs, outputs, **attrs) -> Layer:
        layer = Layer(name, op, list(inputs), list(outputs), attrs)
        self.layers.append(layer)
        return layer

    def int_input(self, node, idx: int = 0) -> IntView:
        v = self.views.get(node.input[idx])
        if isinstance(v, IntView):
            return v
        if isinstance(v, Pending):
            self.fail(node, "its input is a float tensor (a Mul/Add after a quantizer that no quantizer "
                            "re-quantizes): per-channel scaling of a layer's input cannot be folded into ±1 weights")
        self.fail(node, f"input '{node.input[idx]}' is not a quantized activation")

    def const(self, name: str) -> np.ndarray | None:
        v = self.m.get_initializer(name)
        return None if v is None else np.asarray(v)

    def ir_shape(self, qonnx_tensor: str) -> tuple[int, ...]:
        """NCHW (1, C, H, W) -> (H, W, C); (1, C) -> (C,)."""
        shape = self.m.get_tensor_shape(qonnx_tensor)
        if shape[0] != 1:
            raise LoweringError(f"tensor '{qonnx_tensor}': batch size {shape[0]}; export with batch 1")
        return (shape[2], shape[3], shape[1]) if len(shape) == 4 else tuple(shape[1:])

    # ------------------------------------------------------------ the walk

    def run(self) -> Graph:
        graph_in = self.m.graph.input[0].name
        for node in self.m.graph.node:
            handler = getattr(self, f"on_{node.op_type}", None)
            if handler is None:
                self.fail(node, "unsupported op (the IR maps Quant, BipolarQuant, Conv, MatMul, Gemm, Mul, Add, Sub, "
                                "Div, PRelu, Pad, AveragePool, MaxPool, GlobalAveragePool, Flatten, Reshape, Concat)")
            if node.op_type == "Quant" and node.input[0] == graph_in:
                self.on_input_quant(node)
            else:
                handler(node)
        return self.finish()

    def on_input_quant(self, node):
        scale, zp, bits = (float(self.const(n)) for n in node.input[1:4])
        a = _attrs(node)
        if zp != 0 or a.get("signed", 1) != 0 or bits != 8 or scale <= 0:
            self.fail(node, f"the input quantizer must be unsigned 8-bit with zero point 0 (got signed="
                            f"{a.get('signed')}, bits={bits:g}, zero point={zp:g})")
        shape = self.ir_shape(node.output[0])
        self.input = self.new_tensor("image", shape, 0, 255)
        self.tensors[self.input].dtype = "UINT8"
        # the model sees pixel·scale; the hardware takes the uint8 pixel itself
        self.meta["input"] = {"dtype": "UINT8", "layout": "NHWC", "scale": scale}
        self.views[node.output[0]] = IntView(self.input, scale, 0, 255)

    # ------------------------------------------------------------ quantizers

    def on_BipolarQuant(self, node):
        x, scale = node.input[0], self.const(node.input[1])
        if scale is None or np.any(scale <= 0):
            self.fail(node, "needs a constant positive scale")
        w = self.const(x)
        if w is not None:  # weights
            self.views[node.output[0]] = Weights(np.where(w >= 0, 1, -1).astype(np.int8), scale.astype(np.float32))
            return
        # sign(v / scale) = sign(v): the scale only says what +1 means downstream
        if scale.size != 1:
            self.fail(node, "per-channel scales on bipolar activations are not supported")
        self.requantize(node, lambda v: (v >= 0).astype(np.int64), 0, 1, float(scale.reshape(-1)[0]), bipolar=True)

    def on_Quant(self, node):
        scale, zp, bits = (self.const(n) for n in node.input[1:4])
        if scale is None or zp is None or bits is None:
            self.fail(node, "scale, zero point and bit width must be constants")
        a = _attrs(node)
        if np.any(zp != 0):
            self.fail(node, "non-zero zero points are not supported")
        if scale.size != 1:
            self.fail(node, f"per-channel activation scales ({scale.size}) are not supported on activations")
        if a.get("rounding_mode", b"ROUND") not in (b"ROUND", b"HALF_EVEN", "ROUND"):
            self.fail(node, f"rounding mode {a.get('rounding_mode')} is not supported")
        bits, s = int(bits), np.float32(scale.reshape(-1)[0])
        signed, narrow = a.get("signed", 1), a.get("narrow", 0)
        lo = (-2 ** (bits - 1) + narrow) if signed else 0
        hi = 2 ** (bits - 1) - 1 if signed else 2 ** bits - 1 - narrow
        fn = lambda v: np.clip(np.round(v / s), lo, hi).astype(np.int64)  # qonnx's Quant, float32
        src = self.views.get(node.input[0])
        if isinstance(src, Pending) and src.src.scale == float(s) and not src.ops:
            src = src.src
        if isinstance(src, IntView) and src.scale == float(s) and src.lo >= lo and src.hi <= hi:
            self.views[node.output[0]] = src  # already on this grid and in range: the identity
            return
        if isinstance(src, _PendingSum):
            self.saturating_add(node, src, float(s), lo, hi)
            return
        self.requantize(node, fn, lo, hi, float(s))

    def requantize(self, node, quant, lo: int, hi: int, scale: float, bipolar: bool = False):
        """Fold the pending float chain feeding `node` and its quantizer into integer thresholds."""
        v = self.views.get(node.input[0])
        if isinstance(v, IntView):
            v = Pending(v)
        if not isinstance(v, Pending):
            self.fail(node, "input is not derived from a quantized tensor")
        src = v.src
        shape = self.tensors[src.tensor].shape
        channels = shape[-1]
        ops = [(op, self.channel_const(node, c, channels)) for op, c in v.ops]

        def levels(acc: np.ndarray) -> np.ndarray:
            x = acc.astype(np.float32)[:, None] * np.float32(src.scale)  # exact: integer × power-of-two-ish
            for op, c in ops:
                x = _FLOAT32_OPS[op](x, c)
            return np.broadcast_to(quant(x.astype(np.float32)), (len(acc), channels))

        if src.hi - src.lo > 2 ** 22:
            self.fail(node, f"accumulator range {src.lo}..{src.hi} is too wide to enumerate")
        chain = ", ".join(v.nodes) if v.nodes else "no float ops"
        # one threshold per level of the output datatype: a narrow range (-7..7 in INT4, 0..6 in
        # UINT3) gets an always-passed threshold below it or a never-passed one above it, so every
        # Threshold keeps y_min = the datatype's minimum and 2^N - 1 thresholds (IR contract)
        t_lo, t_hi = (lo, hi) if bipolar else dtype_range(int_dtype_for(lo, hi))
        try:
            th = find_thresholds(levels, src.lo, src.hi, t_lo, t_hi, channels, where=f"after {chain}")
        except ValueError as exc:  # e.g. a non-monotone chain (a PRelu with a negative slope)
            self.fail(node, f"{exc}: no threshold unit computes it")
        shared = all(np.array_equal(th.values[0], r) for r in th.values) and len(set(th.direction)) == 1
        values, direction = (th.values[:1], th.direction[:1]) if shared else (th.values, th.direction)
        out = self.new_tensor(node.output[0].replace("_out0", ""), shape, lo, hi, bipolar)
        self.arrays[f"{out}.thresholds"] = values
        self.arrays[f"{out}.direction"] = direction.astype(np.int8)
        self.add_layer("Threshold", node.name, [src.tensor], [out], thresholds=f"{out}.thresholds",
                       direction=f"{out}.direction", y_min=th.y_min)
        self.probes[node.output[0]] = (out, scale, bipolar)
        self.views[node.output[0]] = IntView(out, scale, -1 if bipolar else lo, 1 if bipolar else hi, bipolar)

    def channel_const(self, node, c: np.ndarray, channels: int) -> np.ndarray:
        """A scalar or per-channel constant as a float32 row broadcasting over (values, channels)."""
        c = np.asarray(c, dtype=np.float32)
        if c.size == 1:
            return c.reshape(1, 1)
        squeezed = c.reshape(-1)
        if squeezed.size != channels or max(c.shape) != channels:
            self.fail(node, f"constant of shape {c.shape} is neither a scalar nor per-channel ({channels} channels)")
        return squeezed.reshape(1, channels)

    # ------------------------------------------------------------ elementwise

    def elementwise(self, node):
        a, b = node.input
        ca, cb = self.const(a), self.const(b)
        if ca is None and cb is None:
            return False
        if ca is not None and node.op_type in ("Sub", "Div"):
            self.fail(node, "a constant on the left of Sub/Div is not supported")
        x, c = (b, ca) if ca is not None else (a, cb)
        self.extend_chain(node, x, c)
        return True

    def extend_chain(self, node, x: str, c: np.ndarray):
        """QONNX tensor `x` (integer, pending chain or pending sum) with `node`'s op by constant `c` appended."""
        v = self.views.get(x)
        if isinstance(v, _PendingSum):  # a float op on a residual sum: the exact integer sum first
            v = self.materialize_sum(v)
        if isinstance(v, IntView):
            v = Pending(v)
        if not isinstance(v, Pending):
            self.fail(node, "input is not derived from a quantized tensor")
        if c.ndim >= 2 and c.shape[0] == 1 and len(c.shape) == 4 and (c.shape[2] != 1 or c.shape[3] != 1):
            self.fail(node, f"spatially varying constant {c.shape}")
        self.views[node.output[0]] = Pending(v.src, v.ops + [(node.op_type, c)],
                                             v.nodes + [f"'{node.name}' ({node.op_type})"])

    def on_PRelu(self, node):
        """x where x ≥ 0, slope·x below (scalar or per-channel constant slopes): a link of the float chain."""
        slope = self.const(node.input[1])
        if slope is None:
            self.fail(node, "the slope must be a constant")
        self.extend_chain(node, node.input[0], slope)

    def on_Mul(self, node):
        if not self.elementwise(node):
            self.fail(node, "multiplication of two activations is not supported")

    def on_Div(self, node):
        if not self.elementwise(node):
            self.fail(node, "division of two activations is not supported")

    def on_Sub(self, node):
        if not self.elementwise(node):
            self.fail(node, "subtraction of two activations is not supported")

    def on_Add(self, node):
        if self.elementwise(node):
            return
        a, b = (self.views.get(n) for n in node.input)
        if not (isinstance(a, IntView) and isinstance(b, IntView)):
            self.fail(node, "residual add of a float tensor: both operands must come from quantizers")
        if a.scale != b.scale:
            self.fail(node, f"residual add of different scales ({a.scale:g} and {b.scale:g}): quantize both "
                            f"operands with the same quantizer")
        if a.bipolar or b.bipolar:
            self.fail(node, "residual add of bipolar tensors is not supported")
        self.views[node.output[0]] = _PendingSum(a, b, node.name, node.output[0])

    def materialize_sum(self, s: "_PendingSum") -> IntView:
        """The residual sum as an integer tensor: an AddSat whose output datatype holds every sum
        (one bit more than its operands'), so it never saturates; later readers of the sum see it."""
        lo, hi = s.a.lo + s.b.lo, s.a.hi + s.b.hi
        shape = self.tensors[s.a.tensor].shape
        out = self.new_tensor(s.output.replace("_out0", ""), shape, lo, hi)
        self.add_layer("AddSat", s.node, [s.a.tensor, s.b.tensor], [out])
        view = IntView(out, s.a.scale, lo, hi)
        self.views[s.output] = view
        return view

    def saturating_add(self, node, s: "_PendingSum", scale: float, lo: int, hi: int):
        if scale != s.a.scale:
            self.fail(node, f"the sum of two scale-{s.a.scale:g} operands is re-quantized to scale {scale:g}: "
                            f"use the operands' quantizer after the add")
        shape = self.tensors[s.a.tensor].shape
        out = self.new_tensor(node.output[0].replace("_out0", ""), shape, lo, hi)
        self.add_layer("AddSat", node.name, [s.a.tensor, s.b.tensor], [out])
        self.probes[node.output[0]] = (out, scale, False)
        self.views[node.output[0]] = IntView(out, scale, lo, hi)

    # ------------------------------------------------------------ layers

    def on_Pad(self, node):
        v = self.int_input(node)
        pads = self.const(node.input[1])
        value = self.const(node.input[2]) if len(node.input) > 2 and node.input[2] else np.zeros(())
        mode = _attrs(node).get("mode", b"constant")
        if mode not in (b"constant", "constant") or pads is None or value is None:
            self.fail(node, "only constant padding by constant amounts is supported")
        p = pads.reshape(2, -1)
        amount = int(p[0, 2])
        if p[:, :2].any() or not (p[:, 2:] == amount).all():
            self.fail(node, f"padding must be the same on all four sides of H and W (got {pads.tolist()})")
        val = float(value)
        if v.bipolar and val not in (-1.0, 1.0):
            self.fail(node, f"a bipolar tensor can only be padded with -1 or +1, not {val:g}")
        ival = val / v.scale
        if not v.bipolar and (ival != round(ival) or not v.lo <= ival <= v.hi):
            self.fail(node, f"pad value {val:g} is not on the tensor's integer grid")
        self.views[node.output[0]] = IntView(v.tensor, v.scale, v.lo, v.hi, v.bipolar, (amount, int(round(ival))))

    def on_Conv(self, node):
        v = self.int_input(node)
        w = self.views.get(node.input[1])
        if not isinstance(w, Weights):
            self.fail(node, "weights must come from a BipolarQuant of a constant (±1)")
        a = _attrs(node)
        if a.get("group", 1) != 1 or any(d != 1 for d in a.get("dilations", [1, 1])):
            self.fail(node, "grouped or dilated convolutions are not supported")
        kh, kw = a["kernel_shape"]
        sh, sw = a.get("strides", [1, 1])
        pads = a.get("pads", [0, 0, 0, 0])
        if kh != kw or sh != sw or len(set(pads)) != 1:
            self.fail(node, "only square kernels, equal strides and equal padding are supported")
        if len(node.input) > 2:
            self.fail(node, "convolution bias is not supported (fold it into the following quantizer)")
        pad, pad_value = (v.pad if v.pad else (0, 0))
        if pads[0]:
            if v.pad:
                self.fail(node, "both an explicit Pad and the convolution's own padding")
            if v.bipolar:
                self.fail(node, "zero padding of a bipolar tensor: 0 is not a bipolar value (pad with -1 explicitly)")
            pad, pad_value = pads[0], 0
            if not v.lo <= 0 <= v.hi:
                self.fail(node, "zero padding outside the input's integer range")
        h, wd, c = self.tensors[v.tensor].shape
        cout = w.signs.shape[0]
        ho, wo = (h + 2 * pad - kh) // sh + 1, (wd + 2 * pad - kw) // sw + 1
        mw = kh * kw * c
        win = self.new_tensor(f"{node.name}_window", (ho, wo, mw), min(v.lo, pad_value), max(v.hi, pad_value), v.bipolar)
        self.add_layer("SlidingWindow", f"{node.name}_swg", [v.tensor], [win], kernel=kh, stride=sh, pad=pad,
                       pad_value=pad_value)
        weights = w.signs.transpose(0, 2, 3, 1).reshape(cout, mw)  # OIHW -> (O, ky·kx·c)
        self.matrix_vector(node, win, weights, w.scale, v, (ho, wo, cout), mw)

    def matrix_vector(self, node, win: str, weights: np.ndarray, wscale: np.ndarray, v: IntView, shape, mw: int,
                      flatten: bool = False):
        key = f"{node.name}.weights"
        self.arrays[key] = weights.astype(np.int8)
        bound = mw * max(abs(v.lo), abs(v.hi))
        acc = self.new_tensor(f"{node.name}_acc", shape, -bound, bound)
        attrs = {"weights": key, **({"flatten": True} if flatten else {})}
        self.add_layer("MatrixVector", node.name, [win], [acc], **attrs)
        view = IntView(acc, v.scale, -bound, bound)
        ws = np.asarray(wscale, dtype=np.float32)
        if np.all(ws == 1):
            self.views[node.output[0]] = view
        else:  # per-output-channel weight scale: a multiply after the ±1 accumulation
            self.views[node.output[0]] = Pending(view, [("Mul", ws.reshape(-1))])

    def on_MatMul(self, node):
        v = self.int_input(node)
        w = self.views.get(node.input[1])
        if not isinstance(w, Weights):
            self.fail(node, "weights must come from a BipolarQuant of a constant (±1)")
        signs = w.signs.T  # (in, out) -> (out, in)
        if v.flat_from is not None:  # NCHW flatten order (c, h, w) -> the IR's (h, w, c)
            c, h, wd = v.flat_from
            signs = signs.reshape(-1, c, h, wd).transpose(0, 2, 3, 1).reshape(signs.shape[0], -1)
        scale = w.scale.reshape(-1) if w.scale.size > 1 else w.scale
        self.matrix_vector(node, v.tensor, signs, scale, v, (signs.shape[0],), signs.shape[1],
                           flatten=len(self.tensors[v.tensor].shape) > 1)

    def on_Gemm(self, node):
        a = _attrs(node)
        if len(node.input) > 2 or a.get("transA", 0) or a.get("alpha", 1.0) != 1.0:
            self.fail(node, "only Gemm without bias, transA or alpha is supported")
        if a.get("transB", 0):
            w = self.views.get(node.input[1])
            if isinstance(w, Weights):
                self.views[node.input[1]] = Weights(w.signs.T, w.scale)
        self.on_MatMul(node)

    def pool_window(self, node, v: IntView) -> tuple[int, int, tuple[int, int, int]]:
        """(kernel, stride, output shape) of an unpadded, floor-mode pooling node."""
        a = _attrs(node)
        k, s = a["kernel_shape"][0], a.get("strides", a["kernel_shape"])[0]
        if any(a.get("pads", [0])) or a.get("ceil_mode", 0):
            self.fail(node, "padded or ceil-mode pooling is not supported")
        h, w, c = self.tensors[v.tensor].shape
        return k, s, ((h - k) // s + 1, (w - k) // s + 1, c)

    def on_MaxPool(self, node):
        v = self.int_input(node)
        k, s, shape = self.pool_window(node, v)
        out = self.new_tensor(node.name, shape, v.lo, v.hi, v.bipolar)
        self.add_layer("MaxPool", node.name, [v.tensor], [out], kernel=k, stride=s)
        self.views[node.output[0]] = IntView(out, v.scale, v.lo, v.hi, v.bipolar)

    def on_AveragePool(self, node):
        v = self.int_input(node)
        k, s, shape = self.pool_window(node, v)
        n = k * k
        if n & (n - 1):
            self.fail(node, f"average over {k}x{k} = {n} values is not exact in float (use a power of two)")
        out = self.new_tensor(node.name, shape, n * v.lo, n * v.hi)
        self.add_layer("SumPool", node.name, [v.tensor], [out], kernel=k, stride=s)
        self.views[node.output[0]] = IntView(out, v.scale / n, n * v.lo, n * v.hi)

    def on_GlobalAveragePool(self, node):
        v = self.int_input(node)
        h, w, c = self.tensors[v.tensor].shape
        n = h * w
        if n & (n - 1):
            self.fail(node, f"average over {h}x{w} = {n} values is not exact in float (use a power of two)")
        out = self.new_tensor(node.name, (c,), n * v.lo, n * v.hi)
        self.add_layer("GlobalSumPool", node.name, [v.tensor], [out])
        self.views[node.output[0]] = IntView(out, v.scale / n, n * v.lo, n * v.hi, flat_from=None)

    def on_Flatten(self, node):
        v = self.views.get(node.input[0])
        pending = v if isinstance(v, Pending) else None
        v = pending.src if pending else self.int_input(node)
        shape = self.tensors[v.tensor].shape
        if len(shape) == 3:  # remember the NCHW order the following matrix expects
            h, w, c = shape
            v = IntView(v.tensor, v.scale, v.lo, v.hi, v.bipolar, flat_from=(c, h, w))
        if pending:
            if any(np.asarray(c).size > 1 for _, c in pending.ops) and len(shape) == 3:
                self.fail(node, "flattening a per-channel float chain is not supported")
            self.views[node.output[0]] = Pending(v, pending.ops)
        else:
            self.views[node.output[0]] = v

    on_Reshape = on_Flatten

    def on_Concat(self, node):
        views = [self.int_input(node, i) for i in range(len(node.input))]
        if _attrs(node).get("axis") != 1:
            self.fail(node, "only channel concatenation is supported")
        if len({v.scale for v in views}) != 1 or len({v.bipolar for v in views}) != 1:
            self.fail(node, "concatenated tensors must share one scale and datatype")
        lo, hi = min(v.lo for v in views), max(v.hi for v in views)
        h, w, _ = self.tensors[views[0].tensor].shape
        c = sum(self.tensors[v.tensor].shape[-1] for v in views)
        out = self.new_tensor(node.name, (h, w, c), lo, hi, views[0].bipolar)
        self.add_layer("Concat", node.name, [v.tensor for v in views], [out])
        self.views[node.output[0]] = IntView(out, views[0].scale, lo, hi, views[0].bipolar)

    # ------------------------------------------------------------ the end

    def finish(self) -> Graph:
        out_name = self.m.graph.output[0].name
        v = self.views.get(out_name)
        if isinstance(v, IntView):
            v = Pending(v)
        if not isinstance(v, Pending) or len(self.tensors[v.src.tensor].shape) != 1:
            raise LoweringError(f"graph output '{out_name}': expected class scores computed from integer accumulators")
        logits = v.src.tensor
        # The float logits are the accumulators × scale followed by the elementwise chain,
        # applied on the host exactly as the model does. A positive (negative) scalar chain
        # keeps (reverses) the order, so the label is an argmax (argmin) in hardware.
        ops = [(op, np.asarray(c, dtype=np.float32).reshape(-1).tolist()) for op, c in v.ops]
        self.meta["logits"] = {"scale": v.src.scale, "ops": ops}
        label = None
        if all(len(c) == 1 and op in ("Mul", "Div", "Add", "Sub") for op, c in ops):
            sign = np.sign(v.src.scale) * np.prod([np.sign(c[0]) for op, c in ops if op in ("Mul", "Div")] or [1.0])
            if sign != 0:
                label = self.new_tensor("label", (), 0, self.tensors[logits].shape[0])
                self.add_layer("LabelSelect", "label_select", [logits], [label], largest=bool(sign > 0))
        # Where every quantizer's output lives in the IR, so golden models can compare
        # internal integers too (not only the final scores); PruneProbes drops those
        # that later passes merge away.
        self.meta["probes"] = {q: {"ir": t, "scale": sc, "bipolar": b} for q, (t, sc, b) in self.probes.items()}
        outputs = {"logits": logits}
        if label:
            outputs["label"] = label
        if self.input is None:
            raise LoweringError("the graph has no unsigned 8-bit input quantizer")
        return Graph(self.tensors, self.layers, self.input, outputs, self.arrays, self.meta)


@dataclass
class _PendingSum:
    a: IntView
    b: IntView
    node: str = ""       # the QONNX Add node
    output: str = ""     # and its output tensor


def _prelu(x: np.ndarray, slope: np.ndarray) -> np.ndarray:
    """ONNX PRelu and torch.prelu in float32: x where x ≥ 0, slope·x (one rounding) below."""
    return np.where(x < 0, x * slope, x).astype(np.float32)


# the float chain's ops, each one correctly rounded float32 operation as in PyTorch and onnxruntime
_FLOAT32_OPS = {"Mul": np.multiply, "Add": np.add, "Sub": np.subtract, "Div": np.divide, "PRelu": _prelu}


# qonnx's own transformations that prepare the graph. BatchNormToAffine computes
# A = γ/sqrt(var+ε), B = β − A·mean in float32, as PyTorch's inference kernel does, so the
# Mul/Add chain it leaves is folded into thresholds exactly like the model's own.
QONNX_PREPARE = (InferShapes(), GiveUniqueNodeNames(), BatchNormToAffine())


def lower(model: ModelWrapper) -> Graph:
    """QONNX (cleaned, batch 1) -> IR Graph; raises LoweringError naming the node it cannot map.

    The chain: qonnx preparation (QONNX_PREPARE) -> translation to the IR (Lowering) ->
    IR passes (build_flow.ir_passes.IR_PASSES); the graph records the steps it went through.
    """
    for step in QONNX_PREPARE:
        model = model.transform(step)
    graph = Lowering(model).run()
    for step in IR_PASSES:
        graph = graph.transform(step)
    graph.meta["passes"] = ([type(s).__name__ for s in QONNX_PREPARE] + ["Lowering"]
                            + [type(s).__name__ for s in IR_PASSES])
    return graph
