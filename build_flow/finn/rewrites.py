"""The graph rewrites of this project's FINN build, as qonnx Transformations: each is
``apply(model) -> (model, changed)`` and runs by ``model.transform(T())``, which repeats it until it
reports no change. They do what FINN's own transformations do not for a Bi-Real graph (the steps in
custom_steps.py say where each runs and why).

`Round` groups several transformations into one round that runs to a fixpoint (FINN's reorder rules
feed each other: a scale moved past a fork can then move past an add).
"""
from __future__ import annotations

import numpy as np
from onnx import helper
from qonnx.core.datatype import DataType
from qonnx.transformation.base import Transformation
from qonnx.transformation.remove import remove_node_and_rewire

from build_flow.ir import Graph

from .exact_thresholds import TAG, ThresholdMismatch, ir_thresholds, orient, reconcile, to_popcount, weight_signs
from .folding import write_json
from .threshold_types import threshold_type_name


class Round(Transformation):
    """`transforms` in order, each to its own fixpoint; the round repeats (through model.transform)
    while it still changes the graph, at most `max_rounds` times (FINN's reorder rules are not
    guaranteed to reach a fixpoint together)."""

    def __init__(self, *transforms, max_rounds: int = 8):
        super().__init__()
        self.transforms, self.max_rounds, self.rounds = transforms, max_rounds, 0

    def apply(self, model):
        before = model.model.SerializeToString()
        for t in self.transforms:
            model = model.transform(t)
        self.rounds += 1
        return model, model.model.SerializeToString() != before and self.rounds < self.max_rounds


class TagQuantizers(Transformation):
    """Each quantizer remembers, in its doc_string, the tensor it produces in the exported file: the
    key of its IR layer (ExactThresholdsFromIR finds it through FINN's renaming by this tag)."""

    def apply(self, model):
        for n in model.graph.node:
            if n.op_type in ("Quant", "BipolarQuant") and not n.doc_string.startswith(TAG):
                n.doc_string = TAG + n.output[0]
        return model, False


class CarryTagsToMultiThreshold(Transformation):
    """After FINN's QONNX -> FINN conversion: each quantizer's tag (`tags`: its output tensor -> tag)
    onto the MultiThreshold it became (FINN makes a new node; the tensor is now that of the
    MultiThreshold or of the scale and bias nodes behind it)."""

    def __init__(self, tags: dict[str, str]):
        super().__init__()
        self.tags = tags

    def apply(self, model):
        for tensor, tag in self.tags.items():
            node = model.find_producer(tensor)
            while node is not None and node.op_type in ("Mul", "Add") and model.get_initializer(node.input[1]) is not None:
                node = model.find_producer(node.input[0])
            if node is not None and node.op_type == "MultiThreshold":
                node.doc_string = tag
        return model, False


class PixelQuantToInputType(Transformation):
    """The pixel input's identity quantizer (UINT8, scale 1, zero point 0: what PixelInput exports) is an
    annotation, not an operation: it is removed and the graph input typed UINT8 instead (FINN converts
    only signed identity quantizers)."""

    def apply(self, model):
        iname = model.graph.input[0].name
        for n in model.graph.node:
            if n.op_type != "Quant" or n.input[0] != iname:
                continue
            scale, zeropt, bits = (model.get_initializer(i) for i in n.input[1:4])
            signed = next((a.i for a in n.attribute if a.name == "signed"), 1)
            if scale is None or zeropt is None or bits is None:
                continue
            if np.all(scale == 1) and np.all(zeropt == 0) and int(bits) == 8 and not signed:
                remove_node_and_rewire(model, n)
                model.set_tensor_datatype(iname, DataType["UINT8"])
                return model, True
        return model, False


