"""The folding planner and the folding file: divisibility, cycle predictions, hand-edited files
with clear errors; the resource estimate against recorded Yosys totals; the plan (screening) command."""
from pathlib import Path

import numpy as np
import pytest

from build_flow.compile import compile_model
from build_flow.models import Selected, select_model
from build_flow.rtl_flow import main as flow_main
from hw.planner import (GLUE, MAX_SIMD_BITS, Folding, binary_macs, estimate_resources, load_folding, plan,
                        predict_cycles, save_folding, stream_elems, total_luts)
from hw.stream import elem_width
from model.errors import ConfigError, run_cli

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
    small, large = plan(graph, 100, lut_budget=4000), plan(graph, 100, lut_budget=12000)
    for f, budget in ((small, 4000), (large, 12000)):
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
    assert again.layers == folding.layers and again.clock_mhz == 125 and again.family == "xc7"
    folding.family = "ecp5"
    assert load_folding(save_folding(folding, tmp_path / "ecp5.yaml"), graph).family == "ecp5"


def test_the_family_reaches_the_rtl(graph, tmp_path):
    """A folding's FPGA family travels with the folded IR and decides the weight ROM layout the
    generator writes: on the ECP5 a logic ROM of 17 .. 128 words in banks of 16 words, on xc7 one
    memory; a family the RTL does not know is refused with the file's name."""
    from build_flow.pipeline import PlanRequest, plan_stage, save_folded_ir
    from hw.generate import generate
    from hw.mvtu_mem import logic_rom_bank, weight_rom
    from hw.planner import folding_from_ir

    import copy

    graph = copy.deepcopy(graph)   # the module's graph stays unfolded for the other tests
    params = {}
    for family in ("xc7", "ecp5"):
        folding = plan_stage(graph, PlanRequest(fps=3000, family=family if family == "ecp5" else None))
        assert folding.family == family
        folded = save_folded_ir(graph, folding, tmp_path / family / "ir")
        assert folding_from_ir(folded).family == family
        design = generate(folded, folding, tmp_path / family)
        assert design["family"] == family
        text = (tmp_path / family / "rtl" / "bnn_top.sv").read_text()
        params[family] = text
    banked = [l for l in graph.layers if l.op == "MatrixVector"
              and logic_rom_bank(*weight_rom(*graph.arrays[l.attrs["weights"]].shape, l.pe, l.simd), "ecp5")]
    assert banked, "no layer of the test student keeps a 17..128-word ROM in logic at this plan"
    assert ".WEIGHT_BRAM(0)" in params["ecp5"] and ".WEIGHT_BRAM(0)" not in params["xc7"]
    # the ECP5 layout computes what the IR computes: 6 seeded images under random stalls
    from hw.rtlsim import simulate
    from verify.golden_numpy import run_numpy

    x = np.random.default_rng(6).integers(0, 256, size=(6, 32, 32, 3)).astype(np.uint8)
    golden = run_numpy(graph, x)
    res = simulate(design, x, in_stall=0.3, out_stall=0.3, seed=6, golden=golden)
    assert res.mismatches == 0 and np.array_equal(res.logits, golden["logits"])
    bad = tmp_path / "bad-family.yaml"
    bad.write_text(save_folding(plan(graph, 100, fps=3000), tmp_path / "f.yaml").read_text()
                   .replace("family: xc7", "family: ice40"))
    with pytest.raises(ConfigError, match=r"bad-family.yaml: family = 'ice40' is not an FPGA family"):
        load_folding(bad, graph)


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


# ---------------------------------------------------------------- the estimate against Yosys

REPO = Path(__file__).resolve().parents[1]
FLAGSHIP_CKPT = REPO / "models" / "student-flagship.pt"
# Yosys 0.23 synth_xilinx totals recorded in the README (benchmarks/rtl_networks.py, 2026-11-26)
YOSYS_LUT = {"flagship": 47105, "cnv_1w1a": 17081}
# the 3,300-FPS plan those figures were measured on (PE x SIMD per MatrixVector)
FLAGSHIP_3300_FPS_FOLDING = {"Conv_0": (2, 27), "Conv_1": (4, 252), "Conv_2": (4, 252), "Conv_3": (2, 252),
                             "Conv_4": (4, 252), "Conv_5": (2, 252), "Conv_6": (4, 252), "MatMul_0": (1, 1)}


def test_estimate_within_15_percent_of_yosys_on_the_trained_flagship(tmp_path):
    if not FLAGSHIP_CKPT.exists():
        pytest.skip(f"{FLAGSHIP_CKPT} not in this checkout")
    _, g = compile_model(select_model(ckpt=str(FLAGSHIP_CKPT)), tmp_path)
    folding = plan(g, 100, fps=3300)
    mv = {l.name: (folding.pe(l.name), folding.simd(l.name)) for l in g.layers if l.op == "MatrixVector"}
    assert mv == FLAGSHIP_3300_FPS_FOLDING  # the folding the Yosys figure belongs to
    assert abs(total_luts(g, folding) / YOSYS_LUT["flagship"] - 1) < 0.15


def test_estimate_within_15_percent_of_yosys_on_cnv_1w1a(tmp_path):
    _, g = compile_model(select_model(peer="cnv_1w1a", seed=0), tmp_path)
    folding = load_folding(REPO / "configs" / "folding" / "cnv_1w1a-finn-examples.yaml", g)
    res = estimate_resources(g, folding)
    assert res[GLUE]["lut"] > 0  # the FIFOs and width converters between layers are costed too
    assert abs(total_luts(g, folding) / YOSYS_LUT["cnv_1w1a"] - 1) < 0.15


