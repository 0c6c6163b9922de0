"""The quantizers compute what the hardware computes, and train."""
import torch
from brevitas.nn import QuantIdentity

from model.layers import BinaryConv2d
from model.quantizers import ApproxSign, InputQuant, ShortcutQuant, SignActApproxSign


def test_binary_weights_are_plus_minus_alpha_per_channel_and_alpha_learns():
    torch.manual_seed(0)
    conv = BinaryConv2d(4, 6, 3)
    qw = conv.quant_weight()
    alpha = qw.scale.flatten()
    # initialized from mean|W| per output channel
    assert torch.allclose(alpha, conv.weight.abs().mean(dim=(1, 2, 3)), rtol=1e-6)
    w = qw.value.detach()
    for c in range(6):
        assert set(w[c].unique().tolist()) <= {alpha[c].item(), -alpha[c].item()}
        assert torch.equal(w[c], torch.where(conv.weight[c] >= 0, alpha[c], -alpha[c]).detach())
    # α is a parameter and gets a gradient through the conv
    scale_params = [p for n, p in conv.named_parameters() if "scaling_impl" in n]
    assert len(scale_params) == 1 and scale_params[0].numel() == 6
    out = conv(torch.randn(2, 4, 8, 8))
    out.pow(2).sum().backward()
    assert scale_params[0].grad is not None and scale_params[0].grad.abs().sum() > 0
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0


def test_binary_weight_clamp_is_not_in_place():
    conv = BinaryConv2d(2, 2, 3)
    with torch.no_grad():
        conv.weight.mul_(10)  # latent weights far outside ±α
    before = conv.weight.detach().clone()
    conv(torch.randn(1, 2, 5, 5))
    assert torch.equal(conv.weight.detach(), before)


def test_binary_conv_accumulates_exact_integers():
    torch.manual_seed(1)
    conv = BinaryConv2d(3, 5, 3, padding=1).eval()
    x = torch.randint(0, 256, (4, 3, 9, 9)).float()
    qw = conv.quant_weight()
    signs = torch.sign(qw.value).detach()
    ref = torch.nn.functional.conv2d(x.double(), signs.double(), padding=1)  # exact in float64
    out = conv(x).detach() / qw.scale.detach().view(1, -1, 1, 1)
    assert torch.equal(torch.round(out.double()), ref)
    # one batch or image by image: the same bits
    assert torch.equal(conv(x), torch.cat([conv(x[i:i + 1]) for i in range(4)]))


def test_sign_outputs_plus_minus_one_with_approxsign_gradient():
    act = QuantIdentity(act_quant=SignActApproxSign, return_quant_tensor=False)
    x = torch.tensor([-2.0, -0.75, -0.25, 0.0, 0.25, 0.75, 2.0], requires_grad=True)
    y = act(x)
    assert torch.equal(y, torch.tensor([-1.0, -1, -1, 1, 1, 1, 1]))
    y.sum().backward()
    expected = (2 - 2 * x.detach().abs()).clamp_min(0)  # Bi-Real: d/dx = 2 - 2|x| on |x| < 1
    assert torch.allclose(x.grad, expected)
    assert torch.equal(x.grad, torch.tensor([0.0, 0.5, 1.5, 2.0, 1.5, 0.5, 0.0]))


def test_approxsign_function_matches_hand_gradient():
    x = torch.tensor([0.5, -0.9], requires_grad=True)
    ApproxSign.apply(x).backward(torch.tensor([2.0, 1.0]))
    assert torch.allclose(x.grad, torch.tensor([2.0 * 1.0, 1.0 * 0.2]))


def test_shortcut_quant_is_n_bit_with_power_of_two_scale():
    for bits in (4, 6, 8):
        q = QuantIdentity(act_quant=ShortcutQuant, bit_width=bits, return_quant_tensor=True).eval()
        out = q(torch.linspace(-20, 20, 1001))
        scale = out.scale.item()
        assert 2 ** round(torch.log2(torch.tensor(scale)).item()) == scale
        ints = out.value / out.scale
        assert torch.equal(ints, torch.round(ints))
        assert ints.min().item() == -2 ** (bits - 1) and ints.max().item() == 2 ** (bits - 1) - 1
        assert out.bit_width.item() == bits


def test_input_quant_passes_uint8_pixels_unchanged():
    q = QuantIdentity(act_quant=InputQuant, return_quant_tensor=True).eval()
    x = torch.arange(256).float()
    out = q(x)
    assert torch.equal(out.value, x) and out.scale.item() == 1.0 and out.bit_width.item() == 8
