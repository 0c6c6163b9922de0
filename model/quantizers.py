"""The project's quantizers, as small declarative Brevitas classes.

Each one is what a hardware stage computes exactly (the integer contract in README.md):

* :class:`LearnedScaleBinaryWeight` weights ±α, α > 0 learnable per output channel (L-XNOR).
* :class:`BinaryWeightPerChannel`  weights ±α, α per output channel, linear parameter (the
                                   first flagship's blocks, where a BatchNorm cancelled α).
* :class:`BinaryWeightUnit`        weights ±1 (the classifier; its α is a scalar multiply).
* :class:`SignActApproxSign`       activations ±1, Bi-Real's ApproxSign gradient; exports as BipolarQuant.
* :class:`ShortcutQuant`           N-bit signed integers with a power-of-two scale (the Bi-Real shortcut).
* :class:`SignedActQuant`,         N-bit integer activations (2..4 bits, `model.act_bits`) in place of the
  :class:`UnsignedActQuant`        sign, with a learned power-of-two scale; export as QONNX Quant.
* :class:`InputQuant`              8-bit unsigned pixels with scale 1 (the model is fed raw pixel values).

Brevitas' scaling modules make their default `threshold` argument with
``torch.ones(1).type_as(x)``: a blocking host-to-device copy on every call on a GPU. The
two tensor quantizers here hand them a buffer that lives on the model's device instead.
"""
from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor
from torch.nn import Module

import brevitas
from brevitas.core.bit_width import BitWidthConst
from brevitas.core.function_wrapper import TensorClampSte
from brevitas.core.scaling import ScalingImplType
from brevitas.core.stats import StatsOp
from brevitas.core.utils import StatelessBuffer
from brevitas.function.ops_ste import binary_sign_ste
from brevitas.quant.base import UintQuant
from brevitas.quant.binary import SignedBinaryActPerTensorConst, SignedBinaryWeightPerTensorConst
from brevitas.quant.fixed_point import Int8ActPerTensorFixedPointMinMaxInit, Uint8ActPerTensorFixedPointMaxInit
from brevitas.quant.solver import ActQuantSolver
from brevitas.core.scaling import ScalingPerOutputType
from brevitas.inject.enum import RestrictValueType


class ApproxSign(torch.autograd.Function):
    """sign(x) with x >= 0 -> +1 (the hardware's threshold at 0).

    Backward is Bi-Real's piecewise-polynomial approximation of sign:
    d/dx = 2 - 2|x| for |x| < 1, else 0 (Liu et al., Bi-Real Net, ECCV 2018).
    """

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        return grad * (2.0 - 2.0 * x.abs()).clamp_min(0.0)


class ApproxSignBinaryQuant(brevitas.jit.ScriptModule):
    """Drop-in for Brevitas' ClampedBinaryQuant whose gradient is ApproxSign, for scale 1.

    Same return signature (y, scale, zero_point, bit_width) and bit width 1, so the
    QONNX export handler still emits BipolarQuant. The scale must be the constant 1
    (checked here): the forward is then sign(x) itself, without a ÷1 and ×1.
    """

    def __init__(self, scaling_impl: Module):
        super().__init__()
        self.scaling_impl = scaling_impl
        self.bit_width = BitWidthConst(1)
        self.zero_point = StatelessBuffer(torch.tensor(0.0))
        self.threshold = StatelessBuffer(torch.ones(1))  # on the model's device (module doc)
        with torch.no_grad():
            scale = scaling_impl(torch.zeros(1), torch.ones(1))
        if scale.numel() != 1 or float(scale) != 1.0:
            raise ValueError(f"ApproxSignBinaryQuant needs the constant scale 1, got {scale.tolist()}")

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        scale = self.scaling_impl(x, self.threshold())
        return ApproxSign.apply(x), scale, self.zero_point(), self.bit_width()


class BinaryWeightQuant(brevitas.jit.ScriptModule):
    """Brevitas' ClampedBinaryQuant (sign with a straight-through gradient, times the scale)
    with a device-resident threshold for the scaling module (module doc). Attribute names
    are Brevitas' own, so checkpoints keep their keys."""

    def __init__(self, scaling_impl: Module, tensor_clamp_impl: Module):
        super().__init__()
        self.scaling_impl = scaling_impl
        self.tensor_clamp_impl = tensor_clamp_impl
        self.bit_width = BitWidthConst(1)
        self.zero_point = StatelessBuffer(torch.tensor(0.0))
        self.threshold = StatelessBuffer(torch.ones(1))

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        scale = self.scaling_impl(x, self.threshold())
        y = binary_sign_ste(self.tensor_clamp_impl(x, -scale, scale)) * scale
        return y, scale, self.zero_point(), self.bit_width()


