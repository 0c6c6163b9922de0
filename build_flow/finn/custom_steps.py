"""Custom FINN build steps for this project's networks (CNV-style chains and Bi-Real residual nets).

Each step is ``step(model, cfg) -> model`` like FINN's own (finn.builder.build_dataflow_steps) and runs
in FINN's environment. What FINN's default steps do not do for a Bi-Real graph:

* the input: the UINT8 pixel quantizer becomes the graph input's datatype; a following input quantizer
  (CNV's x/255·2−1 to INT8) becomes the first Thresholding layer;
* the label select: ``TopK`` is inserted before conversion, so every verification step (Python,
  cppsim, rtlsim) compares the same thing, the predicted class; a positive scalar logit scale is
  absorbed into it (AbsorbScalarMulAddIntoTopK);
* streamlining around the residual adds: both operands of every add already share one quantizer, so
  the float scale multiplications in front of a fork and of an add are moved past them
  (``MoveLinearPastFork`` before ``MoveLinearPastEltwiseAdd``: the other order makes a circular graph)
  and absorbed into the thresholds of the shortcut re-quantization;
* exact thresholds: each quantizer is tagged with the tensor it produces, the tag follows it onto its
  MultiThreshold, and after streamlining every tagged MultiThreshold takes the IR's integer thresholds
  (exact_thresholds.py: FINN's analytic ones round ties up, the student rounds half to even);
* post-add functions (``model.post_add``): the float chain between a residual add and its quantizer
  (per-channel Mul/Add, or Sub/PRelu/Add) and the quantizer become one MultiThreshold with the IR's
  per-channel thresholds on the exact sum before FINN's conversion (post_add.py: FINN has no rule for
  a PRelu); FINN then makes the add an AddStreams and the MultiThreshold a Thresholding layer;
* threshold datatypes: ``RoundAndClipThresholds`` types thresholds like their input, or leaves a
  threshold of exactly 0 as FLOAT32; here every integer threshold tensor gets the narrowest integer
  type holding its values and its input's (FINN's Thresholding refuses float thresholds, and its HLS
  code truncates the input to the threshold type: threshold_types.py);
* conversion to HW layers for what the residual graph contains: ``AddStreams`` for the joins,
  ``DuplicateStreams`` for the forks, the input quantizer as the first ``Thresholding`` layer,
  ``Pool`` (average pool as a sum), ``StreamingConcat``, ``GlobalAccPool``, ``LabelSelect``;
* folding: the project's planner (``bnn_plan.json`` in the output folder, written by the CLI) mapped
  onto the partition's nodes as ``folding_config.json``, and every node specialized as HLS
  (``specialize_layers_config.json``), so cppsim runs every node as compiled C++.
"""
from __future__ import annotations

import json
import os

import numpy as np
from onnx import helper
from qonnx.core.datatype import DataType
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.bipolar_to_xnor import ConvertBipolarMatMulToXnorPopcount
from qonnx.transformation.fold_constants import FoldConstants
from qonnx.transformation.general import (
    GiveReadableTensorNames,
    GiveUniqueNodeNames,
    RemoveStaticGraphInputs,
    RemoveUnusedTensors,
    SortGraph,
)
from qonnx.transformation.infer_data_layouts import InferDataLayouts
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.transformation.insert_topk import InsertTopK
from qonnx.transformation.lower_convs_to_matmul import LowerConvsToMatMul

import finn.transformation.fpgadataflow.convert_to_hw_layers as to_hw
import finn.transformation.streamline.absorb as absorb
import finn.transformation.streamline.reorder as reorder
from finn.builder.build_dataflow_config import VerificationStepType
from finn.builder.build_dataflow_steps import verify_step
from finn.transformation.move_reshape import RemoveCNVtoFCFlatten
from finn.transformation.streamline import Streamline
from finn.transformation.streamline.collapse_repeated import CollapseRepeatedMul
from finn.transformation.streamline.round_thresholds import RoundAndClipThresholds

