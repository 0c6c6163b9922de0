"""Learnable per-channel increasing functions after each residual add (``model.post_add``).

Every Bi-Real block ends ``Q(post_add(r + s))``. Both operands are on the stage quantizer Q's grid,
so r + s is an exact integer times Q's power-of-two scale. post_add followed by Q is then a
monotone step function of that integer, per channel: the lowering (build_flow/lower.py) keeps the
integer sum (an AddSat one bit wider than its operands, so it never saturates) and folds post_add
and Q into per-channel integer thresholds (a Threshold layer).

* ``none``:   the identity (the add is an integer add and Q a saturation, as before).
* ``affine``: y = a·x + b per channel; a = pos(p) > 0 (init 1), b (init 0).
* ``rprelu``: ReActNet's RPReLU, y = PReLU_β(x − γ) + ζ per channel: slope 1 above γ,
  β = pos(q)/4 > 0 below it (init 0.25); γ and ζ init 0.

Both slopes are positive, so the function is increasing: re-quantized, it is a step function
with one threshold per level counted upwards (direction +1), which every backend builds,
FINN's MultiThreshold included (it only counts x ≥ T). A negative slope would make a channel
decreasing (the IR still expresses it, with direction −1; FINN does not) and a negative β a
non-monotone one, which no threshold unit computes (the lowering refuses it).

pos(p) = (1 + max(p, 0)) / (1 + max(−p, 0)), i.e. 1 + p above 0 and 1 / (1 − p) below, is
positive, increasing and continuously differentiable, with pos(0) = 1, pos(±1) = 2 and 1/2
exactly, and pos(−p) = 1/pos(p): a log-like parametrization made of max, +, and ÷ only, each
exact or correctly rounded in PyTorch and onnxruntime alike. That matters because the
exported constant must be PyTorch's bit for bit: the TorchScript exporter folds the ops it
knows with PyTorch's own kernels and leaves the others as ONNX nodes, which qonnx's cleanup
folds with onnxruntime. ``exp`` stays a node, and onnxruntime's exp differs from PyTorch's by
an ulp on some inputs (measured here: 1 of 64 random values), which moves a threshold. ``sqrt``
is no better a choice: this machine's PyTorch CPU build computes it within an ulp, not
correctly rounded (about 15 % of random inputs differ from numpy's and onnxruntime's), so it
would agree only when PyTorch folds it.

Every op is elementwise with one rounding, in the order the lowering evaluates it: Mul and
Add (affine); Sub, PRelu and Add (rprelu). They run under ``torch.compile(fullgraph=True)``,
and in the first binarization phase (Q disabled) they act on the real values.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import POST_ADDS


def pos(p: Tensor) -> Tensor:
    """(1 + max(p, 0)) / (1 + max(−p, 0)) > 0, increasing; exact IEEE ops only (module doc).
    torch.maximum splits the gradient of a tie in halves, so the slope at p = 0 is 1, as on
    either side (clamp's or relu's would be 2 or 0 there: the initial value)."""
    zero = torch.zeros_like(p)
    return (1.0 + torch.maximum(p, zero)) / (1.0 + torch.maximum(-p, zero))


class PostAddAffine(nn.Module):
    """y = a·x + b per channel, a = pos(p) > 0 so that the function stays increasing."""

    def __init__(self, channels: int):
        super().__init__()
        self.a_param = nn.Parameter(torch.zeros(1, channels, 1, 1))   # a = pos(0) = 1
        self.b = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def a(self) -> Tensor:
        return pos(self.a_param)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.a() + self.b


class PostAddRPReLU(nn.Module):
    """ReActNet's RPReLU, y = PReLU_β(x − γ) + ζ per channel, with β = pos(q)/4 > 0: both slopes
    positive, so that the function stays increasing."""

    def __init__(self, channels: int):
        super().__init__()
        self.beta_param = nn.Parameter(torch.zeros(channels))   # β = pos(0)/4 = 0.25
        self.gamma = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.zeta = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def beta(self) -> Tensor:
        return pos(self.beta_param) * 0.25

    def forward(self, x: Tensor) -> Tensor:
        return F.prelu(x - self.gamma, self.beta()) + self.zeta


def post_add_module(kind: str, channels: int) -> nn.Module:
    if kind not in POST_ADDS:
        raise ValueError(f"unknown post_add {kind!r} (choose one of {', '.join(POST_ADDS)})")
    if kind == "affine":
        return PostAddAffine(channels)
    if kind == "rprelu":
        return PostAddRPReLU(channels)
    return nn.Identity()


@torch.no_grad()
def randomize_post_add(model: nn.Module, g: torch.Generator) -> nn.Module:
    """Random post-add parameters for tests and random-weight networks. Half the channels get
    values on the stage grid (scale s) that put the function's output exactly halfway between
    two levels for some sums: a ∈ {1/2, 1, 2} or β ∈ {1/8, 1/4, 1/2}, shifts multiples of s/2.
    Q rounds those ties half to even, and the thresholds must reproduce it exactly."""
    for block in model.modules():
        f = getattr(block, "post_add", None)
        if not isinstance(f, (PostAddAffine, PostAddRPReLU)):
            continue
        aq = block.quant.act_quant
        disabled, aq.disable_quant = aq.disable_quant, False
        s = float(aq.scale())
        aq.disable_quant = disabled
        shape = f.gamma.shape if isinstance(f, PostAddRPReLU) else f.b.shape
        c = shape[1]
        tie = torch.rand(c, generator=g) < 0.5

        def slope_param():   # pos(-1), pos(0), pos(1) = 1/2, 1, 2 on tie channels
            exact = torch.randint(-1, 2, (c,), generator=g).float()
            return torch.where(tie, exact, torch.randn(c, generator=g) * 0.7)

        def shift(spread: float):   # multiples of s/2 on tie channels
            exact = torch.randint(-int(2 * spread), int(2 * spread) + 1, (c,), generator=g).float() * (s / 2)
            return torch.where(tie, exact, torch.randn(c, generator=g) * spread * s).view(shape)

        if isinstance(f, PostAddAffine):
            f.a_param.copy_(slope_param().view(shape))
            f.b.copy_(shift(3.0))
        else:
            f.beta_param.copy_(slope_param())
            f.gamma.copy_(shift(4.0))
            f.zeta.copy_(shift(3.0))
    return model
