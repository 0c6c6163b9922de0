"""QONNX -> IR lowering: bit-exact against PyTorch, and clear refusals for what it cannot map."""
import numpy as np
import pytest
import torch
from brevitas.nn import QuantIdentity
from torch import nn

from build_flow.compile import compile_model, main as compile_main
from build_flow.ir import load_ir
from build_flow.lower import LoweringError
from build_flow.models import Selected, select_model
from model.layers import BinaryConv2d
from model.quantizers import InputQuant, ShortcutQuant
from verify.compare import logits_from_ir
from verify.golden_numpy import run_numpy

from helpers import random_pixels, tiny_student


def ir_logits(graph, x):
    out = run_numpy(graph, x.numpy().astype(np.uint8).transpose(0, 2, 3, 1))
    return logits_from_ir(out["logits"], graph.meta), out


@pytest.mark.parametrize("bits", [4, 8])
def test_student_ir_is_bit_exact_with_pytorch(tmp_path, bits):
    model = tiny_student(bits, seed=bits)
    _, graph = compile_model(Selected(model, (3, 32, 32), "tiny", "config"), tmp_path)
    ops = [l.op for l in graph.layers]
    for op in ("SlidingWindow", "MatrixVector", "Threshold", "Fork", "AddSat", "SumPool", "Concat", "GlobalSumPool",
               "LabelSelect"):
        assert op in ops, op
    x = random_pixels(24, seed=bits)
    with torch.no_grad():
        ref = model(x).numpy()
    logits, out = ir_logits(load_ir(tmp_path / "ir"), x)
    assert np.array_equal(logits, ref)
    assert np.array_equal(out["label"].reshape(-1), ref.argmax(1))


def test_negative_gamma_gives_decreasing_thresholds(tmp_path):
    model = tiny_student(4)
    _, graph = compile_model(Selected(model, (3, 32, 32), "tiny", "config"), tmp_path)
    directions = np.concatenate([graph.arrays[l.attrs["direction"]] for l in graph.layers if "direction" in l.attrs])
    assert (directions == 1).any() and (directions == -1).any()