from .exact_thresholds import TAG, ThresholdMismatch, ir_thresholds, orient, reconcile, to_popcount, weight_signs
from .folding import finn_folding_config, specialize_config, write_json
from .post_add import PostAddChainsToMultiThreshold, post_add_chains
from .threshold_types import threshold_type_name

PLAN_FILE = "bnn_plan.json"


def ir_dir(cfg) -> str:
    """The project's IR of the model being built: BNN_IR_DIR (build.py sets it from --ir)."""
    path = os.environ.get("BNN_IR_DIR", "")
    if not path or not os.path.isfile(os.path.join(path, "graph.json")):
        raise FileNotFoundError(f"BNN_IR_DIR='{path}': no IR (graph.json) of the model; build.py --ir names it "
                                f"(python -m build_flow.compile writes it beside the QONNX file)")
    return path


def _tidy(model):
    for t in (InferShapes(), FoldConstants(), GiveUniqueNodeNames(), GiveReadableTensorNames(),
              InferDataTypes(), RemoveStaticGraphInputs()):
        model = model.transform(t)
    return model


def step_bnn_prepare(model, cfg):
    """Before FINN's conversion: the label select, and the input type.

    TopK goes in first, so that every verification step (Python, cppsim, rtlsim) compares the same
    thing, the predicted class. The pixel input's identity quantizer (UINT8, scale 1, zero point 0: what
    PixelInput exports) is an annotation, not an operation: it is removed and the graph input typed
    UINT8 instead (FINN converts only signed identity quantizers). Every quantizer is tagged first with
    the tensor it produces in the exported file, the key of its IR layer (exact thresholds, below)."""
    for n in model.graph.node:
        if n.op_type in ("Quant", "BipolarQuant") and not n.doc_string.startswith(TAG):
            n.doc_string = TAG + n.output[0]
    if post_add_chains(model):   # model.post_add: the IR's thresholds for each chain + quantizer (post_add.py)
        from build_flow.ir import load_ir
        model = PostAddChainsToMultiThreshold(load_ir(ir_dir(cfg)))(model)
    model = _tidy(model)
    model = model.transform(InsertTopK(k=1))
    model = _tidy(model)
    iname = model.graph.input[0].name
    for n in list(model.graph.node):
        if n.op_type != "Quant" or n.input[0] != iname:
            continue
        scale, zeropt, bits = (model.get_initializer(i) for i in n.input[1:4])
        signed = next((a.i for a in n.attribute if a.name == "signed"), 1)
        if scale is None or zeropt is None or bits is None:
            continue
        if np.all(scale == 1) and np.all(zeropt == 0) and int(bits) == 8 and not signed:
            for consumer in model.find_consumers(n.output[0]) or []:
                for k, i in enumerate(consumer.input):
                    if i == n.output[0]:
                        consumer.input[k] = iname
            model.graph.node.remove(n)
            model.set_tensor_datatype(iname, DataType["UINT8"])
    return _tidy(model)


def step_bnn_qonnx_to_finn(model, cfg):
    """FINN's step_qonnx_to_finn, with each quantizer's tag carried onto the MultiThreshold it becomes
    (FINN makes a new node; the quantizer's output is now that of the MultiThreshold or of the scale
    and bias nodes behind it)."""
    from qonnx.util.cleanup import cleanup_model
    from finn.builder.build_dataflow_steps import step_qonnx_to_finn

    model = cleanup_model(model)   # FINN's step starts with it: the tensor names below are its
    tags = {n.output[0]: n.doc_string for n in model.graph.node if n.doc_string.startswith(TAG)}
    model = step_qonnx_to_finn(model, cfg)
    for tensor, tag in tags.items():
        node = model.find_producer(tensor)
        while node is not None and node.op_type in ("Mul", "Add") and model.get_initializer(node.input[1]) is not None:
            node = model.find_producer(node.input[0])
        if node is not None and node.op_type == "MultiThreshold":
            node.doc_string = tag
    return model


