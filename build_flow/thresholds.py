"""Integer thresholds: a monotone step function of an integer accumulator, found exactly.

Every "affine + quantizer" of the student (α·acc, then BatchNorm's x·a + b, then
round-half-even to an N-bit grid; or sign(x·s + β)) is a monotone step function of an
integer accumulator with a bounded range. The hardware computes it as

    increasing: y = y_min + Σ_k [acc ≥ T_k]        decreasing: y = y_min + Σ_k [acc ≤ T_k]

with one threshold per output level above y_min (2^N − 1 for N bits, 1 for a sign).

The thresholds are found by evaluating the float32 function the model computes on every
reachable accumulator and locating its steps, so they reproduce PyTorch's (and every
ONNX runtime's) float32 results exactly, including the rare accumulator whose real value
lies within an ulp of a rounding boundary. `rational_levels` evaluates the same function
in exact rational arithmetic; tests compare both at the boundaries.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Callable

import numpy as np

INCREASING, DECREASING = 1, -1


@dataclass
class Thresholds:
    """Per-channel thresholds. `values[c, k]` is the threshold of level y_min + k + 1;
    `direction[c]` is +1 (acc ≥ T counts) or -1 (acc ≤ T counts)."""

    values: np.ndarray      # int64 (channels, levels)
    direction: np.ndarray   # int8 (channels,)
    y_min: int

    def apply(self, acc: np.ndarray, channel_axis: int = -1) -> np.ndarray:
        """Evaluate on integer accumulators (channels along `channel_axis`)."""
        acc = np.moveaxis(np.asarray(acc, dtype=np.int64), channel_axis, -1)[..., None]
        t = self.values
        d = self.direction[:, None].astype(np.int64)
        hits = np.where(d > 0, acc >= t, acc <= t)
        return np.moveaxis(self.y_min + hits.sum(-1), -1, channel_axis)


def find_thresholds(levels: Callable[[np.ndarray], np.ndarray], acc_min: int, acc_max: int,
                    y_min: int, y_max: int, channels: int, where: str = "layer") -> Thresholds:
    """Thresholds of `levels(acc) -> (len(acc), channels)` int array, monotone per channel,
    over the accumulator range [acc_min, acc_max] (all integers, evaluated exhaustively).

    A level never reached in the range gets an unreachable threshold (acc_max + 1 when
    increasing, acc_min - 1 when decreasing); one always reached gets acc_min / acc_max.
    """
    acc = np.arange(acc_min, acc_max + 1, dtype=np.int64)
    y = np.asarray(levels(acc)).reshape(len(acc), channels).astype(np.int64)
    if y.min() < y_min or y.max() > y_max:
        raise ValueError(f"{where}: levels {y.min()}..{y.max()} outside {y_min}..{y_max}")
    dy = np.diff(y, axis=0)
    inc = (dy >= 0).all(axis=0)
    dec = (dy <= 0).all(axis=0)
    if not (inc | dec).all():
        c = int(np.flatnonzero(~(inc | dec))[0])
        raise ValueError(f"{where}: channel {c} is not a monotone function of its accumulator")
    k = np.arange(y_min + 1, y_max + 1, dtype=np.int64)  # the levels, one threshold each
    n = len(acc)
    values = np.empty((channels, len(k)), dtype=np.int64)
    direction = np.where(inc, INCREASING, DECREASING).astype(np.int8)
    for c in range(channels):
        yc = y[:, c]
        if inc[c]:
            # first accumulator whose level reaches k
            idx = np.searchsorted(yc, k, side="left")
            values[c] = np.where(idx < n, acc_min + idx, acc_max + 1)
        else:
            # last accumulator whose level still reaches k (yc is non-increasing)
            idx = np.searchsorted(-yc, -k, side="right") - 1
            values[c] = np.where(idx >= 0, acc_min + idx, acc_min - 1)
    return Thresholds(values, direction, y_min)


def rational_levels(acc: int, factors: list[float], offset: float, scale: float, y_min: int, y_max: int) -> int:
    """clamp(round_half_even((acc · Π factors + offset) / scale)) in exact rational arithmetic,
    with every float32 constant taken at its exact value."""
    v = Fraction(acc)
    for f in factors:
        v *= Fraction(float(np.float32(f)))
    v += Fraction(float(np.float32(offset)))
    q = round(v / Fraction(float(np.float32(scale))))  # Python rounds a Fraction half to even
    return max(y_min, min(y_max, q))
