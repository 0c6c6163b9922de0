"""Custom FINN build steps for this project's networks (CNV-style chains and Bi-Real residual nets).

Each step is ``step(model, cfg) -> model`` like FINN's own (finn.builder.build_dataflow_steps) and runs
in FINN's environment; the steps that read the project's IR take its folder as a third argument, which
build.py binds (``with_context``). The graph rewrites themselves are qonnx Transformations
(rewrites.py), run by ``model.transform``. What FINN's default steps do not do for a Bi-Real graph:

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

from onnx import helper
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

from build_flow.ir import load_ir

from .exact_thresholds import TAG
from .folding import finn_folding_config, specialize_config, write_json
from .post_add import PostAddChainsToMultiThreshold, post_add_chains
from .rewrites import (AveragePoolToSumPool, BipolarPadToBits, BipolarPadToFMPadding, CarryTagsToMultiThreshold,
                       ExactThresholdsFromIR, MoveScalarMulPastConcat, PixelQuantToInputType, Round,
                       SetIntegerThresholdTypes, TagQuantizers, TransposesPastConcat)

PLAN_FILE = "bnn_plan.json"


def _tidy(model):
    for t in (InferShapes(), FoldConstants(), GiveUniqueNodeNames(), GiveReadableTensorNames(),
              InferDataTypes(), RemoveStaticGraphInputs()):
        model = model.transform(t)
    return model


def step_bnn_prepare(model, cfg, ir_dir: str):
    """Before FINN's conversion: the label select, and the input type.

    TopK goes in first, so that every verification step (Python, cppsim, rtlsim) compares the same
    thing, the predicted class. The pixel input's identity quantizer becomes the input's UINT8 type
    (PixelQuantToInputType). Every quantizer is tagged first with the tensor it produces in the
    exported file, the key of its IR layer (exact thresholds, below); model.post_add's chains take
    the IR's thresholds (post_add.py)."""
    model = model.transform(TagQuantizers())
    if post_add_chains(model):
        model = model.transform(PostAddChainsToMultiThreshold(load_ir(ir_dir)))
    model = _tidy(model)
    model = model.transform(InsertTopK(k=1))
    model = _tidy(model)
    model = model.transform(PixelQuantToInputType())
    return _tidy(model)


def step_bnn_qonnx_to_finn(model, cfg):
    """FINN's step_qonnx_to_finn, with each quantizer's tag carried onto the MultiThreshold it becomes."""
    from qonnx.util.cleanup import cleanup_model
    from finn.builder.build_dataflow_steps import step_qonnx_to_finn

    model = cleanup_model(model)   # FINN's step starts with it: the tensor names below are its
    tags = {n.output[0]: n.doc_string for n in model.graph.node if n.doc_string.startswith(TAG)}
    model = step_qonnx_to_finn(model, cfg)
    return model.transform(CarryTagsToMultiThreshold(tags))


def _streamline_residual(model):
    """The linear-transformation round of residual graphs (scales past forks, then past adds), to a fixpoint."""
    model = _tidy(model.transform(AveragePoolToSumPool()))
    return model.transform(Round(
        reorder.MoveScalarLinearPastInvariants(), Streamline(), reorder.MoveLinearPastFork(),
        reorder.MoveLinearPastEltwiseAdd(), reorder.MoveScalarLinearPastInvariants(), CollapseRepeatedMul(),
        reorder.MoveMulPastMaxPool(), absorb.AbsorbMulIntoMultiThreshold(), absorb.AbsorbAddIntoMultiThreshold(),
        Streamline(), MoveScalarMulPastConcat(), InferShapes(), FoldConstants(), GiveUniqueNodeNames(),
        GiveReadableTensorNames(), InferDataTypes(), RemoveStaticGraphInputs()))


def step_bnn_streamline(model, cfg, ir_dir: str):
    """Streamlining for chains (FINN's default order) and for residual graphs (forks and adds), then
    the IR's exact thresholds and their integer types."""
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
    # transposes left between the lowered convs, forks and adds
    model = model.transform(Round(absorb.AbsorbTransposeIntoMultiThreshold(), reorder.MoveTransposePastFork(),
                                  reorder.MoveTransposePastJoinAdd(), absorb.AbsorbConsecutiveTransposes(),
                                  absorb.AbsorbTransposeIntoFlatten()))
    model = model.transform(absorb.AbsorbScalarMulAddIntoTopK())
    model = model.transform(RoundAndClipThresholds())
    model = model.transform(ExactThresholdsFromIR(load_ir(ir_dir), os.path.join(cfg.output_dir, "exact_thresholds.json")))
    model = model.transform(SetIntegerThresholdTypes())
    model = model.transform(InferDataTypes()).transform(BipolarPadToBits())
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
    model = model.transform(BipolarPadToFMPadding())
    # transposes InferThresholdingLayer and InferPool put around the NCHW shortcut island; the forks
    # become DuplicateStreams only after them, so that each fork ends up on the NHWC stream
    model = model.transform(Round(reorder.MoveTransposePastFork(), absorb.AbsorbConsecutiveTransposes(),
                                  TransposesPastConcat()))
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
