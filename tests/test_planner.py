"""The folding planner and the folding file: divisibility, cycle predictions, hand-edited files
with clear errors."""
import numpy as np
import pytest

from build_flow.compile import compile_model
from build_flow.models import Selected
from hw.planner import (MAX_SIMD_BITS, Folding, estimate_resources, load_folding, plan, predict_cycles,
                        save_folding, stream_elems, total_luts)
from hw.stream import elem_width
from model.errors import ConfigError

from helpers import tiny_student


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    _, g = compile_model(Selected(tiny_student(4), (3, 32, 32), "tiny", "config"), tmp_path_factory.mktemp("c"))
    return g


@pytest.mark.parametrize("fps", [500, 3000, 10000])
def test_plan_meets_the_target_with_legal_folds(graph, fps):
    folding = plan(graph, 100, fps=fps)
    cycles = predict_cycles(graph, folding)
    assert max(cycles.values()) <= 100e6 / fps
    for layer in graph.layers:
        if layer.op == "MatrixVector":
            mh, mw = graph.arrays[layer.attrs["weights"]].shape
            pe, simd = folding.pe(layer.name), folding.simd(layer.name)
            assert mh % pe == 0 and mw % simd == 0
            window = graph.producer(layer.inputs[0])
            assert simd == 1 or simd * elem_width(graph.tensors[layer.inputs[0]].dtype) <= MAX_SIMD_BITS
            if window.op == "SlidingWindow":
                assert cycles[window.name] <= 100e6 / fps  # the window keeps up at gcd(SIMD, C) per beat
                vectors = int(np.prod(graph.tensors[layer.outputs[0]].shape[:-1]))
                assert cycles[layer.name] == vectors * (mw // simd) * (mh // pe)


def test_a_faster_target_costs_more(graph):
    luts = [sum(r["lut"] for r in estimate_resources(graph, plan(graph, 100, fps=f)).values()) for f in (500, 5000)]
    assert luts[0] < luts[1]


def test_unreachable_target_says_so(graph):
    folding = plan(graph, 100, fps=1e7)
    assert any("out of reach" in n for n in folding.notes)


def test_lut_budget_plan_fits_and_is_fastest_that_fits(graph):
    small, large = plan(graph, 100, lut_budget=1500), plan(graph, 100, lut_budget=12000)
    for f, budget in ((small, 1500), (large, 12000)):
        assert sum(r["lut"] for r in estimate_resources(graph, f).values()) <= budget
    assert max(predict_cycles(graph, large).values()) < max(predict_cycles(graph, small).values())
    # the fastest reachable interval, at the cheapest folding reaching it (not the most parallel one)
    assert total_luts(graph, large) == total_luts(graph, plan(graph, 100, fps=100e6 / max(predict_cycles(graph, large).values())))


def test_stream_widths_follow_the_folding(graph):
    folding = plan(graph, 100, fps=3000)
    elems = stream_elems(graph, folding)
    for layer in graph.layers:
        if layer.op == "SlidingWindow":
            consumer = graph.consumers(layer.outputs[0])[0]
            channels = graph.tensors[layer.inputs[0]].shape[-1]
            assert elems[layer.outputs[0]] == np.gcd(folding.simd(consumer.name), channels)


def test_a_first_layer_takes_whole_windows_instead_of_many_threshold_units(graph):
    """3 input channels: SIMD 27 (three kernel positions of 3 channels... all nine) beats PE 8 x SIMD 3,
    since every PE carries a threshold unit."""
    folding = plan(graph, 100, fps=10000)
    stem = graph.layers[1]
    assert stem.op == "MatrixVector" and graph.producer(stem.inputs[0]).op == "SlidingWindow"
    assert folding.simd(stem.name) > 3 and folding.simd(stem.name) % 3 == 0
    assert stream_elems(graph, folding)[graph.layers[0].outputs[0]] == 3  # the window: one position per beat


def test_folding_file_round_trip(graph, tmp_path):
    folding = plan(graph, 125, fps=3000)
    path = save_folding(folding, tmp_path / "folding.yaml")
    again = load_folding(path, graph)
    assert again.layers == folding.layers and again.clock_mhz == 125


def _edit(graph, tmp_path, change):
    folding = plan(graph, 100, fps=3000)
    layers = {k: dict(v) for k, v in folding.layers.items()}
    change(layers)
    path = save_folding(Folding(layers, 100), tmp_path / "folding.yaml")
    return lambda: load_folding(path, graph)


def test_folding_file_errors_name_layer_and_field(graph, tmp_path):
    with pytest.raises(ConfigError, match=r"layer 'Conv_1' \(MatrixVector\): pe = 3 does not divide its 8 output"):
        _edit(graph, tmp_path, lambda l: l["Conv_1"].update(pe=3))()
    with pytest.raises(ConfigError, match=r"layer 'Conv_1' \(MatrixVector\): simd = 16 does not divide its MW "
                                          r"\(72\)"):
        _edit(graph, tmp_path, lambda l: l["Conv_1"].update(simd=16))()
    with pytest.raises(ConfigError, match=r"layer 'Conv_0' \(MatrixVector\): pe = 0 must be an integer >= 1"):
        _edit(graph, tmp_path, lambda l: l["Conv_0"].update(pe=0))()
    with pytest.raises(ConfigError, match=r"layer 'Conv_9' is not a folded layer of this model"):
        _edit(graph, tmp_path, lambda l: l.update(Conv_9={"pe": 1, "simd": 1}))()
    with pytest.raises(ConfigError, match=r"layer 'Conv_0' \(MatrixVector\) is missing"):
        _edit(graph, tmp_path, lambda l: l.pop("Conv_0"))()
    with pytest.raises(ConfigError, match=r"unknown field 'simd'"):
        _edit(graph, tmp_path, lambda l: l["Quant_3"].update(simd=2))()
    bad = tmp_path / "bad.yaml"
    bad.write_text("layers: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: not valid YAML"):
        load_folding(bad, graph)
    with pytest.raises(ConfigError, match=r"nope.yaml: folding file not found"):
        load_folding(tmp_path / "nope.yaml", graph)


def test_plan_needs_exactly_one_goal(graph):
    with pytest.raises(ConfigError, match="not both or neither"):
        plan(graph, 100)