class ExactThresholdsFromIR:
    """Every tagged MultiThreshold takes the IR's exact integer thresholds (exact_thresholds.py: FINN's
    float derivation rounds ties up, the student rounds half to even). Writes exact_thresholds.json."""

    def __init__(self, ir_dir: str, report: str | None = None):
        self.ir_dir, self.report = ir_dir, report

    def __call__(self, model):
        from build_flow.ir import load_ir

        graph = load_ir(self.ir_dir)
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
                                    f"in {self.ir_dir} (are the QONNX file and the IR from the same export?)")
        if self.report:
            write_json({"ir": str(self.ir_dir), "nodes": rows}, self.report)
        changed = sum(r["changed"] for r in rows)
        print(f"exact thresholds: {sum(1 for r in rows if r['ir'])} MultiThresholds from the IR, "
              f"{changed} threshold values moved by a rounding tie; {sum(1 for r in rows if not r['ir'])} without IR thresholds")
        return model


class SetIntegerThresholdTypes:
    """Every MultiThreshold with an integer input and integral thresholds: thresholds typed to hold their
    values and every input value (threshold_types.py: FINN's HLS Thresholding compares in the threshold
    type, so a narrower one truncates the input; FLOAT32 ones it refuses)."""

    def __call__(self, model):
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
        return model


def _perm(node) -> list[int]:
    return next((list(a.ints) for a in node.attribute if a.name == "perm"), [])


class BipolarPadToBits:
    """A Pad of BINARY data with constant -1 pads with 0. ConvertBipolarMatMulToXnorPopcount turns the
    student's +-1 activations into bits (0 stands for -1) but leaves the Pad's -1, which a Python
    execution of the streamlined graph then rounds into the BINARY range at every image border."""

    def __call__(self, model):
        for pad in model.get_nodes_by_op_type("Pad"):
            if len(pad.input) < 3 or not pad.input[2] or model.get_tensor_datatype(pad.input[0]) != DataType["BINARY"]:
                continue
            value = model.get_initializer(pad.input[2])
            if value is not None and np.all(np.asarray(value) == -1):
                model.set_initializer(pad.input[2], np.zeros_like(np.asarray(value)))
        return model


class BipolarPadToFMPadding:
    """``Transpose(NHWC->NCHW) -> Pad(0) -> Transpose(NCHW->NHWC)`` on integer data becomes one NHWC
    ``FMPadding`` (the student's -1 padding of binary activations is a Pad of 0 by then:
    BipolarPadToBits). Any other constant is left alone (the partition step then names the node)."""

    def __call__(self, model):
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
            graph = model.graph
            graph.node.insert(list(graph.node).index(pad), fm)
            graph.node.remove(pad)
            graph.node.remove(after[0])
            if not model.find_consumers(before.output[0]):
                graph.node.remove(before)
            model.set_tensor_datatype(fm.output[0], dt)
        return model


class MoveScalarMulPastConcat:
    """``Mul(a, s), Mul(b, s) -> Concat`` becomes ``Concat(a, b) -> Mul(s)`` when every input is a Mul by
    the same scalar (the Bi-Real downsampling shortcut: both halves carry the shortcut quantizer's
    scale). FINN has no such reorder; after it, MoveLinearPastEltwiseAdd takes the Mul past the add."""

    def __call__(self, model):
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
            graph = model.graph
            new = helper.make_node("Mul", [mid, muls[0].input[1]], [out], name=f"{concat.name}_scale")
            graph.node.insert(list(graph.node).index(concat) + 1, new)
            for m in muls:
                graph.node.remove(m)
        return model


class AveragePoolToSumPool:
    """``Mul(s) -> AveragePool(k, stride k)`` on integer data (the Bi-Real downsampling shortcut)
    becomes ``QuantAvgPool2d`` summing each window exactly (obits = the accumulator's width, so no
    shift) followed by ``Mul(s / k^2)``: the sum is integer, and the scale then moves past the fork
    into both thresholds. FINN's InferPool turns QuantAvgPool2d into its Pool layer; a float
    AveragePool it does not take. The project's IR does the same (SumPool)."""

    def __call__(self, model):
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
            graph = model.graph
            at = list(graph.node).index(mul)
            graph.node.insert(at, rescale)
            graph.node.insert(at, qap)
            graph.node.remove(mul)
            graph.node.remove(pool)
        return model


