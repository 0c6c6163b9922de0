"""Progressive binarization.

Phase 1: binary weights, full-precision activations (every shortcut quantizer
passes its input through; each sign becomes hardtanh, see `BinaryActivation`). Phase 2: everything binary. The two kinds of
activation quantizer are toggled together: switching only the sign would leave
the shortcut quantizer active and make phase 1 something else than it claims.
The weight quantizers and the UINT8 input quantizer are active in both phases.
"""
from __future__ import annotations

from torch import nn

from brevitas.nn import QuantIdentity

WEIGHTS_ONLY = 1
FULLY_BINARY = 2


def activation_quantizers(model: nn.Module) -> list[QuantIdentity]:
    """The sign and shortcut quantizers (not the input quantizer)."""
    input_quant = getattr(model, "input_quant", None)
    return [m for m in model.modules() if isinstance(m, QuantIdentity) and m is not input_quant]


def set_phase(model: nn.Module, phase: int) -> None:
    if phase not in (WEIGHTS_ONLY, FULLY_BINARY):
        raise ValueError(f"unknown binarization phase {phase}")
    for q in activation_quantizers(model):
        q.act_quant.disable_quant = phase == WEIGHTS_ONLY


def get_phase(model: nn.Module) -> int:
    states = {q.act_quant.disable_quant for q in activation_quantizers(model)}
    if len(states) != 1:
        raise RuntimeError("activation quantizers are in mixed states")
    return WEIGHTS_ONLY if states.pop() else FULLY_BINARY


def phase_for_epoch(epoch: int, weights_only_epochs: int) -> int:
    """epoch counts from 0."""
    return WEIGHTS_ONLY if epoch < weights_only_epochs else FULLY_BINARY