class DifferentScales(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp = QuantIdentity(act_quant=InputQuant, return_quant_tensor=False)
        self.conv = BinaryConv2d(3, 4, 3, padding=1)
        self.q4 = QuantIdentity(act_quant=ShortcutQuant, bit_width=4, return_quant_tensor=False)
        self.q8 = QuantIdentity(act_quant=ShortcutQuant, bit_width=8, return_quant_tensor=False)

    def forward(self, x):
        y = self.conv(self.inp(x))
        return self.q4(self.q4(y) + self.q8(y)).mean((2, 3))


class PerInputChannelScale(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp = QuantIdentity(act_quant=InputQuant, return_quant_tensor=False)
        self.conv = BinaryConv2d(3, 4, 3, padding=1)
        self.register_buffer("norm", torch.tensor([0.5, 1.0, 2.0]).view(1, 3, 1, 1))

    def forward(self, x):
        return self.conv(self.inp(x) * self.norm).mean((2, 3))


class Unsupported(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp = QuantIdentity(act_quant=InputQuant, return_quant_tensor=False)
        self.conv = BinaryConv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return torch.sigmoid(self.conv(self.inp(x))).mean((2, 3))


@pytest.mark.parametrize("net, message", [
    (DifferentScales, "(Add): residual add of different scales (0.5 and 0.03125): quantize both operands with the same quantizer"),
    (PerInputChannelScale, "(Conv): its input is a float tensor (a Mul/Add after a quantizer that no quantizer re-quantizes): "
                           "per-channel scaling of a layer's input cannot be folded into ±1 weights"),
    (Unsupported, "(Sigmoid): unsupported op"),
])
def test_refusals_name_the_node_and_leave_no_ir(tmp_path, net, message, capsys, monkeypatch):
    sel = Selected(net().eval(), (3, 8, 8), "bad", "config")
    with pytest.raises(LoweringError) as err:
        compile_model(sel, tmp_path / "out")
    assert message in str(err.value) and str(err.value).startswith("node '")
    assert not (tmp_path / "out" / "ir").exists()
    # the command line prints that one line and exits non-zero
    monkeypatch.setattr("build_flow.compile.select_model", lambda *a, **k: sel)
    from model.errors import run_cli
    with pytest.raises(SystemExit) as exit_:
        run_cli(compile_main, ["--config", "x", "--out", str(tmp_path / "cli")])
    assert exit_.value.code == 2
    err_line = capsys.readouterr().err.strip()
    assert err_line.startswith("error: node '") and message in err_line and "\n" not in err_line
    assert not (tmp_path / "cli" / "ir").exists()


@pytest.mark.parametrize("peer, shape", [("cnv_1w1a", (3, 32, 32)), ("tfc_1w1a", (1, 28, 28))])
def test_peer_networks_lower_bit_exactly(tmp_path, peer, shape):
    sel = select_model(peer=peer, seed=1)
    assert sel.input_shape == shape
    _, graph = compile_model(sel, tmp_path)
    g = torch.Generator().manual_seed(2)
    x = torch.randint(0, 256, (8, *shape), generator=g).float()
    with torch.no_grad():
        ref = sel.model(x).numpy()
    logits, out = ir_logits(graph, x)
    assert np.array_equal(logits, ref)
    assert np.array_equal(out["label"].reshape(-1), ref.argmax(1))


def test_verify_table_on_real_images(tmp_path, capsys):
    """build_flow.verify_model's command line: every stage bit-exact on real training images."""
    import os

    import yaml

    from build_flow.verify_model import main as compare_main

    data = os.environ.get("BNN_DATA", "../shared/datasets/cifar10-jpeg/train.zip")
    if not os.path.exists(data):
        pytest.skip(f"real images not found at {data} (set BNN_DATA)")
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump({"name": "tiny", "model": {"widths": [8, 16], "blocks": [1, 2], "shortcut_bits": 8}}))
    assert compare_main(["--config", str(cfg), "--data", data, "--images", "32", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "32 real images from" in out and "bit-exact: every stage agrees on every image" in out
    for stage in ("PyTorch", "QONNX", "IR numpy", "IR onnxruntime"):
        assert stage in out


def test_compare_catches_an_internal_difference(tmp_path):
    """A wrong threshold inside the net is reported, even where the final scores might hide it."""
    from verify.compare import run_stages

    model = tiny_student(4, seed=5)
    qonnx_model, graph = compile_model(Selected(model, (3, 32, 32), "tiny", "config"), tmp_path)
    images = random_pixels(4, seed=9).numpy().astype(np.uint8)
    assert all(r.mismatches == 0 for r in run_stages(model, qonnx_model, graph, images))
    first = next(l for l in graph.layers if l.op == "MatrixVector" and "thresholds" in l.attrs)
    graph.arrays[first.attrs["thresholds"]] = graph.arrays[first.attrs["thresholds"]] + 3
    bad = {r.stage: r.mismatches for r in run_stages(model, qonnx_model, graph, images)}
    assert bad["IR numpy (golden)"] == 4 and bad["QONNX (qonnx execute_onnx)"] == 0


def test_compare_runs_qonnx_on_a_prefix_and_checks_onnxruntimes_internal_integers(tmp_path, monkeypatch):
    """qonnx_images limits the slow QONNX stage; every other stage sees every image, and onnxruntime's
    internal tensors are compared with IR numpy's on each: one changed value in one image is caught."""
    import verify.golden_onnx
    from verify.compare import run_stages

    model = tiny_student(4, seed=5)
    qonnx_model, graph = compile_model(Selected(model, (3, 32, 32), "tiny", "config"), tmp_path)
    images = random_pixels(6, seed=9).numpy().astype(np.uint8)
    res = {r.stage: r for r in run_stages(model, qonnx_model, graph, images, chunk=4, qonnx_images=3)}
    assert res["QONNX (qonnx execute_onnx)"].images == 3 and res["IR numpy (golden)"].images == 6
    assert res["IR onnxruntime"].images == 6 and all(r.mismatches == 0 for r in res.values())
    assert "internal integer tensors equal to IR numpy" in res["IR onnxruntime"].note
    real = verify.golden_onnx.run_onnxruntime

    def one_changed(graph, images, internals=()):
        out = real(graph, images, internals=internals)
        out[internals[0]] = out[internals[0]].copy()
        out[internals[0]].reshape(len(images), -1)[1, 0] += 1    # image 1 of each chunk
        return out

    monkeypatch.setattr(verify.golden_onnx, "run_onnxruntime", one_changed)
    bad = {r.stage: r.mismatches for r in run_stages(model, qonnx_model, graph, images, chunk=4, qonnx_images=0)}
    assert bad["IR onnxruntime"] == 2 and bad["IR numpy (golden)"] == 0 and bad["QONNX (qonnx execute_onnx)"] == 0