class ExactThresholdsFromIR(Transformation):
    """Every tagged MultiThreshold takes the IR's exact integer thresholds (exact_thresholds.py: FINN's
    float derivation rounds ties up, the student rounds half to even). Writes exact_thresholds.json."""

    def __init__(self, graph: Graph, report: str | None = None):
        super().__init__()
        self.graph, self.report = graph, report

    def apply(self, model):
        graph = self.graph
        rows = []
        for n in model.graph.node:
            if n.op_type != "MultiThreshold" or not n.doc_string.startswith(TAG):
                continue
            tensor = n.doc_string[len(TAG):]
            ir = ir_thresholds(graph, tensor)
            if ir is None:   # nothing in the IR to check it against: FINN's thresholds stay
                rows.append({"node": n.name, "qonnx": tensor, "ir": None, "changed": 0})
                continue
            producer = model.find_producer(n.input[0])
            if ir.mw is not None:   # a MatrixVector layer: FINN's MatMul may carry negated weight columns
                if producer is None or producer.op_type not in ("MatMul", "XnorPopcountMatMul") \
                        or model.get_initializer(producer.input[1]) is None:
                    raise ThresholdMismatch(f"MultiThreshold '{n.name}': IR layer '{ir.layer}' is a MatrixVector "
                                            f"layer, but FINN's node reads {producer.op_type if producer else 'nothing'}")
                xnor = producer.op_type == "XnorPopcountMatMul"
                ir = orient(ir, weight_signs(ir, model.get_initializer(producer.input[1]), xnor))
                if xnor:
                    ir = to_popcount(ir)
            idt = model.get_tensor_datatype(n.input[0])
            new, changed = reconcile(n.name, model.get_initializer(n.input[1]), ir, int(idt.min()), int(idt.max()))
            model.set_initializer(n.input[1], new)
            rows.append({"node": n.name, "qonnx": tensor, "ir": ir.layer, "changed": changed})
        if not any(r["ir"] for r in rows):
            raise ThresholdMismatch(f"no MultiThreshold of the streamlined graph maps onto a threshold layer of the IR "
                                    f"({graph.meta.get('source', {}).get('name', 'the IR')}: are the QONNX file and the IR "
                                    f"from the same export?)")
        if self.report:
            write_json({"ir": graph.meta.get("source", {}), "nodes": rows}, self.report)
        changed = sum(r["changed"] for r in rows)
        print(f"exact thresholds: {sum(1 for r in rows if r['ir'])} MultiThresholds from the IR, "
              f"{changed} threshold values moved by a rounding tie; {sum(1 for r in rows if not r['ir'])} without IR thresholds")
        return model, False   # one pass: the IR's thresholds are final


class SetIntegerThresholdTypes(Transformation):
    """Every MultiThreshold with an integer input and integral thresholds: thresholds typed to hold their
    values and every input value (threshold_types.py: FINN's HLS Thresholding compares in the threshold
    type, so a narrower one truncates the input; FLOAT32 ones it refuses)."""

    def apply(self, model):
        for n in model.graph.node:
            if n.op_type != "MultiThreshold":
                continue
            idt = model.get_tensor_datatype(n.input[0])
            if not idt.is_integer():
                continue
            t = model.get_initializer(n.input[1])
            if t is None or not np.array_equal(t, np.round(t)):
                continue
            name = threshold_type_name(t.min(), t.max(), idt.min(), idt.max())
            model.set_tensor_datatype(n.input[1], DataType[name])
        return model, False   # a type per tensor: a second pass sets the same


def _perm(node) -> list[int]:
    return next((list(a.ints) for a in node.attribute if a.name == "perm"), [])


class BipolarPadToBits(Transformation):
    """A Pad of BINARY data with constant -1 pads with 0. ConvertBipolarMatMulToXnorPopcount turns the
    student's +-1 activations into bits (0 stands for -1) but leaves the Pad's -1, which a Python
    execution of the streamlined graph then rounds into the BINARY range at every image border."""

    def apply(self, model):
        for pad in model.get_nodes_by_op_type("Pad"):
            if len(pad.input) < 3 or not pad.input[2] or model.get_tensor_datatype(pad.input[0]) != DataType["BINARY"]:
                continue
            value = model.get_initializer(pad.input[2])
            if value is not None and np.all(np.asarray(value) == -1):
                model.set_initializer(pad.input[2], np.zeros_like(np.asarray(value)))
        return model, False   # every such Pad in one pass


