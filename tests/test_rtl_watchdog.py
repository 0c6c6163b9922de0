"""The simulation watchdog follows the design: a heavily folded plan whose latency is far
beyond a fixed limit simulates, and a genuinely blocked stream is still called a deadlock."""
import numpy as np
import pytest

from build_flow.compile import compile_model
from build_flow.models import Selected
from hw.generate import generate
from hw.planner import FOLDED_OPS, Folding
from hw.rtlsim import MIN_WATCHDOG, build_design, simulate, watchdog_cycles
from hw.sim import SimError
from hw.stream import pack_beats
from verify.golden_numpy import run_numpy

from helpers import random_pixels, tiny_student

OLD_FIXED_WATCHDOG = 200_000  # the constant the harness used before


@pytest.fixture(scope="module")
def slow_design(tmp_path_factory):
    """The tiny student folded as far as it goes: PE = SIMD = 1 in every layer (a folding given
    whole, not the planner's choice, so the latency does not depend on its cost model)."""
    d = tmp_path_factory.mktemp("slow")
    _, graph = compile_model(Selected(tiny_student(4, seed=3), (3, 32, 32), "tiny", "config"), d)
    layers = {l.name: ({"pe": 1, "simd": 1} if l.op == "MatrixVector" else {"pe": 1})
              for l in graph.layers if l.op in FOLDED_OPS}
    return graph, generate(graph, Folding(layers, clock_mhz=100.0, source="test: fully folded"), d)


def images(n, seed):
    return np.ascontiguousarray(random_pixels(n, seed=seed).numpy().astype(np.uint8).transpose(0, 2, 3, 1))


def test_latency_far_beyond_the_old_limit_simulates_bit_exactly(slow_design):
    graph, design = slow_design
    x = images(2, seed=4)
    golden = run_numpy(graph, x)
    res = simulate(design, x, in_stall=0.3, out_stall=0.3, seed=5, golden=golden)
    assert res.mismatches == 0 and np.array_equal(res.labels, golden["label"].reshape(-1))
    assert res.latency_cycles > 3 * OLD_FIXED_WATCHDOG  # the old harness called this a deadlock
    assert watchdog_cycles(design, 0.3, 0.3) > res.latency_cycles


def test_a_starved_design_is_still_reported_as_a_deadlock(slow_design):
    """Half a frame of pixels, one frame of scores expected: the design waits forever for the
    rest. Reported with today's message (naming the streams) after the derived idle limit."""
    graph, design = slow_design
    pin = design["ports"]["input"]
    beats = pack_beats(images(1, seed=6).reshape(-1), pin["elems"], pin["ew"])
    half = beats[:len(beats) // 2]
    expect = {o["port"]: o["beats_per_frame"] for o in design["ports"]["outputs"].values()}
    limit = watchdog_cycles(design)
    with pytest.raises(SimError, match=rf"deadlock: no beat moved for {limit} cycles .*"
                                       rf"{pin['port']} accepted {len(half)}/{len(half)} beats.*delivered 0/"):
        build_design(design).run({pin["port"]: half}, expect, max_idle=limit)


def test_watchdog_grows_with_the_plan_and_the_stalls(slow_design):
    _, design = slow_design
    serial = sum(design["predicted"]["cycles"].values())
    assert watchdog_cycles(design) == 2 * serial + 1
    assert watchdog_cycles(design, 0.5, 0.2) == int(2 * serial / 0.5) + 1
    small = {"predicted": {"cycles": {"a": 10, "b": 20}}}
    assert watchdog_cycles(small) == MIN_WATCHDOG
