"""Progressive binarization in two phases, in either order (``binarize.order``).

* ``weights_first`` (the seed's): phase 1 has binary weights and full-precision activations
  (every shortcut quantizer passes its input through; each sign becomes hardtanh, see
  `BinaryActivation`); phase 2 is fully binary.
* ``activations_first`` (ReActNet's two-step training): phase 1 has binary activations and
  integer shortcuts with the latent float weights; phase 2 is fully binary. Entering phase 2
  sets every learned α to mean|W| of the weights trained so far (XNOR-Net's L1-optimal
  scale), not the value drawn at construction.

The two kinds of activation quantizer are toggled together: switching only the sign would
leave the shortcut quantizer active and make the phase something else than it claims. The
UINT8 input quantizer is active in both phases.
"""
from __future__ import annotations

import torch
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear
from torch import nn

from .config import BINARIZE_ORDERS

WEIGHTS_ONLY = 1      # phase 1 (called after the default order's phase 1)
FIRST_PHASE = 1
FULLY_BINARY = 2


def activation_quantizers(model: nn.Module) -> list[QuantIdentity]:
    """The sign and shortcut quantizers (not the input quantizer)."""
    input_quant = getattr(model, "input_quant", None)
    return [m for m in model.modules() if isinstance(m, QuantIdentity) and m is not input_quant]


def weight_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (QuantConv2d, QuantLinear))]


def set_phase(model: nn.Module, phase: int, order: str = "weights_first") -> None:
    if phase not in (FIRST_PHASE, FULLY_BINARY):
        raise ValueError(f"unknown binarization phase {phase}")
    if order not in BINARIZE_ORDERS:
        raise ValueError(f"unknown binarization order {order!r} (choose one of {', '.join(BINARIZE_ORDERS)})")
    real_acts = phase == FIRST_PHASE and order == "weights_first"
    real_weights = phase == FIRST_PHASE and order == "activations_first"
    for q in activation_quantizers(model):
        q.act_quant.disable_quant = real_acts
    for layer in weight_layers(model):
        if layer.weight_quant.disable_quant and not real_weights:
            _scale_from_weights(layer)
        layer.weight_quant.disable_quant = real_weights


def get_phase(model: nn.Module) -> int:
    acts = {q.act_quant.disable_quant for q in activation_quantizers(model)}
    weights = {m.weight_quant.disable_quant for m in weight_layers(model)}
    if len(acts) != 1 or len(weights) != 1 or (True in acts and True in weights):
        raise RuntimeError("weight and activation quantizers are in mixed states")
    return FIRST_PHASE if True in acts | weights else FULLY_BINARY


@torch.no_grad()
def _scale_from_weights(layer: nn.Module) -> None:
    """α ← mean|W| per output channel where α is a learned parameter (in its own domain:
    log2 for LearnedScaleBinaryWeight); constant scales are left alone."""
    impl = layer.weight_quant.tensor_quant.scaling_impl
    value = getattr(impl, "value", None)
    if not isinstance(value, nn.Parameter) or not impl.init_done:
        return  # constant scale, or Brevitas initializes it from the weights at its first use anyway
    restrict = impl.stats_scaling_impl.restrict_clamp_scaling.restrict_value_impl
    w = layer.weight.detach()
    mean_abs = w.abs().flatten(1).mean(1).clamp_min(torch.finfo(w.dtype).tiny)
    value.copy_(restrict.restrict_init_tensor(mean_abs).view_as(value))


def phase_for_epoch(epoch: int, first_phase_epochs: int) -> int:
    """epoch counts from 0."""
    return FIRST_PHASE if epoch < first_phase_epochs else FULLY_BINARY
