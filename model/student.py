"""The Bi-Real binarized student for 32x32 inputs.

Every binary 3x3 conv has its own integer shortcut (Bi-Real's "double skip"):

    x_{k+1} = Q( Q(BN(conv_±α(pad₋₁(sign(x_k + β))))) + shortcut(x_k) )

* Q is the stage's N-bit power-of-two shortcut quantizer; one instance per stage
  quantizes both operands of every add in the stage and the sum (so the add is an
  integer add and the re-quantization a saturation).
* Two block orders (``model.block_order``):

  - ``sign_conv_bn`` (Bi-Real's order, the first flagship): x → sign(x + β) → conv_±α → BN → Q.
    β is a learnable per-channel offset (ReActNet's RSign). The train-mode BN after the
    conv normalizes α·acc per channel, so BN(α·acc) does not depend on α: α gets no
    gradient and does not learn (it is kept so that those checkpoints still load).
  - ``bn_sign_conv`` (XNOR-Net's order, L-XNOR): x → BN → sign → conv_±α → + b → Q.
    The BN (scale |γ| > 0: PositiveBatchNorm2d) normalizes the sign's input (where
    ApproxSign's gradient window is), and
    nothing normalizes α·acc + b afterwards, so α (= 2^p > 0, per channel) and the bias
    b set the residual branch's scale against the shortcut and reach the loss. The
    stem keeps its BN after the conv (its input is raw pixels) and has ±1 weights:
    a per-channel α there would be cancelled the same way.

  Either way the sign's input is a per-channel affine of the shortcut integers (a
  per-channel integer threshold in hardware) and the branch is a per-channel affine of
  the XNOR-popcount accumulators re-quantized by Q (thresholds again).
* ``model.post_add`` (none | affine | rprelu): a learnable per-channel increasing function of
  each residual sum before Q, x_{k+1} = Q(post_add(r + s)); with Q it is a per-channel
  integer threshold of the exact integer sum (model/post_add.py).
* The binary activations are padded with -1 explicitly: XNOR hardware has no 0.
* ``model.act_bits`` 2..4 puts N-bit integer activations (IntActivation: signed or unsigned,
  narrow range or not) where the signs are; the convs then take small integers times ±1 weights
  and pad with 0. The rest of the network is the same.
* Downsampling block (first block of stages 2..): the conv has stride 2 and twice
  the channels; the shortcut is a 2x2 average pool re-quantized by the new stage's
  Q (= integer 4-sum and a threshold step), duplicated along channels. No 1x1 float
  conv: every value on the shortcut stays an N-bit integer.
* Stem: binary-weight 3x3 conv on the UINT8 input (zero padding is exact there).
* Head: global average pool (an integer sum; 1/HW is a power of two) and a ±1
  classifier followed by one learnable scalar α, so argmax of its integer
  accumulators is the prediction and the logits are exact in any runtime.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear

from .layers import BinaryConv2d, ExactBatchNorm2d, PositiveBatchNorm2d
from .staged import StagedNet
from .quantizers import BinaryWeightPerChannel, BinaryWeightUnit, InputQuant, LearnedScaleBinaryWeight, ShortcutQuant, \
    SignActApproxSign, SignedActQuant, UnsignedActQuant
from .config import BLOCK_ORDERS
from .post_add import post_add_module


def shortcut_quant(bits: int) -> QuantIdentity:
    return QuantIdentity(act_quant=ShortcutQuant, bit_width=bits, return_quant_tensor=False)


class BinaryActivation(nn.Module):
    """sign(x) (BipolarQuant in the export); hardtanh(x) while its quantizer is disabled.

    Progressive binarization's phase 1 disables the sign quantizer; a disabled Brevitas
    quantizer is the identity, which would leave the whole network linear. hardtanh is
    the real-valued relaxation of sign whose clipping the sign's gradient estimate assumes.
    """

    pad_value = -1.0  # XNOR hardware has no 0

    def __init__(self):
        super().__init__()
        self.quant = QuantIdentity(act_quant=SignActApproxSign, return_quant_tensor=False)

    def forward(self, x: Tensor) -> Tensor:
        if self.quant.act_quant.is_quant_enabled:
            return self.quant(x)
        return F.hardtanh(x)


class IntActivation(nn.Module):
    """N-bit integer activations (2..4 bits; QONNX Quant in the export) where the sign would be:
    the conv then multiplies ±1 weights by small integers (bnn_mvtu's integer-input path) instead
    of XNOR-ing bits. Zero padding is exact here. While its quantizer is disabled (progressive
    binarization's phase 1) it is hardtanh, clipped at 0 for unsigned activations."""

    pad_value = 0.0

    def __init__(self, bits: int, signed: bool = True, narrow: bool = False):
        super().__init__()
        quant = SignedActQuant if signed else UnsignedActQuant
        self.quant = QuantIdentity(act_quant=quant, bit_width=bits, narrow_range=narrow, return_quant_tensor=False)
        self.low = -1.0 if signed else 0.0

    def forward(self, x: Tensor) -> Tensor:
        if self.quant.act_quant.is_quant_enabled:
            return self.quant(x)
        return F.hardtanh(x, self.low, 1.0)


def activation(bits: int = 1, signed: bool = True, narrow: bool = False) -> nn.Module:
    """The activation of a binary conv's input: the sign (1 bit) or an N-bit integer quantizer."""
    if bits == 1:
        return BinaryActivation()
    if not 2 <= bits <= 4:
        raise ValueError(f"activations are 1 bit (sign) or 2..4-bit integers, got {bits}")
    return IntActivation(bits, signed, narrow)


class BiRealBlock(nn.Module):
    """One binary 3x3 conv with its own integer shortcut (the block orders: module doc)."""

    def __init__(self, cin: int, cout: int, stride: int, quant: QuantIdentity, sign_bias: bool,
                 order: str = "sign_conv_bn", post_add: str = "none", act: tuple[int, bool, bool] = (1, True, False)):
        super().__init__()
        if stride not in (1, 2) or (stride == 1 and cin != cout) or (stride == 2 and cout != 2 * cin):
            raise ValueError(f"unsupported block {cin}->{cout} stride {stride}")
        if order not in BLOCK_ORDERS:
            raise ValueError(f"unknown block order {order!r} (choose one of {', '.join(BLOCK_ORDERS)})")
        if order == "bn_sign_conv" and sign_bias:
            raise ValueError("block order bn_sign_conv has no sign offset β: its BatchNorm's bias is the offset")
        self.downsample = stride == 2
        self.order = order
        self.sign = activation(*act)  # the sign, or an N-bit integer activation (its name kept for checkpoints)
        if order == "sign_conv_bn":
            self.bias = nn.Parameter(torch.zeros(1, cin, 1, 1)) if sign_bias else None
            self.conv = BinaryConv2d(cin, cout, 3, stride=stride, weight_quant=BinaryWeightPerChannel)
            self.bn = ExactBatchNorm2d(cout)
        else:
            self.bn = PositiveBatchNorm2d(cin)  # an increasing threshold per channel (its doc says why)
            self.conv = BinaryConv2d(cin, cout, 3, stride=stride, weight_quant=LearnedScaleBinaryWeight)
            self.branch_bias = nn.Parameter(torch.zeros(1, cout, 1, 1))
        self.quant = quant  # shared by the stage: both add operands and the sum
        # a per-channel increasing function of the sum before its re-quantization (model/post_add.py)
        self.post_add = post_add_module(post_add, cout)

    def branch(self, x: Tensor) -> Tensor:
        """The binary conv's contribution, before the stage quantizer."""
        if self.order == "sign_conv_bn":
            a = x + self.bias if self.bias is not None else x
            return self.bn(self.conv(F.pad(self.sign(a), (1, 1, 1, 1), value=self.sign.pad_value)))
        b = F.pad(self.sign(self.bn(x)), (1, 1, 1, 1), value=self.sign.pad_value)
        return self.conv(b) + self.branch_bias

    def forward(self, x: Tensor) -> Tensor:
        # the binary activations are padded with -1 (XNOR hardware has no 0), integer ones with 0
        r = self.quant(self.branch(x))
        if self.downsample:
            # Two identical re-quantizations, not cat([s, s]): a node reading one tensor twice
            # is renamed wrongly by qonnx's cleanup (ModelWrapper.rename_tensor fixes one use).
            p = F.avg_pool2d(x, 2)
            s = torch.cat([self.quant(p), self.quant(p)], dim=1)
        else:
            s = x
        return self.quant(self.post_add(r + s))


class BiRealStudent(StagedNet):
    def __init__(self, widths=(64, 128, 256), blocks=(2, 2, 2), shortcut_bits: int = 4,
                 stem_kernel: int = 3, sign_bias: bool = True, num_classes: int = 10,
                 block_order: str = "sign_conv_bn", post_add: str = "none", act_bits: int = 1,
                 act_signed: bool = True, act_narrow: bool = False):
        super().__init__()
        self.input_quant = QuantIdentity(act_quant=InputQuant, return_quant_tensor=False)
        stem_weights = BinaryWeightPerChannel if block_order == "sign_conv_bn" else BinaryWeightUnit
        self.stem = BinaryConv2d(3, widths[0], stem_kernel, padding=stem_kernel // 2, weight_quant=stem_weights)
        self.stem_bn = ExactBatchNorm2d(widths[0])
        self.stage_quants = nn.ModuleList(shortcut_quant(shortcut_bits) for _ in widths)
        self.stages = nn.ModuleList()
        cin = widths[0]
        for i, (w, n) in enumerate(zip(widths, blocks)):
            stage = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                stage.append(BiRealBlock(cin, w, stride, self.stage_quants[i], sign_bias, block_order,
                                         post_add=post_add, act=(act_bits, act_signed, act_narrow)))
                cin = w
            self.stages.append(nn.Sequential(*stage))
        self.classifier = QuantLinear(cin, num_classes, bias=False, weight_quant=BinaryWeightUnit)
        self.classifier_scale = nn.Parameter(torch.tensor(cin ** -0.5))  # the classifier's α

    def enter(self, pixels: Tensor) -> Tensor:
        return self.stage_quants[0](self.stem_bn(self.stem(self.input_quant(pixels))))

    def head(self, x: Tensor) -> Tensor:
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)) * self.classifier_scale


@dataclass(frozen=True)
class Complexity:
    binary_macs: int      # the blocks' MACs per image: 1-bit x 1-bit (XNOR-popcount), N-bit x 1-bit with act_bits N
    input_macs: int       # 8-bit x 1-bit MACs of the stem per image
    head_macs: int        # N-bit x 1-bit MACs of the classifier per image
    params: int           # trainable parameters (latent weights, α, BN, β, scales)
    weight_bits: int      # bits of the deployed weights (1 per binary weight)

    @property
    def total_macs(self) -> int:
        return self.binary_macs + self.input_macs + self.head_macs


def complexity(model: BiRealStudent, image_size: int = 32) -> Complexity:
    """Counts MACs from the layer shapes: conv MACs = Cout·Cin·k²·Hout·Wout."""
    macs = {}
    hooks = []

    def count(name):
        def hook(mod, inp, out):
            k = mod.weight.shape[1:].numel()
            macs[name] = out.shape[1] * k * out.shape[2] * out.shape[3] if out.dim() == 4 else out.shape[1] * k
        return hook

    for name, mod in model.named_modules():
        if isinstance(mod, (QuantConv2d, QuantLinear)):
            hooks.append(mod.register_forward_hook(count(name)))
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, image_size, image_size))
    model.train(was_training)
    for h in hooks:
        h.remove()
    weight_bits = sum(m.weight.numel() for m in model.modules() if isinstance(m, (QuantConv2d, QuantLinear)))
    return Complexity(
        binary_macs=sum(v for k, v in macs.items() if k not in ("stem", "classifier")),
        input_macs=macs["stem"], head_macs=macs["classifier"],
        params=sum(p.numel() for p in model.parameters()), weight_bits=weight_bits)