class TransposesPastConcat:
    """``Transpose(NHWC->NCHW)`` on every input of a channel ``Concat`` (axis 1) and
    ``Transpose(NCHW->NHWC)`` on its output: the same Concat on the NHWC tensors (last axis), which
    InferConcatLayer turns into StreamingConcat. Left by the thresholds of the downsampling shortcut."""

    def __call__(self, model):
        for concat in list(model.get_nodes_by_op_type("Concat")):
            axis = next((a.i for a in concat.attribute if a.name == "axis"), None)
            ins = [model.find_producer(i) for i in concat.input]
            outs = model.find_consumers(concat.output[0]) or []
            if (axis != 1 or any(t is None or t.op_type != "Transpose" or _perm(t) != [0, 3, 1, 2] for t in ins)
                    or len(outs) != 1 or outs[0].op_type != "Transpose" or _perm(outs[0]) != [0, 2, 3, 1]):
                continue
            if any(len(model.find_consumers(t.output[0]) or []) != 1 for t in ins):
                continue
            graph = model.graph
            for k, t in enumerate(ins):
                concat.input[k] = t.input[0]
                graph.node.remove(t)
            concat.output[0] = outs[0].output[0]
            for a in concat.attribute:
                if a.name == "axis":
                    a.i = 3
            graph.node.remove(outs[0])
        return model


def _streamline_residual(model):
    """The linear-transformation loop of residual graphs (scales past forks, then past adds)."""
    model = _tidy(AveragePoolToSumPool()(model))
    for _ in range(4):
        for t in (reorder.MoveScalarLinearPastInvariants(), Streamline(), reorder.MoveLinearPastFork(),
                  reorder.MoveLinearPastEltwiseAdd(), reorder.MoveScalarLinearPastInvariants(),
                  CollapseRepeatedMul(), reorder.MoveMulPastMaxPool(), absorb.AbsorbMulIntoMultiThreshold(),
                  absorb.AbsorbAddIntoMultiThreshold(), Streamline()):
            model = model.transform(t)
        model = _tidy(MoveScalarMulPastConcat()(model))
    return model


def step_bnn_streamline(model, cfg):
    """Streamlining for chains (FINN's default order) and for residual graphs (forks and adds)."""
    residual = any(n.op_type == "Add" and all(model.get_initializer(i) is None for i in n.input)
                   for n in model.graph.node)
    model = model.transform(absorb.AbsorbSignBiasIntoMultiThreshold())
    model = model.transform(Streamline())
    if residual:
        model = _streamline_residual(model)
    if model.get_nodes_by_op_type("Conv"):
        model = model.transform(LowerConvsToMatMul())
        model = model.transform(reorder.MakeMaxPoolNHWC())
        model = model.transform(absorb.AbsorbTransposeIntoMultiThreshold())
        model = model.transform(reorder.MakeMaxPoolNHWC())
        model = model.transform(absorb.AbsorbConsecutiveTransposes())
    model = model.transform(ConvertBipolarMatMulToXnorPopcount())
    model = model.transform(Streamline())
    if residual:
        model = _streamline_residual(model)
    for _ in range(3):  # transposes left between the lowered convs, forks and adds
        for t in (absorb.AbsorbTransposeIntoMultiThreshold(), reorder.MoveTransposePastFork(),
                  reorder.MoveTransposePastJoinAdd(), absorb.AbsorbConsecutiveTransposes(),
                  absorb.AbsorbTransposeIntoFlatten()):
            model = model.transform(t)
    model = model.transform(absorb.AbsorbScalarMulAddIntoTopK())
    model = model.transform(RoundAndClipThresholds())
    model = ExactThresholdsFromIR(ir_dir(cfg), os.path.join(cfg.output_dir, "exact_thresholds.json"))(model)
    model = SetIntegerThresholdTypes()(model)
    model = BipolarPadToBits()(model.transform(InferDataTypes()))
    model = model.transform(InferDataLayouts())
    model = model.transform(RemoveUnusedTensors())
    if VerificationStepType.STREAMLINED_PYTHON in cfg._resolve_verification_steps():
        verify_step(model, cfg, "streamlined_python", need_parent=False)
    return model