# ---------------------------------------------------------------- python -m build_flow.rtl_flow plan (make plan)

TINY_CONFIG = """name: {name}
model:
  arch: bireal
  widths: [8, 16]
  blocks: [1, {blocks}]
  shortcut_bits: 4
  stem_kernel: 3
"""


def _config(tmp_path, name: str, blocks: int = 1) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(TINY_CONFIG.format(name=name, blocks=blocks))
    return str(path)


def _plan_rows(capsys, *argv) -> dict[str, str]:
    """model name -> its line of `plan` output (the two header lines checked and dropped)."""
    assert flow_main(["plan", *argv]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("plan at 100 MHz") and lines[1].split()[:3] == ["model", "binary", "MMACs"]
    return {line.split()[0]: line for line in lines[2:]}


def test_plan_prints_one_line_per_config(tmp_path, capsys):
    a, b = _config(tmp_path, "tiny-a"), _config(tmp_path, "tiny-b", blocks=2)
    rows = _plan_rows(capsys, "--config", a, "--config", b, "--out", str(tmp_path / "out"))
    assert set(rows) == {"tiny-a-random0", "tiny-b-random0"}
    name, mmacs, fps, lut, ff, bram, fits, part, ecp5 = rows["tiny-a-random0"].split()
    _, g = compile_model(select_model(config=a), tmp_path / "check")
    folding = plan(g, 100, fps=3020)
    res = estimate_resources(g, folding)
    assert float(mmacs) == round(binary_macs(g) / 1e6, 1)
    assert int(fps) == round(100e6 / max(predict_cycles(g, folding).values())) and int(fps) >= 3020
    assert (int(lut), int(ff), float(bram)) == (total_luts(g, folding), sum(r["ff"] for r in res.values()),
                                               round(sum(r["bram36"] for r in res.values()), 1))
    assert fits == "yes;" and (part, ecp5) == ("ECP5-85F", "yes")  # the open-tool board's part too
    assert (tmp_path / "out" / "tiny-a-random0" / "folding.yaml").is_file()  # kept for make rtl FOLDING=


def test_plan_says_why_a_candidate_does_not_fit(tmp_path, capsys):
    cfg = _config(tmp_path, "tiny")
    row = _plan_rows(capsys, "--config", cfg, "--lut-budget", "500")["tiny-random0"]
    lut = row.split()[3]  # nothing fits 500 LUTs: the slowest folding, too slow as well
    assert "no (" in row and f"LUT {lut} > 500" in row and "FPS < 3020" in row
    row = _plan_rows(capsys, "--config", cfg, "--fps", "1e7")["tiny-random0"]
    assert "no (" in row and "FPS < 1e+07" in row


@pytest.mark.parametrize("argv, message", [
    (["plan", "--config", "nope.yaml"], "nope.yaml: config file not found"),
    (["plan", "--config", "configs/student-small.yaml", "--fps", "0"], "plan: --fps 0 must be a positive number"),
    (["plan"], "plan: give the models to screen"),
])
def test_plan_bad_input_is_one_error_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        run_cli(flow_main, argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1]


def test_width_converters_through_a_small_gcd_are_counted_and_planned_around(tmp_path):
    """A stream of 2 elements per beat read 3 at a time goes through 1 element per beat: the
    converter's cycles are in the prediction, and the plan picks widths that keep it in time
    (the trained flagship at 3,000 FPS once ran at 57,344 cycles/frame against a predicted 32,768:
    PE 4 into threshold units of 7)."""
    _, g = compile_model(select_model(config="configs/student-flagship.yaml"), tmp_path)
    folding = plan(g, 100, fps=3000)
    cycles = predict_cycles(g, folding)
    assert max(cycles.values()) <= 100e6 / 3000 and any(k.endswith("_dwc0") for k in cycles)
    elems = stream_elems(g, folding)
    first_threshold = next(l for l in g.layers if l.op == "Threshold")
    have = elems[first_threshold.inputs[0]]
    coprime = next(e for e in range(2, 64) if g.tensors[first_threshold.inputs[0]].shape[-1] % e == 0
                   and np.gcd(e, have) == 1)
    edited = Folding({**folding.layers, first_threshold.name: {"pe": coprime}}, 100)
    slow = predict_cycles(g, edited)
    assert slow[f"{first_threshold.name}_dwc0"] == int(np.prod(g.tensors[first_threshold.inputs[0]].shape))


def test_the_folded_ir_carries_the_folding(graph, tmp_path):
    """After planning, the saved IR holds the folding (every layer's pe/simd, the clock, target and
    source): what the backends and FINN's folding_config read back, equal to the planner's."""
    import copy

    from build_flow.ir import load_ir
    from build_flow.pipeline import save_folded_ir
    from hw.planner import folding_from_ir

    folding = plan(graph, 100, fps=3000)
    with pytest.raises(ConfigError, match="this IR carries no folding"):
        folding_from_ir(graph)
    save_folded_ir(copy.deepcopy(graph), folding, tmp_path / "ir")
    back = folding_from_ir(load_ir(tmp_path / "ir"))
    assert back.layers == folding.layers
    assert (back.clock_mhz, back.target_fps, back.source) == (100.0, 3000, "planner")
    assert predict_cycles(load_ir(tmp_path / "ir"), back) == predict_cycles(graph, folding)
