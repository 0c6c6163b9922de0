"""Whole-network RTL simulation: stream images through the generated top in Verilator and
check every output integer against the IR golden model's outputs it is handed.

The testbench (hw/sim.py) feeds one pixel per beat with seeded random tvalid stalls and takes
the class scores and labels with random tready stalls. Measured from the transfer cycles:

* cycles per frame: the steady-state interval between consecutive frames' labels
  (the median over the frames after the first, whose interval includes filling the pipeline);
* latency: from the first pixel of frame 0 accepted to its label leaving;
* FPS at the design's clock.

The testbench calls a deadlock when no beat moves on the external ports for a number of
cycles. That number follows the design (`watchdog_cycles`), not a constant: a heavily folded
plan legitimately goes a long time without an external beat (after the last pixel of a frame,
until its first score), so the limit is twice the planner's serial bound on that gap, the sum
of every layer's cycles per frame (each layer finishing a whole frame before the next starts:
no pipeline is slower), stretched by the stall probability, and at least `MIN_WATCHDOG`.
A real deadlock is still reported, after that many idle cycles, naming the streams.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .sim import Port, build
from .stream import pack_beats, unpack_beats

MIN_WATCHDOG = 10_000  # cycles: floor for small designs (reset, FIFO warm-up)


def watchdog_cycles(design: dict, in_stall: float = 0.0, out_stall: float = 0.0) -> int:
    """Idle cycles (no beat on any external port) after which `design` counts as deadlocked
    (module doc). Random stalls slow every stream by at most 1 / (1 - p)."""
    serial = sum(design["predicted"]["cycles"].values())
    return max(MIN_WATCHDOG, int(2 * serial / (1.0 - max(in_stall, out_stall))) + 1)


@dataclass
class RtlSimResult:
    images: int
    mismatches: int            # images whose scores or label differ from the golden model
    logits: np.ndarray         # (N, classes) accumulators from the RTL
    labels: np.ndarray         # (N,)
    cycles_per_frame: float
    latency_cycles: int
    fps: float
    clock_mhz: float
    build_s: float
    sim_s: float
    total_cycles: int


def build_design(design: dict):
    """The Verilator simulator of a generated design's top (cached by hw.sim.build)."""
    ports = design["ports"]
    pin = ports["input"]
    return build(design["top"], design["sources"], {}, [Port(pin["port"], pin["width"])],
                 [Port(o["port"], o["width"]) for o in ports["outputs"].values()])


def simulate(design: dict, images: np.ndarray, golden: dict, in_stall: float = 0.0,
             out_stall: float = 0.0, seed: int = 0) -> RtlSimResult:
    """`images` uint8 (N, H, W, C); `golden` the golden model's outputs on them by role (what
    verify.golden_numpy.run_numpy returns): every output integer of the RTL is compared with it."""
    n = len(images)
    ports = design["ports"]
    pin = ports["input"]
    outs = ports["outputs"]
    t0 = time.perf_counter()
    sim = build_design(design)
    build_s = time.perf_counter() - t0
    beats = pack_beats(images.reshape(-1), pin["elems"], pin["ew"])
    t0 = time.perf_counter()
    res = sim.run({pin["port"]: beats}, {o["port"]: n * o["beats_per_frame"] for o in outs.values()},
                  in_stall=in_stall, out_stall=out_stall, seed=seed,
                  max_idle=watchdog_cycles(design, in_stall, out_stall))
    sim_s = time.perf_counter() - t0
    got = {role: unpack_beats(res.outputs[o["port"]], o["elems"], o["ew"], o["signed"], o["bipolar"])
           .reshape(n, *o["shape"]) for role, o in outs.items()}
    bad = np.zeros(n, dtype=bool)
    for role, value in got.items():
        ref = np.asarray(golden[role]).reshape(value.shape)
        bad |= ~np.all((ref == value).reshape(n, -1), axis=1)
    # frame boundaries: the last beat of each frame on the label port (or the scores)
    role = "label" if "label" in outs else next(iter(outs))
    per = outs[role]["beats_per_frame"]
    done = np.asarray(res.out_cycles[outs[role]["port"]])[per - 1::per]
    intervals = np.diff(done)
    cpf = float(np.median(intervals[1:] if len(intervals) > 1 else intervals)) if len(intervals) else float("nan")
    latency = int(done[0] - res.in_cycles[pin["port"]][0])
    clock = float(design["clock_mhz"])
    return RtlSimResult(n, int(bad.sum()), got.get("logits"), got.get("label", np.zeros(0)).reshape(-1),
                        cpf, latency, clock * 1e6 / cpf if cpf == cpf and cpf > 0 else float("nan"), clock,
                        build_s, sim_s, res.cycles)
