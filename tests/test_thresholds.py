"""Threshold folding: exhaustive over the accumulator range, both signs of γ, zero γ, N-bit."""
import numpy as np
import pytest

from build_flow.thresholds import DECREASING, INCREASING, find_thresholds, rational_levels


def affine32(acc, alpha, a, b):
    """The model's eval arithmetic before the quantizer: fl(fl(fl(acc·α)·a) + b) in float32."""
    return (acc.astype(np.float32)[:, None] * alpha) * a + b


def float32_levels(acc, alpha, a, b, scale, y_min, y_max):
    """... then round-half-even to the grid and clamp (Brevitas' and qonnx's Quant)."""
    return np.clip(np.round(affine32(acc, alpha, a, b) / np.float32(scale)), y_min, y_max).astype(np.int64)


@pytest.mark.parametrize("bits", [1, 4, 8])
def test_thresholds_reproduce_every_accumulator(bits):
    rng = np.random.default_rng(bits)
    channels, fan_in = 24, 3 * 3 * 16
    alpha = rng.uniform(0.01, 0.2, channels).astype(np.float32)
    a = rng.normal(0, 1, channels).astype(np.float32)
    a[:3] = 0.0                      # γ = 0: a constant level
    a[3:12] = -np.abs(a[3:12])       # γ < 0: decreasing
    b = rng.normal(0, 1, channels).astype(np.float32)
    if bits == 1:                    # sign: level 1 (+1) where the affine value is >= 0, else 0 (-1)
        y_min, y_max = 0, 1
        levels = lambda acc: (affine32(acc, alpha, a, b) >= 0).astype(np.int64)
    else:
        y_min, y_max, scale = -2 ** (bits - 1), 2 ** (bits - 1) - 1, 2.0 ** -(bits - 3)
        levels = lambda acc: float32_levels(acc, alpha, a, b, scale, y_min, y_max)
    th = find_thresholds(levels, -fan_in, fan_in, y_min, y_max, channels)
    acc = np.arange(-fan_in, fan_in + 1)
    assert np.array_equal(th.apply(acc[:, None].repeat(channels, 1)), levels(acc))
    assert (th.direction[3:12] == DECREASING).all() and (th.direction[12:][a[12:] > 0] == INCREASING).all()
    assert th.values.shape == (channels, y_max - y_min)
    # boundary values: every threshold flips the output exactly there
    for c in range(channels):
        for k, t in enumerate(th.values[c]):
            if -fan_in < t <= fan_in and th.direction[c] == INCREASING:
                assert levels(np.array([t]))[0, c] >= y_min + k + 1 > levels(np.array([t - 1]))[0, c]


def test_rational_and_float32_thresholds_differ_only_within_an_ulp_of_a_boundary():
    rng = np.random.default_rng(7)
    channels, fan_in, bits = 64, 1152, 8
    alpha = rng.uniform(0.01, 0.2, channels).astype(np.float32)
    a = rng.normal(0, 2, channels).astype(np.float32)
    b = rng.normal(0, 2, channels).astype(np.float32)
    y_min, y_max, scale = -128, 127, 1 / 32
    acc = np.arange(-fan_in, fan_in + 1, 7)
    fl = float32_levels(acc, alpha, a, b, scale, y_min, y_max)
    checked = 0
    for i, v in enumerate(acc):
        for c in range(0, channels, 8):
            r = rational_levels(int(v), [alpha[c], a[c]], b[c], scale, y_min, y_max)
            if r != fl[i, c]:  # only possible when the exact value sits at a rounding boundary
                exact = float(v) * float(alpha[c]) * float(a[c]) + float(b[c])
                frac = exact / scale - np.floor(exact / scale)
                assert abs(frac - 0.5) < 1e-4, (v, c, exact)
            checked += 1
    assert checked > 1000


def test_non_monotone_function_is_refused():
    with pytest.raises(ValueError, match="channel 0 is not a monotone"):
        find_thresholds(lambda acc: (acc % 2)[:, None], 0, 5, 0, 1, 1, "toy")