class BinaryWeightPerChannel(SignedBinaryWeightPerTensorConst):
    """±α weights, α a parameter per output channel, initialised from mean|W|.

    `TensorClampSte` instead of the base class' in-place clamp: the latent float
    weights are not rewritten on every forward pass. α is a linear parameter that
    training may drive negative; the blocks that use it follow the conv with a
    BatchNorm, which makes α irrelevant (see model.student).
    """

    tensor_quant = BinaryWeightQuant
    scaling_impl_type = ScalingImplType.PARAMETER_FROM_STATS
    scaling_stats_op = StatsOp.AVE
    scaling_per_output_channel = True
    tensor_clamp_impl = TensorClampSte


class LearnedScaleBinaryWeight(BinaryWeightPerChannel):
    """L-XNOR weights ±α with α = 2^p, p learned per output channel, initialised to
    log2(mean|W|) (XNOR-Net's L1-optimal scale). The log-domain parameter keeps α > 0
    whatever the optimizer does, so the exported BipolarQuant scale is positive and the
    weights' signs are the hardware's bits (a negative α would flip them)."""

    restrict_scaling_type = RestrictValueType.LOG_FP
    scaling_min_val = 2.0 ** -30  # 2^p underflows to 0 for p < -149: keep α a normal float32


class BinaryWeightUnit(SignedBinaryWeightPerTensorConst):
    """±1 weights (scale 1) for the classifier, whose learnable scalar α is a separate
    multiply after the matmul: the accumulators are then exact integers in any float
    summation order, so PyTorch and ONNX runtimes agree bit for bit on the logits."""

    tensor_quant = BinaryWeightQuant
    scaling_const = 1.0
    tensor_clamp_impl = TensorClampSte


class SignActApproxSign(SignedBinaryActPerTensorConst):
    """Activations in {-1, +1} (scale 1) with the ApproxSign gradient."""

    tensor_quant = ApproxSignBinaryQuant


class ShortcutQuant(Int8ActPerTensorFixedPointMinMaxInit):
    """Signed N-bit shortcut values with a learned power-of-two scale.

    Set `bit_width` at instantiation (4..8). A power-of-two scale keeps the average
    pooling on the downsampling shortcut exact in float, and an integer add of two
    operands on the same grid is exact; re-quantizing the sum with the same
    quantizer is then a saturation to N bits.

    The scale is a parameter initialised to cover ±4 (what a BatchNorm output
    mostly spans) rather than from runtime statistics: no stats-collection phase,
    so eval, export and resumed training see the same scale from step one.
    """

    bit_width = 8
    min_val = -4.0
    max_val = 4.0


class SignedActQuant(Int8ActPerTensorFixedPointMinMaxInit):
    """Signed N-bit activations of a binary conv's input (set `bit_width`, 2..4, and
    `narrow_range` for -(2^(N-1)-1)..2^(N-1)-1 at instantiation). The power-of-two scale is a
    parameter initialised to cover ±2, about what the normalized input of the sign spans; the
    hardware sees the integers (a per-channel threshold unit makes them)."""

    bit_width = 2
    min_val = -2.0
    max_val = 2.0


class UnsignedActQuant(Uint8ActPerTensorFixedPointMaxInit):
    """Unsigned N-bit activations 0..2^N-1 (0..2^N-2 with `narrow_range`), a power-of-two scale
    initialised to cover 0..2: a clipped ReLU of the normalized input."""

    bit_width = 2
    max_val = 2.0


class InputQuant(UintQuant, ActQuantSolver):
    """Raw pixels 0..255 as UINT8 with scale 1: the hardware takes the uint8 image."""

    bit_width = 8
    scaling_impl_type = ScalingImplType.CONST
    min_val = 0.0
    max_val = 255.0  # CONST scaling resolves to max_val / (2**8 - 1) = 1.0
    restrict_scaling_type = RestrictValueType.FP
    scaling_per_output_type = ScalingPerOutputType.TENSOR
