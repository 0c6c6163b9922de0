"""torch.compile takes the Brevitas student whole: one graph, no graph break, in every
binarization phase and order, forward and backward; so a change that breaks the compiled
training path fails here (backend "eager": Dynamo's tracing without code generation)."""
import pytest
import torch
import torch._dynamo

from model.config import config_from_dict
from model.phases import FIRST_PHASE, FULLY_BINARY, set_phase
from model.student import BiRealStudent
from model.teachers import resnet20
from model.train import make_loss_fn

from helpers import random_pixels


def student(order: str) -> BiRealStudent:
    torch.manual_seed(0)
    return BiRealStudent((8, 16), (1, 2), sign_bias=order == "sign_conv_bn", block_order=order).train()


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.parametrize("block_order, phase, order", [
    ("bn_sign_conv", FIRST_PHASE, "weights_first"), ("bn_sign_conv", FULLY_BINARY, "weights_first"),
    ("bn_sign_conv", FIRST_PHASE, "activations_first"),
    ("sign_conv_bn", FIRST_PHASE, "weights_first"), ("sign_conv_bn", FULLY_BINARY, "weights_first"),
])
def test_student_compiles_whole_in_training(block_order, phase, order):
    x = random_pixels(4)
    eager, compiled = student(block_order), student(block_order)
    for m in (eager, compiled):
        set_phase(m, phase, order)
        m(x)  # Brevitas initializes its scales on the first pass
    fn = torch.compile(compiled, backend="eager", fullgraph=True)  # raises on any graph break
    y_eager, y_comp = eager(x), fn(x)
    assert torch.equal(y_eager, y_comp)
    y_eager.square().sum().backward()
    y_comp.square().sum().backward()
    for (name, a), (_, b) in zip(eager.named_parameters(), compiled.named_parameters()):
        assert (a.grad is None) == (b.grad is None), name
        if a.grad is not None:
            assert torch.allclose(a.grad, b.grad, rtol=1e-5, atol=1e-6), name


def test_distillation_loss_compiles_whole():
    """The trainer's compiled unit: teacher forward (no grad), student forward, KD loss."""
    cfg = config_from_dict({"model": {"arch": "bireal", "widths": [8, 16], "blocks": [1, 1], "sign_bias": False,
                                      "block_order": "bn_sign_conv"},
                            "distill": {"lam": 1.0, "temperature": 4.0}})
    torch.manual_seed(0)
    net = student("bn_sign_conv")
    teacher = resnet20().eval()
    x, y = random_pixels(4).to(torch.uint8), torch.arange(4)
    net(x.float())
    loss_fn = make_loss_fn(net, teacher, cfg, torch.device("cpu"))
    loss_e, _ = loss_fn(x, y)
    loss_c, _ = torch.compile(loss_fn, backend="eager", fullgraph=True)(x, y)
    assert torch.equal(loss_e, loss_c)
    loss_c.backward()
    alphas = [b.conv.weight_quant.tensor_quant.scaling_impl.value for s in net.stages for b in s]
    assert all(a.grad is not None and a.grad.abs().sum() > 0 for a in alphas)
    assert all(p.grad is None for p in teacher.parameters())