class BipolarPadToFMPadding(Transformation):
    """``Transpose(NHWC->NCHW) -> Pad(0) -> Transpose(NCHW->NHWC)`` on integer data becomes one NHWC
    ``FMPadding`` (the student's -1 padding of binary activations is a Pad of 0 by then:
    BipolarPadToBits). Any other constant is left alone (the partition step then names the node)."""

    def apply(self, model):
        changed = False
        for pad in list(model.get_nodes_by_op_type("Pad")):
            before = model.find_producer(pad.input[0])
            after = model.find_consumers(pad.output[0]) or []
            if (before is None or before.op_type != "Transpose" or _perm(before) != [0, 3, 1, 2]
                    or len(after) != 1 or after[0].op_type != "Transpose" or _perm(after[0]) != [0, 2, 3, 1]):
                continue
            pads = model.get_initializer(pad.input[1])
            value = model.get_initializer(pad.input[2]) if len(pad.input) > 2 and pad.input[2] else 0
            dt = model.get_tensor_datatype(pad.input[0])
            value = float(np.asarray(value).reshape(-1)[0]) if value is not None else 0.0
            if pads is None or list(pads[[0, 1, 4, 5]]) != [0, 0, 0, 0]:
                continue
            if value != 0.0 or not dt.is_integer():
                continue
            nhwc = before.input[0]
            _, h, w, c = model.get_tensor_shape(nhwc)
            fm = helper.make_node("FMPadding", [nhwc], [after[0].output[0]], domain="finn.custom_op.fpgadataflow",
                                  backend="fpgadataflow", ImgDim=[h, w],
                                  Padding=[int(pads[2]), int(pads[3]), int(pads[6]), int(pads[7])],
                                  NumChannels=c, inputDataType=dt.name, SIMD=c, name=f"FMPadding_{pad.name}")
            changed = True
            graph = model.graph
            graph.node.insert(list(graph.node).index(pad), fm)
            graph.node.remove(pad)
            graph.node.remove(after[0])
            if not model.find_consumers(before.output[0]):
                graph.node.remove(before)
            model.set_tensor_datatype(fm.output[0], dt)
        return model, changed


class MoveScalarMulPastConcat(Transformation):
    """``Mul(a, s), Mul(b, s) -> Concat`` becomes ``Concat(a, b) -> Mul(s)`` when every input is a Mul by
    the same scalar (the Bi-Real downsampling shortcut: both halves carry the shortcut quantizer's
    scale). FINN has no such reorder; after it, MoveLinearPastEltwiseAdd takes the Mul past the add."""

    def apply(self, model):
        changed = False
        for concat in list(model.get_nodes_by_op_type("Concat")):
            muls = [model.find_producer(i) for i in concat.input]
            if not muls or any(m is None or m.op_type != "Mul" for m in muls):
                continue
            scales = [model.get_initializer(m.input[1]) for m in muls]
            if any(sc is None or np.asarray(sc).size != 1 for sc in scales):
                continue
            if len({float(np.asarray(sc).reshape(-1)[0]) for sc in scales}) != 1:
                continue
            if any(len(model.find_consumers(m.output[0]) or []) != 1 for m in muls):
                continue
            out = concat.output[0]
            mid = model.make_new_valueinfo_name()
            model.set_tensor_shape(mid, model.get_tensor_shape(out))
            for k, m in enumerate(muls):
                concat.input[k] = m.input[0]
            concat.output[0] = mid
            changed = True
            graph = model.graph
            new = helper.make_node("Mul", [mid, muls[0].input[1]], [out], name=f"{concat.name}_scale")
            graph.node.insert(list(graph.node).index(concat) + 1, new)
            for m in muls:
                graph.node.remove(m)
        return model, changed


