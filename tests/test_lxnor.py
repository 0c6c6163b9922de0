"""L-XNOR: the block order whose per-channel α reaches the loss (model.block_order bn_sign_conv),
and that it stays bit-exact through export, IR, both golden models and the RTL."""
import numpy as np
import pytest
import torch

from build_flow.compile import compile_model
from build_flow.ir import load_ir
from build_flow.models import Selected, randomize_batchnorm
from hw.generate import generate
from hw.planner import plan
from hw.rtlsim import simulate
from model.phases import FIRST_PHASE, FULLY_BINARY, set_phase
from model.student import BiRealStudent
from verify.compare import logits_from_ir
from verify.golden_numpy import run_numpy
from verify.golden_onnx import run_onnxruntime

from helpers import random_pixels


def student(order: str = "bn_sign_conv", seed: int = 0, bits: int = 4) -> BiRealStudent:
    torch.manual_seed(seed)
    return BiRealStudent((8, 16), (1, 2), shortcut_bits=bits, sign_bias=order == "sign_conv_bn", block_order=order)


def alphas(model):
    return [b.conv.quant_weight().scale for s in model.stages for b in s]


def loss_of(model, x, y):
    return torch.nn.functional.cross_entropy(model(x), y)


def test_alpha_gradient_matches_a_finite_difference():
    """Phase 1 (weights first) is differentiable in α: the autograd gradient of the loss with
    respect to one channel's log2 α equals a central difference, in float64."""
    model = student(seed=1).double().train()
    set_phase(model, FIRST_PHASE)
    x, y = random_pixels(8, seed=2).double(), torch.arange(8) % 10
    p = model.stages[1][0].conv.weight_quant.tensor_quant.scaling_impl.value
    torch.manual_seed(0)
    loss_of(model, x, y).backward()
    grad = p.grad.flatten()[3].item()
    h = 1e-6
    with torch.no_grad():
        p.view(-1)[3] += h
        up = loss_of(model, x, y).item()
        p.view(-1)[3] -= 2 * h
        down = loss_of(model, x, y).item()
        p.view(-1)[3] += h
    assert abs(grad) > 1e-4
    assert grad == pytest.approx((up - down) / (2 * h), rel=1e-4)


def test_alpha_changes_the_fully_binary_network_in_training():
    model = student(seed=2).train()
    set_phase(model, FULLY_BINARY)
    x, y = random_pixels(8, seed=3), torch.arange(8) % 10
    before = model(x).detach()
    loss_of(model, x, y).backward()
    grads = [b.conv.weight_quant.tensor_quant.scaling_impl.value.grad for s in model.stages for b in s]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)
    with torch.no_grad():
        model.stages[0][0].conv.weight_quant.tensor_quant.scaling_impl.value.add_(1.0)  # α ×2
    assert not torch.equal(model(x).detach(), before)


def test_legacy_order_cancels_alpha_in_training():
    """Why the order exists: in sign -> conv -> BN, train-mode BN(α·acc) does not depend on α."""
    model = student("sign_conv_bn", seed=2).train()
    set_phase(model, FULLY_BINARY)
    x = random_pixels(8, seed=3)
    before = model(x).detach()
    with torch.no_grad():
        model.stages[0][0].conv.weight_quant.tensor_quant.scaling_impl.value.mul_(2.0)
    assert torch.allclose(model(x).detach(), before, atol=1e-4)


def test_alpha_starts_at_mean_abs_weight_and_stays_positive():
    model = student(seed=4)
    for s in model.stages:
        for b in s:
            a = b.conv.quant_weight().scale.flatten()
            assert torch.allclose(a, b.conv.weight.abs().mean((1, 2, 3)), rtol=1e-5)
    with torch.no_grad():  # whatever the optimizer does to the log-domain parameter, α > 0
        model.stages[0][0].conv.weight_quant.tensor_quant.scaling_impl.value.fill_(-200.0)
    assert torch.all(model.stages[0][0].conv.quant_weight().scale > 0)


