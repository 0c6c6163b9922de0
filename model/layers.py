"""Layers whose inference arithmetic is exact, so every runtime computes the same integers.

Float32 results of a conv depend on summation order (batch size, kernel choice,
runtime), which flips quantizer roundings near their boundaries. These layers keep
every inference value either an exact integer multiple of a power of two, or the
result of the same short chain of correctly rounded elementwise IEEE operations:

* :class:`BinaryConv2d` convolves with the ±1 signs of its ±α weights (exact integer
  accumulators) and multiplies by α afterwards (one rounding per element).
* :class:`ExactBatchNorm2d` in eval mode is y = x·a + b with a, b rounded once to
  float32: a Mul and an Add, identical in PyTorch and ONNX runtimes (no fused
  BatchNormalization kernel with its own formula).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from brevitas.nn import QuantConv2d

from .quantizers import BinaryWeightPerChannel


class BinaryConv2d(QuantConv2d):
    """Conv with ±α weights, computed as α·conv(x, ±1); α per output channel as the weight
    quantizer defines it (default: BinaryWeightPerChannel).

    With its weight quantizer disabled (the real-weight phase of activations-first
    training) it is a plain conv with the latent float weights."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0,
                 weight_quant=BinaryWeightPerChannel):
        super().__init__(cin, cout, kernel, stride=stride, padding=padding, bias=False,
                         weight_quant=weight_quant)

    def forward(self, x: Tensor) -> Tensor:
        if not self.weight_quant.is_quant_enabled:
            return F.conv2d(x, self.weight, None, self.stride, self.padding)
        qw = self.quant_weight()
        signs = qw.value / qw.scale  # exactly ±1; the export folds this Div into the quantizer
        acc = F.conv2d(x, signs, None, self.stride, self.padding)
        return acc * qw.scale.view(1, -1, 1, 1)


class ExactBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose eval-mode arithmetic is a fixed Mul and Add (see module doc)."""

    def eval_affine(self) -> tuple[Tensor, Tensor]:
        a = self.weight / torch.sqrt(self.running_var + self.eps)
        return a, self.bias - self.running_mean * a

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            return super().forward(x)
        a, b = self.eval_affine()
        return x * a.view(1, -1, 1, 1) + b.view(1, -1, 1, 1)


class PositiveBatchNorm2d(ExactBatchNorm2d):
    """BatchNorm2d whose scale is |γ|: an increasing per-channel affine, for the input of a sign.

    sign(a·x + b) with a > 0 is x ≥ T per channel, the only direction FINN's MultiThreshold
    counts (and its streamlining absorbs only positive multipliers into thresholds). Nothing
    is lost: inverting a channel before the sign is the same as negating that channel's
    weights in the next conv, which the conv learns anyway."""

    def eval_affine(self) -> tuple[Tensor, Tensor]:
        a = self.weight.abs() / torch.sqrt(self.running_var + self.eps)
        return a, self.bias - self.running_mean * a

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            # nn.BatchNorm2d's own bookkeeping: momentum None is a cumulative average over the
            # batches seen (what recalibrate_batchnorm relies on), else an exponential one
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight.abs(), self.bias, True,
                                factor, self.eps)
        a, b = self.eval_affine()
        return x * a.view(1, -1, 1, 1) + b.view(1, -1, 1, 1)
