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
* threshold datatypes: ``RoundAndClipThresholds`` types thresholds like their input, or leaves a
  threshold of exactly 0 as FLOAT32; here every integer threshold tensor gets the narrowest integer
  type holding its values (FINN's Thresholding refuses float thresholds);
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

from .folding import finn_folding_config, specialize_config, write_json

PLAN_FILE = "bnn_plan.json"


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
    UINT8 instead (FINN converts only signed identity quantizers)."""
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


class SetIntegerThresholdTypes:
    """Every MultiThreshold with an integer input and integral thresholds: thresholds typed as the
    narrowest integer type holding them (not FLOAT32, not the input's type, which can overflow)."""

    def __call__(self, model):
        for n in model.graph.node:
            if n.op_type != "MultiThreshold":
                continue
            if not model.get_tensor_datatype(n.input[0]).is_integer():
                continue
            t = model.get_initializer(n.input[1])
            if t is None or not np.array_equal(t, np.round(t)):
                continue
            lo, hi = int(t.min()), int(t.max())
            dt = DataType.get_smallest_possible(lo) if lo < 0 else DataType.get_smallest_possible(hi)
            while not (dt.allowed(lo) and dt.allowed(hi)):
                dt = DataType[f"INT{dt.bitwidth() + 1}"]
            model.set_tensor_datatype(n.input[1], dt)
        return model


def _streamline_residual(model):
    """The linear-transformation loop of residual graphs (scales past forks, then past adds)."""
    for _ in range(4):
        for t in (reorder.MoveScalarLinearPastInvariants(), Streamline(), reorder.MoveLinearPastFork(),
                  reorder.MoveLinearPastEltwiseAdd(), reorder.MoveScalarLinearPastInvariants(),
                  CollapseRepeatedMul(), reorder.MoveMulPastMaxPool(), absorb.AbsorbMulIntoMultiThreshold(),
                  absorb.AbsorbAddIntoMultiThreshold(), Streamline()):
            model = model.transform(t)
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
    model = SetIntegerThresholdTypes()(model)
    model = model.transform(InferDataLayouts())
    model = model.transform(RemoveUnusedTensors())
    if VerificationStepType.STREAMLINED_PYTHON in cfg._resolve_verification_steps():
        verify_step(model, cfg, "streamlined_python", need_parent=False)
    return model


def step_bnn_convert_to_hw(model, cfg):
    """Every node that has a FINN HW layer becomes one, residual joins and forks included."""
    model = model.transform(to_hw.InferAddStreamsLayer())
    model = model.transform(to_hw.InferDuplicateStreamsLayer())
    model = model.transform(to_hw.InferBinaryMatrixVectorActivation())
    model = model.transform(to_hw.InferQuantizedMatrixVectorActivation())
    model = model.transform(to_hw.InferLabelSelectLayer())
    model = model.transform(to_hw.InferThresholdingLayer())   # the input quantizer, the shortcut ones
    model = model.transform(InferDataLayouts())
    model = model.transform(to_hw.InferGlobalAccPoolLayer())
    model = model.transform(to_hw.InferConcatLayer())
    model = model.transform(to_hw.InferStreamingMaxPool())
    model = model.transform(to_hw.InferPool())
    model = model.transform(to_hw.InferConvInpGen())
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