@pytest.mark.parametrize("used_before", [False, True])
def test_activations_first_resets_alpha_to_the_trained_weights(used_before):
    model = student(seed=5)
    if used_before:  # Brevitas has initialized α from the weights drawn at construction
        model.train()(random_pixels(2))
        model.eval()
    set_phase(model, FIRST_PHASE, "activations_first")
    conv = model.stages[0][0].conv
    seen = {}
    conv.register_forward_hook(lambda m, inp, out: seen.__setitem__("x", inp[0]))
    with torch.no_grad():
        y_real = model(random_pixels(2))
    assert set(seen["x"].unique().tolist()) == {-1.0, 1.0}  # binary activations ...
    with torch.no_grad():
        conv.weight.mul_(3.0)                                   # ... real weights, trained on
    set_phase(model, FULLY_BINARY, "activations_first")
    assert torch.allclose(conv.quant_weight().scale.flatten(), conv.weight.abs().mean((1, 2, 3)), rtol=1e-5)
    with torch.no_grad():
        assert not torch.equal(model(random_pixels(2)), y_real)


def random_student(seed: int, bits: int) -> BiRealStudent:
    model = randomize_batchnorm(student(seed=seed, bits=bits), seed)
    with torch.no_grad():  # random α (positive), not only mean|W|
        for s in model.stages:
            for b in s:
                b.conv.weight_quant.tensor_quant.scaling_impl.value.add_(torch.randn_like(
                    b.conv.weight_quant.tensor_quant.scaling_impl.value))
    return model.eval()


@pytest.mark.parametrize("bits", [4, 6])
def test_bn_sign_conv_is_bit_exact_through_ir_and_both_golden_models(tmp_path, bits):
    model = random_student(bits, bits)
    _, graph = compile_model(Selected(model, (3, 32, 32), "lxnor", "config"), tmp_path)
    x = random_pixels(16, seed=bits)
    with torch.no_grad():
        ref = model(x).numpy()
    graph = load_ir(tmp_path / "ir")
    images = x.numpy().astype(np.uint8).transpose(0, 2, 3, 1)
    out = run_numpy(graph, images)
    assert np.array_equal(logits_from_ir(out["logits"], graph.meta), ref)
    ort = run_onnxruntime(graph, images)
    assert np.array_equal(ort["logits"], out["logits"]) and np.array_equal(ort["label"], out["label"])
    # the sign's BN is an increasing per-channel threshold on the shortcut integers, even where
    # randomize_batchnorm drew a negative γ (|γ| is its scale), so FINN's MultiThreshold can hold it
    signs = [l for l in graph.layers if l.op == "Threshold" and graph.tensors[l.outputs[0]].dtype == "BIPOLAR"]
    assert len(signs) == 3 and all((graph.arrays[l.attrs["direction"]] > 0).all() for l in signs)
    assert any((b.bn.weight < 0).any() for s in model.stages for b in s)
    assert any(len(np.unique(graph.arrays[l.attrs["thresholds"]])) > 1 for l in signs)  # per-channel


def test_bn_sign_conv_rtl_is_bit_exact_under_backpressure(tmp_path):
    model = random_student(7, 4)
    _, graph = compile_model(Selected(model, (3, 32, 32), "lxnor", "config"), tmp_path)
    design = generate(graph, plan(graph, 100, fps=5000), tmp_path)
    x = random_pixels(8, seed=8).numpy().astype(np.uint8).transpose(0, 2, 3, 1)
    golden = run_numpy(graph, np.ascontiguousarray(x))
    res = simulate(design, np.ascontiguousarray(x), in_stall=0.3, out_stall=0.3, seed=9, golden=golden)
    assert res.mismatches == 0 and np.array_equal(res.labels, golden["label"].reshape(-1))


def test_sign_batchnorm_follows_the_trainers_recalibration():
    """recalibrate_batchnorm sets momentum None (a cumulative average): the BatchNorm before each
    sign must then hold the plain average of the calibration batches' statistics, like any
    BatchNorm2d, not keep its reset values."""
    from model.train import recalibrate_batchnorm
    model = randomize_batchnorm(student(seed=6), 6)  # random stem BN: the sign's input has a mean
    x = random_pixels(32, seed=7)
    bn = model.stages[0][0].bn
    seen = []
    hook = bn.register_forward_hook(lambda m, inp, out: seen.append(inp[0].detach()))
    recalibrate_batchnorm(model, x, batch_size=8)
    hook.remove()
    mean = torch.stack([t.mean((0, 2, 3)) for t in seen]).mean(0)
    assert len(seen) == 4 and int(bn.num_batches_tracked) == 4
    assert mean.abs().max() > 0.1 and torch.allclose(bn.running_mean, mean, atol=1e-5)
