"""The IR's exact integer thresholds for FINN's streamlined MultiThreshold nodes.

FINN derives a quantizer's thresholds analytically (``(k + ½)·scale``, then every absorbed scale and
bias, in float32) and counts ``x ≥ T``, so an input exactly halfway between two levels always goes
up. The student's quantizers round half to even (``torch.round``), and the hardware must compute what
the student computes. Where a level boundary lands exactly on an integer input, FINN's graph is
off by one level: the Bi-Real downsampling shortcut (an average of four INT6 values re-quantized to the
same grid) hits such a tie on every fourth sum (measured: 1,806 of 14,336 values of its first
re-quantizer differed in cppsim). The project's IR found every threshold by evaluating the student's
own float32 function on every reachable integer (build_flow/thresholds.py), ties and ulp-close
cases included; it is the single source of truth for them.

This module maps one IR threshold set into the integer domain of a FINN MultiThreshold (an XNOR
layer counts matching bits p = (acc + MW) / 2, so acc ≥ T becomes p ≥ ⌈(T + MW) / 2⌉) and reconciles
the two over the input range both can see. They may differ by one step at a boundary (a tie, or a
float32 ulp); anything more means the two graphs do not compute the same function, and is an error
that names the node: FINN's cppsim would only find it twenty minutes later.

FINN-free (numpy and the IR), so the rules are tested in the project's suite.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from build_flow.ir import Graph, dtype_range

TAG = "bnn-ir:"   # doc_string prefix of a FINN node: the QONNX tensor its quantizer produced


class ThresholdMismatch(ValueError):
    """FINN's and the IR's thresholds describe different functions (not a rounding tie)."""


@dataclass
class IRThresholds:
    """One IR threshold set, in the IR layer's own accumulator (or input) domain."""

    layer: str
    values: np.ndarray      # (channels or 1, levels), int64, sorted per row
    direction: np.ndarray   # (channels or 1,), +1 or -1
    y_min: int
    lo: int                 # the input (accumulator) range the thresholds were found over
    hi: int
    mw: int | None          # the window length of a MatrixVector layer (None for a Threshold layer)
    weights: np.ndarray | None = None   # a MatrixVector layer's ±1 weights, (out, window)


def ir_thresholds(graph: Graph, qonnx_tensor: str) -> IRThresholds | None:
    """The thresholds of the IR layer that computes QONNX tensor `qonnx_tensor` (through the lowering's
    probes; a saturating add's are those of its clip), or None where the IR has none for it."""
    probe = graph.meta.get("probes", {}).get(qonnx_tensor)
    if probe is None:
        return None
    layer = graph.producer(probe["ir"])
    if layer is not None and layer.op == "AddSat":   # clip(a + b) to the output type: thresholds lo+1 .. hi
        y_lo, y_hi = dtype_range(graph.tensors[layer.outputs[0]].dtype)
        ranges = [dtype_range(graph.tensors[i].dtype) for i in layer.inputs]
        return IRThresholds(layer.name, np.arange(y_lo + 1, y_hi + 1, dtype=np.int64)[None, :],
                            np.ones(1, dtype=np.int64), y_lo, sum(r[0] for r in ranges), sum(r[1] for r in ranges), None)
    if layer is None or not layer.attrs.get("thresholds"):
        return None
    values = np.sort(np.asarray(graph.arrays[layer.attrs["thresholds"]], dtype=np.int64), axis=1)
    direction = np.asarray(graph.arrays[layer.attrs["direction"]]).astype(np.int64).reshape(-1)
    a, b = dtype_range(graph.tensors[layer.inputs[0]].dtype)
    if layer.op != "MatrixVector":
        return IRThresholds(layer.name, values, direction, int(layer.attrs.get("y_min", 0)), a, b, None)
    w = np.asarray(graph.arrays[layer.attrs["weights"]], dtype=np.int64)   # (out, window), ±1
    bound = w.shape[1] * max(abs(a), abs(b))   # the range the lowering searched (build_flow/lower.py)
    return IRThresholds(layer.name, values, direction, int(layer.attrs.get("y_min", 0)), -bound, bound,
                        int(w.shape[1]), w)


