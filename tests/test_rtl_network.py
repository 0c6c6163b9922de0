"""Whole networks in RTL: the generated accelerator, simulated by Verilator under random
backpressure on both ends, computes every output integer the IR golden model computes.

A small Bi-Real student (forks, shortcut FIFOs, saturating adds, downsampling concat, global
pool, classifier, label select) and CNV_1W1A (brevitas_examples, random weights: pad-0 convs,
bipolar max-pools, fully connected layers on a flattened map)."""
import json
import os

import numpy as np
import pytest

from build_flow.compile import compile_model
from build_flow.models import Selected, select_model
from build_flow.rtl_flow import main as flow_main
from hw.generate import GenerateError, generate
from hw.planner import plan
from hw.rtlsim import simulate
from verify.compare import load_images
from verify.golden_numpy import run_numpy

from helpers import tiny_student

DATA = os.environ.get("BNN_DATA", "../shared/datasets/cifar10-jpeg/train.zip")


def images_for(shape, n, seed):
    images, _ = load_images(DATA if os.path.exists(DATA) else None, shape, n, seed)
    return np.ascontiguousarray(images.transpose(0, 2, 3, 1))


@pytest.mark.parametrize("name, fps", [("bireal-4bit", 5000), ("cnv_1w1a", 500)])
def test_network_rtl_is_bit_exact_under_backpressure(tmp_path, name, fps):
    sel = (Selected(tiny_student(4, seed=3), (3, 32, 32), name, "config") if name.startswith("bireal")
           else select_model(peer=name, seed=2))
    _, graph = compile_model(sel, tmp_path)
    design = generate(graph, plan(graph, 100, fps=fps), tmp_path)
    x = images_for(sel.input_shape, 16, seed=4)
    golden = run_numpy(graph, x)
    res = simulate(design, x, in_stall=0.3, out_stall=0.3, seed=5, golden=golden)
    assert res.mismatches == 0
    assert np.array_equal(res.logits, golden["logits"]) and np.array_equal(res.labels, golden["label"].reshape(-1))
    # under stalls the frame interval can only grow; the planner's figure is the stall-free floor
    assert res.cycles_per_frame >= design["predicted"]["frame_cycles"]
    if name.startswith("bireal"):
        ops = {l["op"] for l in design["layers"]}
        assert {"Fork", "AddSat", "Concat", "SumPool", "GlobalSumPool", "LabelSelect"} <= ops
        assert any(f["depth"] > 100 for f in design["fifos"])  # the shortcut branch buffers a window's rows
        # whole kernel positions per beat: a MatrixVector's SIMD beyond its window's channels, packed
        # by a width converter (the planner's cheaper choice for narrow layers)
        wide = [l for l in graph.layers if l.op == "MatrixVector" and graph.producer(l.inputs[0]).op == "SlidingWindow"
                and l.simd > graph.tensors[graph.producer(l.inputs[0]).inputs[0]].shape[-1]]
        assert wide and design["dwcs"]
        free = simulate(design, x[:6], golden={k: v[:6] for k, v in golden.items()})
        assert abs(free.cycles_per_frame / design["predicted"]["frame_cycles"] - 1) <= 0.05


def test_generator_refuses_overlapping_pools(tmp_path):
    _, graph = compile_model(select_model(peer="cnv_1w1a", seed=0), tmp_path)
    pool = next(l for l in graph.layers if l.op == "MaxPool")
    pool.attrs["stride"] = 1
    with pytest.raises(GenerateError, match=rf"layer '{pool.name}' \(MaxPool\): kernel 2 != stride 1"):
        generate(graph, plan(graph, 100, fps=100), tmp_path / "out")
    assert not (tmp_path / "out" / "rtl").exists()


def test_flow_cli_bad_folding_file_stops_with_one_line(tmp_path, capsys):
    from model.errors import run_cli

    cfg = tmp_path / "tiny.yaml"
    cfg.write_text("name: tiny\nmodel: {widths: [8, 16], blocks: [1, 1], shortcut_bits: 4}\n")
    folding = tmp_path / "folding.yaml"
    folding.write_text("clock_mhz: 100\nlayers:\n  Conv_0: {pe: 5, simd: 3}\n")
    with pytest.raises(SystemExit) as exit_:
        run_cli(flow_main, ["rtl", "--config", str(cfg), "--folding", str(folding), "--out", str(tmp_path / "b")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "folding.yaml: layer 'Conv_0' (MatrixVector): pe = 5 does not divide" in err
    assert not (tmp_path / "b" / "rtl").exists()


def test_flow_synth_reports_per_layer_resources(tmp_path):
    """`make synth`'s entry point: Yosys counts per layer, and the report's table shows them."""
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text("name: tiny\nmodel: {widths: [4, 8], blocks: [1, 1], shortcut_bits: 4}\n")
    out = tmp_path / "b"
    assert flow_main(["synth", "--config", str(cfg), "--fps", "2000", "--out", str(out)]) == 0
    synth = json.loads((out / "synth.json").read_text())
    design = json.loads((out / "design.json").read_text())
    for layer in design["layers"]:
        if layer["op"] == "MatrixVector":
            assert synth["layers"][layer["name"]]["lut"] > 0
    total = synth["total"]
    assert total["lut"] >= sum(l["lut"] for l in synth["layers"].values()) and synth["fits_pynq_z2"]
    report = (out / "report.md").read_text()
    assert f"**{total['lut']} LUT**" in report and (out / "resources.png").read_bytes()[:4] == b"\x89PNG"


def test_a_width_converter_through_gcd_1_sets_the_frame_interval_the_planner_predicts(tmp_path):
    """Conv_0 emits 3 channels per beat, its threshold layer takes 4: the converter in between
    moves one element per cycle (12,288 cycles per frame of 32x32x12), slower than every layer;
    the planner says so and the RTL runs at that interval."""
    import torch

    from helpers import randomize_batchnorm
    from model.student import BiRealStudent

    torch.manual_seed(0)
    student = randomize_batchnorm(BiRealStudent((12, 24), (1, 1), shortcut_bits=4), 0).eval()
    sel = Selected(student, (3, 32, 32), "bireal-12", "config")
    _, graph = compile_model(sel, tmp_path)
    folding = plan(graph, 100, fps=20000)
    threshold = next(l for l in graph.layers if l.op == "Threshold")  # behind Conv_0 and its fork
    assert folding.pe(graph.layers[1].name) == 3
    folding.layers[threshold.name] = {"pe": 4}
    design = generate(graph, folding, tmp_path)
    assert design["predicted"]["bottleneck"] == f"{threshold.name}_dwc0"
    assert design["predicted"]["frame_cycles"] == 32 * 32 * 12
    x = images_for(sel.input_shape, 5, seed=1)
    golden = run_numpy(graph, x)
    free = simulate(design, x, golden=golden)
    assert free.mismatches == 0
    assert abs(free.cycles_per_frame / design["predicted"]["frame_cycles"] - 1) <= 0.05