def step_bnn_convert_to_hw(model, cfg):
    """Every node that has a FINN HW layer becomes one, residual joins and forks included."""
    model = model.transform(to_hw.InferAddStreamsLayer())
    model = model.transform(to_hw.InferBinaryMatrixVectorActivation())
    model = model.transform(to_hw.InferQuantizedMatrixVectorActivation())
    model = model.transform(to_hw.InferLabelSelectLayer())
    model = model.transform(to_hw.InferThresholdingLayer())   # the input quantizer, the shortcut ones
    model = model.transform(InferDataLayouts())
    model = model.transform(to_hw.InferGlobalAccPoolLayer())
    # the global pool's 1/N, with the classifier's scale, goes past the classifier into the TopK
    for t in (reorder.MoveScalarLinearPastInvariants(), reorder.MoveScalarMulPastMatMul(),
              absorb.AbsorbScalarMulAddIntoTopK()):
        model = model.transform(t)
    model = model.transform(to_hw.InferConcatLayer())
    model = model.transform(to_hw.InferStreamingMaxPool())
    model = model.transform(to_hw.InferPool())
    model = model.transform(to_hw.InferConvInpGen())
    model = BipolarPadToFMPadding()(model)
    # transposes InferThresholdingLayer and InferPool put around the NCHW shortcut island; the forks
    # become DuplicateStreams only after them, so that each fork ends up on the NHWC stream
    for _ in range(3):
        model = model.transform(reorder.MoveTransposePastFork())
        model = model.transform(absorb.AbsorbConsecutiveTransposes())
        model = TransposesPastConcat()(model)
    model = model.transform(InferShapes())
    model = model.transform(to_hw.InferConcatLayer())
    model = model.transform(to_hw.InferDuplicateStreamsLayer())
    model = model.transform(to_hw.InferQuantizedMatrixVectorActivation())
    model = model.transform(to_hw.InferLabelSelectLayer())
    model = model.transform(RemoveCNVtoFCFlatten())
    model = model.transform(absorb.AbsorbConsecutiveTransposes())
    model = model.transform(InferShapes())
    model = model.transform(InferDataTypes())
    model = model.transform(SortGraph())
    model = model.transform(GiveUniqueNodeNames())
    model = model.transform(InferDataLayouts())
    return model


def _node_dicts(model) -> list[dict]:
    out = []
    for n in model.graph.node:
        attrs = {}
        for a in n.attribute:
            v = helper.get_attribute_value(a)
            attrs[a.name] = v.decode() if isinstance(v, bytes) else (list(v) if isinstance(v, (list, tuple)) else v)
        try:
            cycles = int(getCustomOp(n).get_exp_cycles())
        except Exception:  # noqa: BLE001 -- a node without a cycle model keeps the default rule
            cycles = None
        out.append({"name": n.name, "op_type": n.op_type, "inputs": list(n.input), "outputs": list(n.output),
                    "attrs": attrs, "cycles_at_1": cycles})
    return out


def step_bnn_specialize_config(model, cfg):
    """specialize_layers_config.json for the partition (all HLS); used by step_specialize_layers."""
    model = model.transform(GiveUniqueNodeNames())
    path = write_json(specialize_config(_node_dicts(model)), os.path.join(cfg.output_dir, "specialize_layers_config.json"))
    cfg.specialize_layers_config_file = str(path)
    return model


def step_bnn_folding(model, cfg):
    """folding_config.json from the project's planner (bnn_plan.json); used by step_apply_folding_config."""
    plan_path = os.path.join(cfg.output_dir, PLAN_FILE)
    if not os.path.isfile(plan_path):  # no plan: FINN's own target_fps folding
        from finn.builder.build_dataflow_steps import step_target_fps_parallelization
        return step_target_fps_parallelization(model, cfg)
    with open(plan_path) as f:
        plan = json.load(f)
    model = model.transform(GiveUniqueNodeNames())
    config = finn_folding_config(plan, _node_dicts(model))
    cfg.folding_config_file = str(write_json(config, os.path.join(cfg.output_dir, "folding_config.json")))
    return model
