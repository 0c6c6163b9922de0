"""The Bi-Real student: integer contract, export to QONNX and exact execution there."""
import numpy as np
import pytest
import torch
from qonnx.core.onnx_exec import execute_onnx

from build_flow.export import export_qonnx_model
from model.config import ModelConfig, load_config
from model.factory import build_model
from model.student import BiRealStudent, complexity

from helpers import random_pixels, tiny_student


def shortcut_integers(model, x):
    """Every stage output divided by its quantizer's scale."""
    feats = model.features(x)
    scales = [q.act_quant.scale().item() for q in model.stage_quants]
    return [f / s for f, s in zip(feats, scales)]


@pytest.mark.parametrize("bits", [4, 8])
def test_shortcut_values_are_n_bit_integers(bits):
    model = tiny_student(bits)
    with torch.no_grad():
        for ints in shortcut_integers(model, random_pixels(4)):
            assert torch.equal(ints, torch.round(ints))
            assert ints.min() >= -2 ** (bits - 1) and ints.max() <= 2 ** (bits - 1) - 1


def test_binary_branch_is_padded_with_minus_one():
    model = tiny_student()
    block = model.stages[0][0]
    seen = {}
    block.conv.register_forward_hook(lambda m, inp, out: seen.__setitem__("x", inp[0]))
    with torch.no_grad():
        model(random_pixels(1))
    x = seen["x"]
    assert set(x.unique().tolist()) == {-1.0, 1.0}
    border = torch.cat([x[..., 0, :].flatten(), x[..., -1, :].flatten(), x[..., :, 0].flatten(), x[..., :, -1].flatten()])
    assert torch.all(border == -1)


@pytest.mark.parametrize("bits", [4, 8])
def test_exported_qonnx_equals_pytorch_exactly(tmp_path, bits):
    model = tiny_student(bits, seed=bits)
    w = export_qonnx_model(model, tmp_path / "student.onnx")
    ops = [n.op_type for n in w.graph.node]
    assert "BipolarQuant" in ops and "Quant" in ops and "Div" not in ops
    assert not any(op == "BatchNormalization" for op in ops)  # BN arrives as exact Mul/Add
    x = random_pixels(6, seed=bits)
    with torch.no_grad():
        ref = model(x).numpy()
    iname, oname = w.graph.input[0].name, w.graph.output[0].name
    got = np.concatenate([execute_onnx(w, {iname: x[i:i + 1].numpy()})[oname] for i in range(len(x))])
    assert np.array_equal(got, ref)
    assert np.array_equal(got.argmax(1), ref.argmax(1))


def test_conv_weights_export_as_unit_bipolar(tmp_path):
    w = export_qonnx_model(tiny_student(), tmp_path / "s.onnx")
    for node in w.graph.node:
        if node.op_type == "BipolarQuant" and w.get_initializer(node.input[0]) is not None:
            assert np.all(w.get_initializer(node.input[1]) == 1.0)  # α moved to a Mul after the conv


def test_complexity_counts_shapes():
    model = BiRealStudent((32, 64, 128), (1, 2, 2))
    c = complexity(model)
    per = 9 * 32 * 32 * 32 * 32  # 32->32 at 32x32
    assert c.binary_macs == per + (per // 2 + per) * 2  # downsampling convs do half the MACs
    assert c.input_macs == 9 * 3 * 32 * 32 * 32
    assert c.head_macs == 128 * 10
    assert c.weight_bits == sum(m.weight.numel() for m in [model.stem, model.classifier]) + sum(
        b.conv.weight.numel() for s in model.stages for b in s)


def test_flagship_config_meets_mac_budget():
    cfg = load_config("configs/student-flagship.yaml")
    c = complexity(build_model(cfg.model))
    assert c.binary_macs <= 150e6


def test_bad_block_shapes_are_refused():
    with pytest.raises(ValueError):
        BiRealStudent((16, 48), (1, 1))
