"""Integer activations of 2..4 bits where the signs are (``model.act_bits``; signed or unsigned,
narrow range or not, as QONNX's Quant expresses them): config checks, the quantizer itself, the
lowering (IR datatypes and thresholds), bit-exactness of PyTorch = QONNX = IR numpy = IR
onnxruntime with internal integers, and the RTL (the matrix unit's integer-input path) under
backpressure."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from build_flow.compile import compile_model
from build_flow.ir import dtype_range
from build_flow.models import Selected, briefly_trained_student, randomize_batchnorm
from model.config import config_from_dict
from model.errors import ConfigError
from model.phases import FIRST_PHASE, FULLY_BINARY, set_phase
from model.student import BiRealStudent, IntActivation, activation
from verify.compare import run_stages

DATA = os.environ.get("BNN_DATA", "../shared/datasets/cifar10-jpeg/train.zip")
# (bits, signed, narrow) -> the integer range of the activations
VARIANTS = {(2, True, False): (-2, 1), (3, False, False): (0, 7), (4, True, True): (-7, 7), (2, False, True): (0, 2)}


def _student(bits, signed, narrow, seed=1):
    torch.manual_seed(seed)
    net = BiRealStudent((8, 16), (1, 2), 4, act_bits=bits, act_signed=signed, act_narrow=narrow)
    return randomize_batchnorm(net, seed).eval()


def _name(v):
    return f"{v[0]}bit-{'s' if v[1] else 'u'}{'-narrow' if v[2] else ''}"


@pytest.mark.parametrize("key, value, where", [
    ({"act_bits": 5}, 5, "model.act_bits"),
    ({"act_bits": 0}, 0, "model.act_bits"),
    ({"act_signed": False}, False, "model.act_signed"),     # 1 bit is the sign
    ({"act_narrow": True}, True, "model.act_narrow"),
])
def test_config_refuses_impossible_activations(key, value, where):
    with pytest.raises(ConfigError, match=rf"{where} = {value!r} is impossible"):
        config_from_dict({"model": {"arch": "bireal", **key}}, "t.yaml")
    with pytest.raises(ConfigError, match="only the bireal student has quantized activations"):
        config_from_dict({"model": {"arch": "resnet20", "act_bits": 2}}, "t.yaml")
    with pytest.raises(ValueError, match="1 bit .* or 2..4-bit integers, got 6"):
        activation(6)


@pytest.mark.parametrize("variant", list(VARIANTS), ids=_name)
def test_quantizer_takes_exactly_the_datatypes_levels(variant):
    bits, signed, narrow = variant
    lo, hi = VARIANTS[variant]
    act = IntActivation(bits, signed, narrow).eval()
    x = torch.linspace(-6, 6, 2001)
    y = act(x)
    scale = float(act.quant.act_quant.scale().detach())
    assert scale > 0 and np.log2(scale) == round(np.log2(scale))   # a power of two
    q = (y / scale).detach().numpy()
    assert np.array_equal(q, np.round(q)) and q.min() == lo and q.max() == hi
    assert len(np.unique(q)) == hi - lo + 1
    # progressive binarization's phase 1: hardtanh (clipped at 0 when unsigned), then the quantizer again
    net = _student(*variant)
    set_phase(net, FIRST_PHASE)
    block_act = net.stages[0][0].sign
    z = block_act(x)
    assert torch.equal(z, torch.clamp(x, -1.0 if signed else 0.0, 1.0))
    set_phase(net, FULLY_BINARY)
    assert torch.equal(block_act(x), y)


@pytest.mark.parametrize("variant", list(VARIANTS), ids=_name)
def test_lowering_and_golden_chain_are_bit_exact(tmp_path, variant):
    bits, signed, narrow = variant
    model = _student(*variant)
    qonnx_model, graph = compile_model(Selected(model, (3, 32, 32), "t", "config"), tmp_path)
    quants = [n for n in qonnx_model.graph.node if n.op_type == "Quant"]
    act_quants = [n for n in quants if {a.name: a.i for a in n.attribute}.get("signed") == int(signed)
                  and {a.name: a.i for a in n.attribute}.get("narrow") == int(narrow)]
    assert act_quants, "the activations export as QONNX Quant nodes with their signedness and range"
    # every conv after the stem reads the N-bit integers, padded with 0, through the integer path
    dtype = f"{'INT' if signed else 'UINT'}{bits}"
    convs = [l for l in graph.layers if l.op == "MatrixVector"][1:-1]
    assert convs and all(graph.tensors[l.inputs[0]].dtype == dtype for l in convs)
    windows = [graph.producer(l.inputs[0]) for l in convs]
    assert all(w.op == "SlidingWindow" and w.attrs["pad_value"] == 0 for w in windows)
    # their activations: one threshold per level of the datatype, y_min its minimum (a narrow
    # range gets an always- or never-passed threshold at the edge)
    acts = [graph.producer(w.inputs[0]) for w in windows]
    dlo, dhi = dtype_range(dtype)
    for a in acts:
        assert a.op == "Threshold" and a.attrs["y_min"] == dlo
        assert graph.arrays[a.attrs["thresholds"]].shape[1] == dhi - dlo
    images = np.random.default_rng(2).integers(0, 256, (16, 3, 32, 32)).astype(np.uint8)
    results = run_stages(model, qonnx_model, graph, images)
    assert [r.mismatches for r in results] == [0, 0, 0, 0], [(r.stage, r.mismatches, r.note) for r in results]
    assert "internal integer tensors compared" in results[2].note
    # the range the quantizer takes is the range the IR's tensors hold
    from verify.golden_numpy import run_numpy
    out = run_numpy(graph, np.ascontiguousarray(images.transpose(0, 2, 3, 1)), return_all=True)
    lo, hi = VARIANTS[variant]
    seen = np.concatenate([out[a.outputs[0]].reshape(-1) for a in acts])
    assert seen.min() >= lo and seen.max() <= hi and len(np.unique(seen)) > 1


@pytest.mark.skipif(not os.path.exists(DATA), reason=f"{DATA} not present")
def test_briefly_trained_integer_activation_student_is_bit_exact(tmp_path):
    """Trained weights, learned activation scales and BatchNorm statistics, 2-bit signed."""
    from verify.compare import load_images

    sel = briefly_trained_student(4, DATA, tmp_path / "train", images_per_class=20, act_bits=2)
    qonnx_model, graph = compile_model(sel, tmp_path / "c")
    images, _ = load_images(DATA, (3, 32, 32), 64, seed=3)
    results = run_stages(sel.model, qonnx_model, graph, images)
    assert [r.mismatches for r in results] == [0, 0, 0, 0]


@pytest.mark.parametrize("variant", [(2, True, False), (4, True, True), (3, False, False)], ids=_name)
def test_rtl_is_bit_exact_with_integer_activations(tmp_path, variant):
    from hw.generate import generate
    from hw.planner import plan
    from hw.rtlsim import simulate
    from verify.golden_numpy import run_numpy

    _, graph = compile_model(Selected(_student(*variant), (3, 32, 32), "t", "config"), tmp_path)
    design = generate(graph, plan(graph, 100, fps=5000), tmp_path / "rtl")
    top = Path(design["sources"][-1]).read_text()   # bnn_top.sv: the matrix units take N-bit integers
    assert f".IN_EW({variant[0]}), .IN_SIGNED({int(variant[1])}), .IN_BIPOLAR(0)" in top
    x = np.random.default_rng(4).integers(0, 256, (6, 32, 32, 3)).astype(np.uint8)
    golden = run_numpy(graph, x)
    res = simulate(design, x, in_stall=0.3, out_stall=0.3, seed=5, golden=golden)
    assert res.mismatches == 0
    assert np.array_equal(res.logits, golden["logits"]) and np.array_equal(res.labels, golden["label"].reshape(-1))