class AveragePoolToSumPool(Transformation):
    """``Mul(s) -> AveragePool(k, stride k)`` on integer data (the Bi-Real downsampling shortcut)
    becomes ``QuantAvgPool2d`` summing each window exactly (obits = the accumulator's width, so no
    shift) followed by ``Mul(s / k^2)``: the sum is integer, and the scale then moves past the fork
    into both thresholds. FINN's InferPool turns QuantAvgPool2d into its Pool layer; a float
    AveragePool it does not take. The project's IR does the same (SumPool)."""

    def apply(self, model):
        changed = False
        for pool in list(model.get_nodes_by_op_type("AveragePool")):
            attrs = {a.name: helper.get_attribute_value(a) for a in pool.attribute}
            k, st = list(attrs.get("kernel_shape", [])), list(attrs.get("strides", [1, 1]))
            if len(k) != 2 or k[0] != k[1] or st != k or any(attrs.get("pads", [0, 0, 0, 0])):
                continue
            mul = model.find_producer(pool.input[0])
            if mul is None or mul.op_type != "Mul" or len(model.find_consumers(mul.output[0]) or []) != 1:
                continue
            scale = model.get_initializer(mul.input[1])
            dt = model.get_tensor_datatype(mul.input[0])
            if scale is None or np.asarray(scale).size != 1 or not dt.is_integer():
                continue
            kk = k[0] * k[0]
            ibits = dt.bitwidth()
            obits = int((2 ** ibits - 1) * kk).bit_length()
            summed = model.make_new_valueinfo_name()
            model.set_tensor_shape(summed, model.get_tensor_shape(pool.output[0]))
            qap = helper.make_node("QuantAvgPool2d", [mul.input[0]], [summed], domain="qonnx.custom_op.general",
                                   stride=k[0], kernel=k[0], ibits=ibits, obits=obits, signed=int(dt.signed()),
                                   data_layout="NCHW", name=f"SumPool_{pool.name}")
            new_scale = model.make_new_valueinfo_name()
            model.set_initializer(new_scale, (np.asarray(scale, dtype=np.float32) / kk).astype(np.float32))
            rescale = helper.make_node("Mul", [summed, new_scale], [pool.output[0]], name=f"{pool.name}_scale")
            changed = True
            graph = model.graph
            at = list(graph.node).index(mul)
            graph.node.insert(at, rescale)
            graph.node.insert(at, qap)
            graph.node.remove(mul)
            graph.node.remove(pool)
        return model, changed


class TransposesPastConcat(Transformation):
    """``Transpose(NHWC->NCHW)`` on every input of a channel ``Concat`` (axis 1) and
    ``Transpose(NCHW->NHWC)`` on its output: the same Concat on the NHWC tensors (last axis), which
    InferConcatLayer turns into StreamingConcat. Left by the thresholds of the downsampling shortcut."""

    def apply(self, model):
        changed = False
        for concat in list(model.get_nodes_by_op_type("Concat")):
            axis = next((a.i for a in concat.attribute if a.name == "axis"), None)
            ins = [model.find_producer(i) for i in concat.input]
            outs = model.find_consumers(concat.output[0]) or []
            if (axis != 1 or any(t is None or t.op_type != "Transpose" or _perm(t) != [0, 3, 1, 2] for t in ins)
                    or len(outs) != 1 or outs[0].op_type != "Transpose" or _perm(outs[0]) != [0, 2, 3, 1]):
                continue
            if any(len(model.find_consumers(t.output[0]) or []) != 1 for t in ins):
                continue
            changed = True
            graph = model.graph
            for k, t in enumerate(ins):
                concat.input[k] = t.input[0]
                graph.node.remove(t)
            concat.output[0] = outs[0].output[0]
            for a in concat.attribute:
                if a.name == "axis":
                    a.i = 3
            graph.node.remove(outs[0])
        return model, changed
