"""Buffer sizes, flow bounds and a beat-level model of the sliding-window generator (hw/rtl/bnn_swg.sv).

The module keeps R = K + S input rows in a line buffer of R·W·CB words (CB = C/E beats per pixel).
Input rows are counted over frames; the buffer accepts a row while fewer than R complete rows at
or after the first row the current output row needs are held, and an output row starts once its
window's real rows are all complete. From that the stream bounds follow exactly (counted in input
beats from the first beat of the frame whose output row `ho` is meant):

* `swg_input_needed(.., ho)`: output row ho's first beat cannot leave before this many beats were
  accepted: rows 0 .. min(H-1, ho·S-PAD+K-1) complete.
* `swg_input_limit(.., ho)`: until output row ho has been read out of the buffer, the module has
  accepted at most this many beats (it may exceed H·W·CB: the next frame's first rows).
* `swg_max_lead_beats`: the most input beats it holds ahead of its output, R·W·CB = the buffer.

A first output beat leaves `SWG_LATENCY` cycles after the input beat that completed its rows
(without output stalls). `swg_schedule` gives the cycle of every transfer when nothing stalls
(the tests check the RTL against it cycle by cycle) and `swg_cycles_per_frame` the steady-state
frame period: max(H·W·CB, HO·WO·K·K·CB), one beat per cycle on the busier side, except in
nearly balanced corner cases listed there.

Sizing the FIFO of a branch that runs parallel to this module (a fork feeding both this
generator and, e.g., a shortcut into an adder that pairs output pixel p of the conv path with
pixel p of the shortcut): when the conv path is about to produce output row ho, the other side
can have consumed at most ho·WO pixels, while the fork has pushed `swg_input_needed(ho)` beats
into both branches. So the branch FIFO needs `swg_bypass_beats(.., full_rate=False)` beats to
avoid a deadlock, and `swg_bypass_beats(.., full_rate=True)` so that it never throttles the
generator (add the latency of whatever sits between the generator and the join in both cases).
"""
from __future__ import annotations

import numpy as np

SWG_LATENCY = 3  # cycles from the accepting cycle of the last needed input beat to the first output beat
SWG_OUT_FIFO = 4  # output beats the module may hold after reading them from the buffer
SWG_READ_REGS = 3  # the generator's READ_REGS where the map allows it (swg_read_regs)


def swg_latency(read_regs: int = 0) -> int:
    """SWG_LATENCY of a module with READ_REGS registers on its line buffer's read path."""
    return SWG_LATENCY + read_regs


def swg_out_fifo(read_regs: int = 0) -> int:
    """Its output FIFO (and so the beats it may have issued ahead of its output)."""
    return SWG_OUT_FIFO + read_regs


