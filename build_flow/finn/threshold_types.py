"""The integer type of a threshold tensor for FINN's HLS ``Thresholding`` layer.

finn-hlslib's ``ThresholdsActivation`` takes the input value as the threshold type (``TA``) before it
compares: an INT6 input against INT4 thresholds is truncated to 4 bits first, so 8 reads as −8 and the
layer silently computes something else. FINN's own ``minimize_accumulator_width`` widens the type to
the input's range, but ``step_minimize_bit_width`` runs after the FOLDED_HLS_CPPSIM check of
``step_apply_folding_config``, and the type the conversion copies from the threshold tensor is used
until then. So a threshold tensor is typed to hold both its values and every value of its input, the
same rule FINN applies later (measured: INT4 thresholds on INT6 and INT7 inputs made the flagship's
cppsim differ from the golden model from its first shortcut quantizer on).

FINN-free (plain integers in, a qonnx DataType name out) so the rule has a test in the project's suite.
"""
from __future__ import annotations

from build_flow.ir import int_dtype_for


def int_type_name(lo: int, hi: int) -> str:
    """The narrowest UINTn/INTn name holding every integer in [lo, hi], at least 2 bits (the IR's
    int_dtype_for; a 1-bit type is BINARY to FINN, not an integer type its comparators take)."""
    if lo > hi:
        raise ValueError(f"empty range [{lo}, {hi}]")
    name = int_dtype_for(int(lo), int(hi))
    return name if int(name.lstrip("UINT")) >= 2 else name.replace("1", "2")


def threshold_type_name(t_lo: int, t_hi: int, in_lo: int, in_hi: int) -> str:
    """Type of thresholds in [t_lo, t_hi] compared with inputs in [in_lo, in_hi]: holds both ranges."""
    return int_type_name(min(int(t_lo), int(in_lo)), max(int(t_hi), int(in_hi)))