def weight_signs(t: IRThresholds, finn_weights: np.ndarray, xnor: bool) -> np.ndarray:
    """Per output channel, +1 where FINN's weight column is the IR's weight row, −1 where it is its
    negation: FINN's streamlining moves the sign of a negative per-channel scale into the binary
    weights (the IR keeps the weights and counts that channel down instead). XNOR weights are bits."""
    w = np.sign(2 * np.asarray(finn_weights, dtype=np.float64) - 1 if xnor else np.asarray(finn_weights))
    if t.weights is None or w.shape != t.weights.T.shape:
        raise ThresholdMismatch(f"IR layer '{t.layer}': FINN weights of shape {w.shape} for IR weights "
                                f"{None if t.weights is None else t.weights.shape}")
    corr = np.einsum("kc,ck->c", w, t.weights)
    bad = np.flatnonzero(np.abs(corr) != t.mw)
    if len(bad):
        raise ThresholdMismatch(f"IR layer '{t.layer}': FINN's weights of output channel {bad[0]} are neither the "
                                f"IR's nor their negation ({int(corr[bad[0]])} of {t.mw} agree in sign)")
    return np.sign(corr).astype(np.int64)


def orient(t: IRThresholds, signs: np.ndarray) -> IRThresholds:
    """The thresholds over FINN's input where channel c reads −acc (signs[c] = −1): acc ≤ T ⇔ −acc ≥ −T,
    so a decreasing channel becomes an increasing one (and an increasing one decreasing)."""
    signs = np.asarray(signs).reshape(-1)
    if np.all(signs == 1):
        return t
    rows = len(signs)
    values = np.array(np.broadcast_to(t.values, (rows, t.values.shape[1])))
    direction = np.array(np.broadcast_to(t.direction, (rows,)))
    neg = signs < 0
    lo, hi = min(t.lo, -t.hi), max(t.hi, -t.lo)
    # a channel constant over the range (every threshold below or above it: the IR calls it increasing)
    # is the same constant over -acc, whatever the sign
    const = neg & np.all((values <= t.lo) | (values > t.hi), axis=1)
    on = ((values <= t.lo) & const[:, None]).sum(axis=1)
    values[neg] = np.sort(-values[neg], axis=1)
    direction[neg] = -direction[neg]
    for c in np.flatnonzero(const):
        values[c] = np.where(np.arange(values.shape[1]) < on[c], lo, hi + 1)
        direction[c] = 1
    weights = None if t.weights is None else t.weights * signs[:, None]
    return IRThresholds(t.layer, values, direction, t.y_min, lo, hi, t.mw, weights)


def to_popcount(t: IRThresholds) -> IRThresholds:
    """An XNOR layer's thresholds over p = (acc + MW) / 2: acc ≥ T ⇔ p ≥ ⌈(T + MW) / 2⌉."""
    if t.mw is None:
        raise ValueError(f"IR layer '{t.layer}' is not a MatrixVector layer: no popcount domain")
    mw = t.mw
    return IRThresholds(t.layer, -((-(t.values + mw)) // 2), t.direction, t.y_min,
                        max(0, -((-(t.lo + mw)) // 2)), min(mw, (t.hi + mw) // 2), None, None)


def reconcile(node: str, finn_t: np.ndarray, ir: IRThresholds, in_lo: int, in_hi: int) -> tuple[np.ndarray, int]:
    """FINN's thresholds (channels or 1, levels) of MultiThreshold `node` whose input spans
    [in_lo, in_hi], replaced by the IR's. Returns (new thresholds, number of values that changed
    meaning). Raises ThresholdMismatch where they differ by more than one step inside the range."""
    where = f"MultiThreshold '{node}' vs IR layer '{ir.layer}'"
    if np.any(ir.direction != 1):
        raise ThresholdMismatch(f"{where}: the IR has decreasing channels, which a MultiThreshold cannot express")
    finn_t = np.asarray(finn_t, dtype=np.float64)
    if finn_t.shape[1] != ir.values.shape[1]:
        raise ThresholdMismatch(f"{where}: {finn_t.shape[1]} vs {ir.values.shape[1]} thresholds per channel")
    rows = max(finn_t.shape[0], ir.values.shape[0])
    if rows % finn_t.shape[0] or rows % ir.values.shape[0]:
        raise ThresholdMismatch(f"{where}: {finn_t.shape[0]} vs {ir.values.shape[0]} channels")
    lo, hi = max(in_lo, ir.lo), min(in_hi, ir.hi)
    # on integers in [lo, hi], x >= T depends only on ceil(T) clipped to [lo, hi + 1]
    f = np.clip(np.ceil(np.broadcast_to(finn_t, (rows, finn_t.shape[1]))), lo, hi + 1).astype(np.int64)
    i = np.clip(np.broadcast_to(ir.values, f.shape), lo, hi + 1)
    diff = np.abs(f - i)
    if diff.max(initial=0) > 1:
        c, k = np.unravel_index(int(np.argmax(diff)), diff.shape)
        raise ThresholdMismatch(f"{where}: channel {c}, threshold {k}: FINN {f[c, k]} vs IR {i[c, k]} over inputs "
                                f"{lo}..{hi} (more than a rounding tie: the graphs compute different functions)")
    return i.astype(np.float32), int(np.count_nonzero(diff))