def swg_read_regs(w: int, c: int, e: int) -> int:
    """READ_REGS for a W-wide map of C/E beats per pixel: SWG_READ_REGS where W*C/E >= 4 (the RTL's
    condition: the last reads of a released row stay ahead of the first writes into its slot), else 0."""
    return SWG_READ_REGS if w * (c // e) >= 4 else 0


def swg_out_size(h: int, w: int, k: int, s: int, pad: int) -> tuple[int, int]:
    """(HO, WO) of the window grid."""
    return (h + 2 * pad - k) // s + 1, (w + 2 * pad - k) // s + 1


def check_swg_params(h: int, w: int, c: int, e: int, k: int, s: int, pad: int) -> None:
    """The parameter space the RTL supports (raises ValueError otherwise)."""
    if min(h, w, c, e, k, s) < 1 or pad < 0:
        raise ValueError("sizes, kernel and stride must be >= 1 and the padding >= 0")
    if c % e:
        raise ValueError(f"{e} elements per beat do not divide {c} channels")
    if pad >= k:
        raise ValueError(f"padding {pad} must be smaller than the kernel {k}")
    if h + 2 * pad < k or w + 2 * pad < k:
        raise ValueError(f"kernel {k} is larger than the padded {h}x{w} map")


def swg_buffer_rows(k: int, s: int, extra_rows: int = 0) -> int:
    """R: input rows in the line buffer (the RTL's K + S + EXTRA_ROWS)."""
    return k + s + extra_rows


def swg_full_rate_extra_rows(h: int, k: int, s: int, pad: int) -> int:
    """EXTRA_ROWS that make the frame period exactly max(input beats, output beats) in every case.

    At a frame boundary the buffer must hold the rows of the last window row and the rows after it
    (rows no window uses) and load the next frame's first min(H, K-PAD) rows at the same time:
    R >= (H - lo(HO-1)) + min(H, K-PAD). Zero for the usual K3 S1 PAD1, K3 S2 PAD1, K1.
    """
    ho = (h + 2 * pad - k) // s + 1
    lo_last = max(0, (ho - 1) * s - pad)
    return max(0, (h - lo_last) + min(h, k - pad) - (k + s))


def swg_buffer_beats(h: int, w: int, c: int, e: int, k: int, s: int, pad: int, extra_rows: int = 0) -> int:
    """Words (of E elements) in the line buffer: (K+S+EXTRA_ROWS)·W·C/E."""
    check_swg_params(h, w, c, e, k, s, pad)
    return swg_buffer_rows(k, s, extra_rows) * w * (c // e)


def swg_input_needed(h: int, w: int, c: int, e: int, k: int, s: int, pad: int, ho: int) -> int:
    """Input beats of a frame that must be accepted before output row `ho` can start."""
    check_swg_params(h, w, c, e, k, s, pad)
    return min(h, ho * s - pad + k) * w * (c // e)


def swg_first_output_input_beats(h: int, w: int, c: int, e: int, k: int, s: int, pad: int) -> int:
    """Input beats consumed before the first output beat of a frame can leave: min(H, K-PAD)·W·C/E."""
    return swg_input_needed(h, w, c, e, k, s, pad, 0)


def swg_input_limit(h: int, w: int, c: int, e: int, k: int, s: int, pad: int, ho: int,
                    extra_rows: int = 0) -> int:
    """Most input beats (from the frame's first) accepted before output row `ho` is read out."""
    check_swg_params(h, w, c, e, k, s, pad)
    return (max(0, ho * s - pad) + swg_buffer_rows(k, s, extra_rows)) * w * (c // e)


def swg_max_lead_beats(h: int, w: int, c: int, e: int, k: int, s: int, pad: int, extra_rows: int = 0) -> int:
    """Most input beats held ahead of the output: max over ho of input_limit(ho) - ho·S·W·CB."""
    ho_n, _ = swg_out_size(h, w, k, s, pad)
    cb = c // e
    return max(swg_input_limit(h, w, c, e, k, s, pad, ho, extra_rows) - ho * s * w * cb for ho in range(ho_n))


def swg_bypass_beats(h: int, w: int, c: int, e: int, k: int, s: int, pad: int, full_rate: bool = True,
                     other_cb: int | None = None, extra_rows: int = 0) -> int:
    """Beats a parallel branch must buffer next to this generator (see the module docstring).

    The other branch consumes pixels on this generator's output grid, `other_cb` beats per pixel
    (default C/E, the same stream). Without `full_rate` the bound for deadlock freedom, with it
    the bound under which the branch never throttles the generator.
    """
    ho_n, wo_n = swg_out_size(h, w, k, s, pad)
    other = c // e if other_cb is None else other_cb
    if full_rate:
        return max(swg_input_limit(h, w, c, e, k, s, pad, ho, extra_rows) - ho * wo_n * other
                   for ho in range(ho_n))
    return max(swg_input_needed(h, w, c, e, k, s, pad, ho) - ho * wo_n * other for ho in range(ho_n))


def swg_schedule(h: int, w: int, c: int, e: int, k: int, s: int, pad: int, frames: int = 1,
                 extra_rows: int = 0) -> tuple[list[int], list[int]]:
    """Cycle-exact flow of the RTL when the input is always valid and the output always ready.

    Returns (input_row_start, output_row_issue): the cycle (from the first accepted input beat)
    at which input row g (counted over `frames` frames) starts, its W·CB beats then being accepted
    on consecutive cycles, and the cycle at which output row q starts issuing buffer reads, its
    WO·K·K·CB beats then leaving on consecutive cycles from SWG_LATENCY - 1 cycles later.
    """
    check_swg_params(h, w, c, e, k, s, pad)
    ho_n, wo_n = swg_out_size(h, w, k, s, pad)
    wc = w * (c // e)
    row_beats = wo_n * k * k * (c // e)
    r_rows = swg_buffer_rows(k, s, extra_rows)
    n_in, n_out = frames * h, frames * ho_n

    def base(q: int) -> int:  # first input row output row q needs (global)
        f, r = divmod(q, ho_n)
        return f * h + max(0, r * s - pad)

    def last(q: int) -> int:  # last input row output row q needs (global)
        f, r = divmod(q, ho_n)
        return f * h + min(h - 1, r * s - pad + k - 1)

    a: list[int] = []
    issue: list[int] = []
    done: list[int] = []  # cycle of the last issue of each output row

    def emit_until(g: int) -> None:  # every output row whose rows end before input row g
        while len(issue) < n_out and last(len(issue)) < g:
            q = len(issue)
            t = a[last(q)] + wc  # the row's last input row is complete (visible the next cycle)
            if q:
                t = max(t, done[q - 1] + 1)
            issue.append(t)
            done.append(t + row_beats - 1)

    q_free = 0
    for g in range(n_in):
        emit_until(g)
        t = a[g - 1] + wc if g else 0
        if g - r_rows + 1 > 0:  # slot of row g - R still in use until the buffer base passes it
            while base(q_free + 1) < g - r_rows + 1:
                q_free += 1
            t = max(t, done[q_free] + 1)
        a.append(t)
    emit_until(n_in)
    return a, issue


def swg_cycles_per_frame(h: int, w: int, c: int, e: int, k: int, s: int, pad: int, extra_rows: int = 0) -> int:
    """Cycles per frame in steady state (frames back to back, no stalls), from `swg_schedule`.

    max(H·W·CB, HO·WO·K·K·CB) (one beat per cycle on the busier side) wherever each output row's
    window gives the input enough time to load the next rows; more where input and output rates
    nearly balance or the next frame's first rows do not fit beside the last window rows (PAD = 0
    with K > S: up to min(H, K-PAD) + rows no window uses - S rows of input per frame).
    `swg_full_rate_extra_rows` gives the EXTRA_ROWS that remove this.
    """
    _, issue = swg_schedule(h, w, c, e, k, s, pad, frames=4, extra_rows=extra_rows)
    ho_n, _ = swg_out_size(h, w, k, s, pad)
    return issue[3 * ho_n] - issue[2 * ho_n]


def swg_windows(x: np.ndarray, k: int, s: int, pad: int, pad_value: int) -> np.ndarray:
    """(N, H, W, C) -> (N, HO, WO, K·K·C) patches in (ky, kx, c) order (the IR's SlidingWindow)."""
    x = np.pad(np.asarray(x), ((0, 0), (pad, pad), (pad, pad), (0, 0)), constant_values=pad_value)
    n, hp, wp, c = x.shape
    ho, wo = (hp - k) // s + 1, (wp - k) // s + 1
    out = np.empty((n, ho, wo, k, k, c), dtype=x.dtype)
    for ky in range(k):
        for kx in range(k):
            out[:, :, :, ky, kx, :] = x[:, ky:ky + (ho - 1) * s + 1:s, kx:kx + (wo - 1) * s + 1:s, :]
    return out.reshape(n, ho, wo, k * k * c)


def swg_beats(x: np.ndarray, e: int, ew: int, k: int, s: int, pad: int, pad_pattern: int) -> list[int]:
    """Output beats of the RTL for frames `x` (N, H, W, C) of EW-bit element patterns (0 <= x < 2**ew)."""
    win = swg_windows(x, k, s, pad, pad_pattern).reshape(-1, e).astype(object)
    shifts = [j * ew for j in range(e)]
    return [sum(int(v) << sh for v, sh in zip(row, shifts)) for row in win]
