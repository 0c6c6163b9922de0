"""The student's post-add functions (``model.post_add``) for FINN: the IR's thresholds, before FINN's conversion.

With ``model.post_add: affine | rprelu`` every Bi-Real block exports as

    Add(two activations on one grid) -> Mul, Add (affine) | Sub, PRelu, Add (rprelu) -> Quant

FINN's streamlining has no rule for a PRelu (and no FINN HW layer computes one), and it would
fold an affine chain into the quantizer's analytic thresholds in float32. The project's IR has
already folded the whole chain and the quantizer into per-channel integer thresholds on the
exact integer sum (build_flow/lower.py: an AddSat one bit wider than its operands, then a
Threshold layer). `PostAddChainsToMultiThreshold` puts exactly those into the QONNX graph, in
the form FINN's own conversion gives a quantizer:

    Add -> MultiThreshold(T · s, out_dtype INTn) -> Add(y_min) -> Mul(s_out)

with T the IR's thresholds, s the add operands' (power-of-two) grid scale, so T · s is exact in
float32 and the graph computes the same values as before (tests/test_finn_backend.py checks it
with qonnx's execution). FINN then treats it like the plain Bi-Real add: the operands' scale
moves past the add into the thresholds (T · s / s = T), the add becomes AddStreams and the
MultiThreshold a Thresholding layer, which ``ExactThresholdsFromIR`` maps back onto the IR's
Threshold layer (the quantizer's tag moves onto the MultiThreshold).

FINN-free (qonnx, onnx and numpy only), so the project's suite tests it without FINN.
"""
from __future__ import annotations

import numpy as np
from onnx import helper
from qonnx.transformation.base import Transformation

from build_flow.ir import Graph, dtype_range

from .exact_thresholds import TAG, ThresholdMismatch, ir_thresholds

CHAIN_OPS = ("Mul", "Add", "Sub", "Div", "PRelu")   # what the lowering folds into a chain (a constant second input)


def _grid_scale(model, tensor: str) -> float | None:
    """The scalar scale of the quantizer producing `tensor` (through a Concat of equal ones), or None."""
    node = model.find_producer(tensor)
    if node is None:
        return None
    if node.op_type == "Quant":
        s = model.get_initializer(node.input[1])
        return float(np.asarray(s).reshape(-1)[0]) if s is not None and np.asarray(s).size == 1 else None
    if node.op_type == "Concat":
        scales = {_grid_scale(model, i) for i in node.input}
        return scales.pop() if len(scales) == 1 else None
    return None


def post_add_chains(model) -> list[tuple]:
    """(add, [chain nodes], quant) for every add of two activations followed by a non-empty chain of
    elementwise ops by constants and a Quant, each tensor read once."""
    found = []
    for add in model.get_nodes_by_op_type("Add"):
        if any(model.get_initializer(i) is not None for i in add.input):
            continue
        chain, tensor = [], add.output[0]
        while True:
            readers = model.find_consumers(tensor) or []
            if len(readers) != 1:
                break
            nxt = readers[0]
            if (nxt.op_type in CHAIN_OPS and len(nxt.input) == 2 and nxt.input[0] == tensor
                    and model.get_initializer(nxt.input[1]) is not None):
                chain.append(nxt)
                tensor = nxt.output[0]
                continue
            if chain and nxt.op_type == "Quant":
                found.append((add, chain, nxt))
            break
    return found


class PostAddChainsToMultiThreshold(Transformation):
    """Every post-add chain + Quant becomes the MultiThreshold (+ bias and scale) of the IR's exact
    thresholds (module doc). `graph` is the IR of the same export (the quantizers' outputs are found
    through its probes, by the tag step_bnn_prepare gives each Quant, or by the Quant's own output).
    A qonnx Transformation: ``model.transform(PostAddChainsToMultiThreshold(graph))``."""

    def __init__(self, graph: Graph):
        super().__init__()
        self.graph = graph

    def apply(self, model):
        found = post_add_chains(model)
        # the operands' scales first: a replaced quantizer is one operand of the next block's add
        scales = [{_grid_scale(model, i) for i in add.input} for add, _, _ in found]
        for (add, chain, quant), s in zip(found, scales):
            self.replace(model, add, chain, quant, s.pop() if len(s) == 1 else None)
        return model, False   # every chain in one pass; none is left

    def replace(self, model, add, chain, quant, s_in: float | None) -> None:
        where = f"Quant '{quant.name}' after the post-add chain {', '.join(n.name for n in chain)}"
        tensor = quant.doc_string[len(TAG):] if quant.doc_string.startswith(TAG) else quant.output[0]
        ir = ir_thresholds(self.graph, tensor)
        layer = self.graph.producer(self.graph.meta.get("probes", {}).get(tensor, {}).get("ir", ""))
        if ir is None or layer is None or layer.op != "Threshold":
            raise ThresholdMismatch(f"{where}: no Threshold layer of the IR computes '{tensor}' (are the QONNX file "
                                    f"and the IR from the same export?)")
        if np.any(ir.direction != 1):
            raise ThresholdMismatch(f"{where}: IR layer '{ir.layer}' has decreasing channels, which a MultiThreshold "
                                    f"cannot express")
        if s_in is None or s_in <= 0:
            raise ThresholdMismatch(f"{where}: the add '{add.name}' does not read two quantizers of one scale")
        s_out = model.get_initializer(quant.input[1])
        out_dtype = self.graph.tensors[layer.outputs[0]].dtype
        if out_dtype == "BIPOLAR" or s_out is None or np.asarray(s_out).size != 1:
            raise ThresholdMismatch(f"{where}: expected a scalar-scale integer quantizer (IR output {out_dtype})")
        lo, hi = dtype_range(out_dtype)
        if ir.values.shape[1] != hi - lo or ir.y_min != lo:
            raise ThresholdMismatch(f"{where}: IR layer '{ir.layer}' has {ir.values.shape[1]} thresholds from "
                                    f"{ir.y_min}, {out_dtype} needs {hi - lo} from {lo}")
        thresholds = (ir.values.astype(np.float64) * s_in).astype(np.float32)   # exact: s_in is a power of two
        shape = model.get_tensor_shape(quant.output[0])
        t_name = model.make_new_valueinfo_name()
        model.set_initializer(t_name, thresholds)
        nodes = []
        current = model.make_new_valueinfo_name()
        model.set_tensor_shape(current, shape)
        nodes.append(helper.make_node("MultiThreshold", [add.output[0], t_name], [current],
                                      domain="qonnx.custom_op.general", out_dtype=out_dtype,
                                      name=f"MultiThreshold_{quant.name}", doc_string=quant.doc_string or None))
        for op, value in (("Add", float(lo)), ("Mul", float(np.asarray(s_out).reshape(-1)[0]))):
            if value == (0.0 if op == "Add" else 1.0):
                continue
            c_name = model.make_new_valueinfo_name()
            model.set_initializer(c_name, np.asarray(value, dtype=np.float32))
            nxt = model.make_new_valueinfo_name()
            model.set_tensor_shape(nxt, shape)
            nodes.append(helper.make_node(op, [current, c_name], [nxt], name=f"{quant.name}_{op.lower()}"))
            current = nxt
        nodes[-1].output[0] = quant.output[0]
        g = model.graph
        at = list(g.node).index(chain[0])
        for n in chain + [quant]:
            g.node.remove(n)
        for k, n in enumerate(nodes):
            g.node.insert(at + k, n)
