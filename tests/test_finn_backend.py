"""FINN backend without FINN: board table, folding -> folding_config.json, preflight errors, `make bitstream`.

Tests that need FINN itself are in tests/test_finn_build.py (skipped unless FINN_VENV points at a
local FINN venv made by build_flow/finn/setup_local_finn.sh).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from build_flow.finn import preflight
from build_flow.finn.boards import BOARDS, DEFAULT_BOARD, get_board
from build_flow.finn.folding import FoldingError, finn_folding_config, ordered_plan, specialize_config
from build_flow.ir import Graph, Layer, Tensor

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- boards

def test_board_table():
    assert DEFAULT_BOARD == "Pynq-Z2"
    assert {"Pynq-Z2", "ZCU104", "U250"} <= set(BOARDS)
    assert get_board("pynq-z2").part == "xc7z020clg400-1" and get_board("Pynq-Z2").clock_mhz == 100.0
    assert get_board("ZCU104").shell == "vivado_zynq"
    u250 = get_board("U250")
    assert u250.alveo and u250.platform and u250.clock_mhz == 250.0
    with pytest.raises(KeyError, match="unknown board 'KC705'"):
        get_board("KC705")


# ---------------------------------------------------------------- folding

def _tiny_graph() -> Graph:
    """input (4,4,8) INT4 -> window 3x3 -> MV 16x72 (BIPOLAR) -> threshold ... -> MV 10 -> label."""
    t = {
        "x": Tensor("x", (4, 4, 8), "INT4"),
        "w": Tensor("w", (4, 4, 72), "INT4"),
        "a": Tensor("a", (4, 4, 16), "INT4"),
        "s": Tensor("s", (4, 4, 16), "BIPOLAR"),
        "f": Tensor("f", (10,), "INT10"),
        "label": Tensor("label", (), "UINT4"),
    }
    arrays = {"w0": np.ones((16, 72), np.int8), "w1": np.ones((10, 256), np.int8),
              "t0": np.zeros((16, 1), np.int64), "d0": np.ones(16, np.int8)}
    layers = [
        Layer("swg", "SlidingWindow", ["x"], ["w"], {"kernel": 3, "stride": 1, "pad": 1, "pad_value": 0}),
        Layer("mv0", "MatrixVector", ["w"], ["a"], {"weights": "w0", "y_min": -8}),
        Layer("thr", "Threshold", ["a"], ["s"], {"thresholds": "t0", "direction": "d0", "y_min": 0}),
        Layer("mv1", "MatrixVector", ["s"], ["f"], {"weights": "w1", "flatten": True}),
        Layer("sel", "LabelSelect", ["f"], ["label"], {"largest": True}),
    ]
    return Graph(t, layers, "x", {"logits": "f", "label": "label"}, arrays)


def _folding(layers):
    from hw.planner import Folding
    return Folding(layers, 100.0, 3000)


def _finn_nodes():
    return [
        {"name": "FMPadding_hls_0", "op_type": "FMPadding_hls", "inputs": ["x"], "outputs": ["p"],
         "attrs": {"NumChannels": 8, "SIMD": 1}},
        {"name": "ConvolutionInputGenerator_hls_0", "op_type": "ConvolutionInputGenerator_hls", "inputs": ["p"],
         "outputs": ["w"], "attrs": {"IFMChannels": 8, "SIMD": 1}},
        {"name": "MVAU_hls_0", "op_type": "MVAU_hls", "inputs": ["w"], "outputs": ["s"], "attrs": {"MH": 16, "MW": 72}},
        {"name": "MVAU_hls_1", "op_type": "MVAU_hls", "inputs": ["s"], "outputs": ["f"], "attrs": {"MH": 10, "MW": 256}},
        {"name": "LabelSelect_hls_0", "op_type": "LabelSelect_hls", "inputs": ["f"], "outputs": ["l"],
         "attrs": {"Labels": 10, "PE": 1}, "cycles_at_1": 10},
    ]


def test_ordered_plan_and_finn_config():
    g = _tiny_graph()
    f = _folding({"mv0": {"pe": 4, "simd": 8}, "thr": {"pe": 2}, "mv1": {"pe": 2, "simd": 16}, "sel": {"pe": 5}})
    plan = ordered_plan(g, f)
    assert [(m["ir"], m["pe"], m["simd"]) for m in plan["matrix_vector"]] == [("mv0", 4, 8), ("mv1", 2, 16)]
    assert plan["elementwise"]["Thresholding"][0]["pe"] == 2 and plan["elementwise"]["LabelSelect"][0]["pe"] == 5
    cfg = finn_folding_config(plan, _finn_nodes())
    assert cfg["MVAU_hls_0"] == {"PE": 4, "SIMD": 8} and cfg["MVAU_hls_1"] == {"PE": 2, "SIMD": 16}
    # the window generator and its padding take the SIMD of the MVAU they feed
    assert cfg["ConvolutionInputGenerator_hls_0"] == {"SIMD": 8} and cfg["FMPadding_hls_0"] == {"SIMD": 8}
    assert cfg["LabelSelect_hls_0"] == {"PE": 5}
    assert set(specialize_config(_finn_nodes())["MVAU_hls_0"].values()) == {"hls"}


def test_folding_that_does_not_fit_names_node_and_field():
    g = _tiny_graph()
    plan = ordered_plan(g, _folding({"mv0": {"pe": 4, "simd": 8}, "thr": {"pe": 2}, "mv1": {"pe": 2, "simd": 16},
                                     "sel": {"pe": 5}}))
    nodes = _finn_nodes()
    nodes[2]["attrs"]["MH"] = 18   # FINN's graph differs from the IR
    with pytest.raises(FoldingError, match="MVAU_hls_0 .*MH=18.* does not match IR layer mv0"):
        finn_folding_config(plan, nodes)
    with pytest.raises(FoldingError, match="2 MVAU nodes .* 1 MatrixVector"):
        finn_folding_config(dict(plan, matrix_vector=plan["matrix_vector"][:1]), _finn_nodes())
    bad = dict(plan, matrix_vector=[dict(plan["matrix_vector"][0], pe=3), plan["matrix_vector"][1]])
    with pytest.raises(FoldingError, match=r"MVAU_hls_0 \(MVAU_hls\): PE = 3 does not divide MH = 16"):
        finn_folding_config(bad, _finn_nodes())
    nodes = _finn_nodes()
    del nodes[1]["attrs"]["IFMChannels"]
    with pytest.raises(FoldingError, match="ConvolutionInputGenerator_hls_0 .*has no IFMChannels attribute"):
        finn_folding_config(plan, nodes)


def test_window_generators_stream_gcd_of_simd_and_channels():
    """An MVAU SIMD that is not a divisor of the channels (whole kernel positions per beat, or
    fewer): the window streams gcd(SIMD, channels) and FINN's InsertDWC packs the beats."""
    plan = ordered_plan(_tiny_graph(), _folding({"mv0": {"pe": 4, "simd": 8}, "thr": {"pe": 2},
                                                 "mv1": {"pe": 2, "simd": 16}, "sel": {"pe": 5}}))
    nodes = _finn_nodes()
    nodes[1]["attrs"]["IFMChannels"] = 6
    cfg = finn_folding_config(plan, nodes)
    assert cfg["ConvolutionInputGenerator_hls_0"] == {"SIMD": 2} and cfg["MVAU_hls_0"]["SIMD"] == 8


def test_unmatched_elementwise_nodes_get_a_pe_within_the_interval():
    g = _tiny_graph()
    plan = ordered_plan(g, _folding({"mv0": {"pe": 4, "simd": 8}, "thr": {"pe": 2}, "mv1": {"pe": 2, "simd": 16},
                                     "sel": {"pe": 5}}))
    nodes = _finn_nodes() + [{"name": "Thresholding_hls_0", "op_type": "Thresholding_hls", "inputs": [], "outputs": [],
                              "attrs": {"NumChannels": 16}, "cycles_at_1": 4096},
                             {"name": "Thresholding_hls_1", "op_type": "Thresholding_hls", "inputs": [], "outputs": [],
                              "attrs": {"NumChannels": 16}, "cycles_at_1": 256}]
    cfg = finn_folding_config(plan, nodes)   # 2 FINN thresholds vs 1 IR threshold: the default rule
    limit = max(1, plan["interval_cycles"] // 4)
    for name, cyc in (("Thresholding_hls_0", 4096), ("Thresholding_hls_1", 256)):
        pe = cfg[name]["PE"]
        assert 16 % pe == 0 and (cyc // pe <= limit or pe == 16)


# ---------------------------------------------------------------- preflight

def test_preflight_docker_missing_and_daemon_down():
    with pytest.raises(preflight.PreflightError, match="docker not found: install Docker Engine"):
        preflight.check_docker(which=lambda _: None)

    class Proc:
        returncode, stdout, stderr = 1, "", "Cannot connect to the Docker daemon at unix:///var/run/docker.sock"

    with pytest.raises(preflight.PreflightError, match="docker daemon not reachable .*Cannot connect"):
        preflight.check_docker(which=lambda _: "/usr/bin/docker", run=lambda *a, **k: Proc())


def test_preflight_vivado(tmp_path):
    board = get_board("Pynq-Z2")
    with pytest.raises(preflight.PreflightError, match="FINN_XILINX_PATH is not set"):
        preflight.check_vivado(board, env={})
    with pytest.raises(preflight.PreflightError, match="FINN_XILINX_VERSION is not set"):
        preflight.check_vivado(board, env={"FINN_XILINX_PATH": str(tmp_path)})
    env = {"FINN_XILINX_PATH": str(tmp_path), "FINN_XILINX_VERSION": "2022.2"}
    with pytest.raises(preflight.PreflightError, match="Vivado 2022.2 not found"):
        preflight.check_vivado(board, env=env)
    for tool in ("Vivado", "Vitis_HLS"):       # FINN's step_hw_ipgen needs Vitis HLS too
        (tmp_path / tool / "2022.2").mkdir(parents=True)
        (tmp_path / tool / "2022.2" / "settings64.sh").write_text("")
    preflight.check_vivado(board, env=env)
    with pytest.raises(preflight.PreflightError, match="U250 needs Vitis 2022.2"):
        preflight.check_vivado(get_board("U250"), env=env)


def test_preflight_board_checkpoint_venv(tmp_path):
    with pytest.raises(preflight.PreflightError, match="BOARD=KC705: unknown board"):
        preflight.check_board("KC705")
    with pytest.raises(preflight.PreflightError, match="CKPT=.*nope.pt: checkpoint not found"):
        preflight.check_checkpoint(str(tmp_path / "nope.pt"))
    preflight.check_checkpoint(None)
    with pytest.raises(preflight.PreflightError, match="not a FINN venv"):
        preflight.check_finn_venv(str(tmp_path))


def test_preflight_folding_that_does_not_fit(tmp_path):
    from model.errors import ConfigError
    g = _tiny_graph()
    bad = tmp_path / "fold.yaml"
    bad.write_text("layers:\n  mv0: {pe: 3, simd: 8}\n  thr: {pe: 2}\n  mv1: {pe: 2, simd: 16}\n  sel: {pe: 5}\n")
    with pytest.raises(ConfigError, match="mv0.*pe = 3 does not divide its 16 output channels"):
        preflight.check_folding(g, str(bad))


def _run(args, env=None):
    return subprocess.run([sys.executable, "-m", "build_flow.finn.cli", *args], capture_output=True, text=True,
                          cwd=REPO, env=env)


def test_cli_errors_are_one_line(tmp_path):
    r = _run(["bitstream", "--config", "configs/student-small.yaml", "--out", str(tmp_path), "--board", "KC705"])
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0
    assert r.stderr.startswith("error: BOARD=KC705: unknown board")
    r = _run(["estimate", "--ckpt", str(tmp_path / "x.pt"), "--out", str(tmp_path), "--finn-venv", str(tmp_path)])
    assert r.returncode == 2 and "checkpoint not found" in r.stderr


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_make_bitstream_stops_at_docker(tmp_path):
    """No docker on PATH: `make bitstream` stops at preflight saying what to install, before any export."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("bash", "sh", "make", "sed", "env", "test", "touch", "uname", "cat"):
        found = shutil.which(tool)
        if found:
            (bindir / tool).symlink_to(found)
    env = dict(os.environ, PATH=str(bindir))
    r = subprocess.run(["make", "--no-print-directory", "-o", "setup", "bitstream", "CONFIG=configs/student-small.yaml",
                        f"PY={REPO / '.venv/bin/python'}" if (REPO / ".venv/bin/python").exists() else f"PY={sys.executable}",
                        f"OUT={tmp_path / 'out'}"], capture_output=True, text=True, cwd=REPO, env=env)
    assert r.returncode != 0
    assert "error: docker not found: install Docker Engine" in r.stderr
    assert not (tmp_path / "out").exists()


def _fake_finn_dir(tmp_path, bits, popcounts, label):
    """A FINN output folder as verify_save_full_context leaves it: the partition model with two MVAUs
    (a thresholded bipolar one, an XNOR one without activation), the parent, one saved context."""
    import onnx
    from onnx import TensorProto, helper

    def mvau(name, out, xnor, mw, no_act):
        return helper.make_node("MVAU_hls", ["x"], [out], name=name, domain="finn.custom_op.fpgadataflow.hls",
                                binaryXnorMode=xnor, MW=mw, noActivation=no_act)

    vi = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    child = helper.make_graph([mvau("MVAU_hls_0", "a0", 1, 9, 0), mvau("MVAU_hls_1", "a1", 1, 8, 1)], "child",
                              [vi], [helper.make_tensor_value_info("a1", TensorProto.FLOAT, [1])])
    parent = helper.make_graph([helper.make_node("StreamingDataflowPartition", ["x"], ["y"], name="SDP_0")], "parent",
                               [vi], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    (tmp_path / "intermediate_models").mkdir(parents=True)
    (tmp_path / "verification_output").mkdir()
    onnx.save(helper.make_model(child), str(tmp_path / "intermediate_models" / "verify_folded_hls_cppsim.onnx"))
    onnx.save(helper.make_model(parent), str(tmp_path / "intermediate_models" / "dataflow_parent.onnx"))
    np.savez(tmp_path / "verification_output" / "verify_folded_hls_cppsim_0_SUCCESS.npz",
             **{"SDP_0_a0": np.asarray(bits, dtype=np.float32), "SDP_0_a1": np.asarray(popcounts, dtype=np.float32),
                "y": np.asarray([[label]], dtype=np.float32)})
    return tmp_path


def _ir_two_layers():
    from types import SimpleNamespace as NS
    layers = [NS(name="mv0", op="MatrixVector", outputs=["t0"]), NS(name="mv1", op="MatrixVector", outputs=["t1"])]
    tensors = {"t0": NS(dtype="BIPOLAR"), "t1": NS(dtype="INT32"), "lab": NS(dtype="UINT8")}
    return NS(layers=layers, tensors=tensors, outputs={"label": "lab"})


def test_compare_maps_finn_bits_and_popcounts_onto_the_golden_integers(tmp_path):
    """FINN streams bipolar activations as bits 0/1 and an XNOR MVAU without thresholds emits its
    popcount p: against the golden model's ±1 and 2p - MW they are equal; one flipped bit is not."""
    from build_flow.finn.compare import compare_step

    golden = {"t0": np.array([[1, -1, -1, 1]]), "t1": np.array([[2 * 5 - 8, 2 * 0 - 8, 2 * 8 - 8]]),
              "lab": np.array([2])}
    good = _fake_finn_dir(tmp_path / "good", [1, 0, 0, 1], [5, 0, 8], label=2)
    rep = compare_step(good, "folded_hls_cppsim", _ir_two_layers(), golden)
    assert rep["all_layers_equal"] and rep["all_labels_equal"] and rep["images"] == 1
    assert [l["differing"] for l in rep["layers"]] == [0, 0]
    bad = _fake_finn_dir(tmp_path / "bad", [1, 0, 1, 1], [5, 0, 8], label=3)
    rep = compare_step(bad, "folded_hls_cppsim", _ir_two_layers(), golden)
    assert not rep["all_layers_equal"] and not rep["all_labels_equal"]
    assert [l["differing"] for l in rep["layers"]] == [1, 0]


def test_a_window_feeding_a_pool_takes_the_pools_pe():
    """InferPool puts a (depthwise) window generator in front of FINN's Pool: it streams the pool's PE."""
    plan = ordered_plan(_tiny_graph(), _folding({"mv0": {"pe": 4, "simd": 8}, "thr": {"pe": 2},
                                                 "mv1": {"pe": 2, "simd": 16}, "sel": {"pe": 5}}))
    plan["elementwise"]["Pool"] = [{"ir": "pool", "pe": 4, "channels": 16, "cycles": 64}]
    nodes = _finn_nodes() + [
        {"name": "ConvolutionInputGenerator_hls_1", "op_type": "ConvolutionInputGenerator_hls", "inputs": ["s"],
         "outputs": ["pw"], "attrs": {"IFMChannels": 16, "SIMD": 1}},
        {"name": "Pool_hls_0", "op_type": "Pool_hls", "inputs": ["pw"], "outputs": ["po"], "attrs": {"Channels": 16}}]
    cfg = finn_folding_config(plan, nodes)
    assert cfg["Pool_hls_0"] == {"PE": 4} and cfg["ConvolutionInputGenerator_hls_1"] == {"SIMD": 4}


# ---------------------------------------------------------------- threshold types

def test_threshold_type_holds_the_input_range_not_only_the_thresholds():
    """FINN's HLS Thresholding casts its input to the threshold type: INT4 thresholds on an INT6 input
    truncate 8 to -8 (the flagship's cppsim mismatch). The type must hold both ranges."""
    from build_flow.finn.threshold_types import int_type_name, threshold_type_name

    assert threshold_type_name(-6, 5, -32, 31) == "INT6"      # was INT4 from the thresholds alone
    assert threshold_type_name(-31, 31, -64, 63) == "INT7"    # a shortcut re-quantizer after AddStreams
    assert threshold_type_name(-33, 32, -32, 31) == "INT7"    # RoundAndClip's in.min-1 / in.max+1
    assert threshold_type_name(0, 552, 0, 504) == "UINT10"    # a popcount; thresholds beyond MW
    assert threshold_type_name(3, 9, 0, 255) == "UINT8"
    assert threshold_type_name(-5175, 4886, 0, 255) == "INT14"
    for lo, hi in [(-1, 0), (0, 1), (-128, 127), (-129, 0), (0, 256), (-7, 300)]:
        name = int_type_name(lo, hi)
        bits = int(name.lstrip("UINT"))
        tmin, tmax = ((0, 2 ** bits - 1) if name.startswith("U") else (-2 ** (bits - 1), 2 ** (bits - 1) - 1))
        assert tmin <= lo and hi <= tmax, (lo, hi, name)
        narrower = bits - 1
        if narrower >= 2:
            nmin, nmax = ((0, 2 ** narrower - 1) if name.startswith("U")
                          else (-2 ** (narrower - 1), 2 ** (narrower - 1) - 1))
            assert lo < nmin or hi > nmax, (lo, hi, name)   # the narrowest
    with pytest.raises(ValueError, match="empty range"):
        int_type_name(3, 2)


# ---------------------------------------------------------------- exact thresholds from the IR

def test_ir_thresholds_fix_finns_round_half_up_at_ties():
    """The downsampling shortcut re-quantizes a sum of four values: round(s / 4) half to even, as the
    student does. FINN's analytic thresholds ((k + 1/2)·4, x >= T) round every tie up; the IR's,
    found on every integer, do not. reconcile() gives FINN's node the IR's step function."""
    from build_flow.finn.exact_thresholds import IRThresholds, reconcile
    from build_flow.thresholds import find_thresholds

    lo, hi, y_lo, y_hi = -128, 124, -32, 31
    def levels(acc):
        return np.clip(np.round(acc / 4), y_lo, y_hi).astype(np.int64)[:, None]   # numpy rounds half to even
    th = find_thresholds(levels, lo, hi, y_lo, y_hi, 1)
    ir = IRThresholds("Quant_6", th.values, th.direction, th.y_min, lo, hi, None)
    finn = ((np.arange(y_lo, y_hi) + 0.5) * 4)[None, :].repeat(3, axis=0)        # 3 channels, per-channel rows
    x = np.arange(lo, hi + 1)
    def apply(t):
        return y_lo + (x[:, None] >= t[0][None, :]).sum(axis=1)
    assert not np.array_equal(apply(np.ceil(finn)), levels(x)[:, 0])             # FINN's: wrong at ties
    new, changed = reconcile("MultiThreshold_9", finn, ir, -128, 127)
    assert new.shape == (3, 63) and changed == 3 * 32                               # every other boundary is a tie
    assert np.array_equal(apply(new), levels(x)[:, 0])


def test_popcount_domain_of_an_xnor_layer():
    """acc = 2p - MW: acc >= T  <=>  p >= ceil((T + MW) / 2), for odd and even T and MW, and
    unreachable thresholds stay unreachable."""
    from build_flow.finn.exact_thresholds import IRThresholds, to_popcount

    rng = np.random.default_rng(0)
    for mw in (27, 504, 9):
        t = np.sort(rng.integers(-mw - 2, mw + 3, size=(4, 7)), axis=1)
        pc = to_popcount(IRThresholds("Conv_1", t, np.ones(4, np.int64), -4, -mw, mw, mw))
        assert (pc.lo, pc.hi, pc.mw) == (0, mw, None)
        p = np.arange(0, mw + 1)
        for c in range(4):
            acc = 2 * p - mw
            assert np.array_equal((acc[:, None] >= t[c][None, :]).sum(1), (p[:, None] >= pc.values[c][None, :]).sum(1))
    with pytest.raises(ValueError, match="not a MatrixVector"):
        to_popcount(IRThresholds("thr", t, np.ones(4, np.int64), 0, -1, 1, None))


def test_reconcile_accepts_unreachable_differences_and_names_real_disagreements():
    from build_flow.finn.exact_thresholds import IRThresholds, ThresholdMismatch, reconcile

    ir = IRThresholds("Conv_3", np.array([[3, 5, 11]]), np.ones(1, np.int64), 0, 0, 10, None)
    # FINN clips an unreachable threshold elsewhere (40 vs the IR's 11, over inputs 0..10): same function
    new, changed = reconcile("MultiThreshold_2", np.array([[3.0, 5.0, 40.0]]), ir, 0, 10)
    assert changed == 0 and new.tolist() == [[3.0, 5.0, 11.0]]
    # a float threshold between integers means its ceiling; one step off is a tie and is taken from the IR
    new, changed = reconcile("MultiThreshold_2", np.array([[2.5, 6.0, 11.0]]), ir, 0, 10)
    assert changed == 1 and new.tolist() == [[3.0, 5.0, 11.0]]
    with pytest.raises(ThresholdMismatch, match=r"MultiThreshold_2.*Conv_3.*channel 0, threshold 1"):
        reconcile("MultiThreshold_2", np.array([[3.0, 8.0, 11.0]]), ir, 0, 10)
    with pytest.raises(ThresholdMismatch, match="2 vs 3 thresholds per channel"):
        reconcile("MultiThreshold_2", np.array([[3.0, 5.0]]), ir, 0, 10)
    dec = IRThresholds("Conv_3", np.array([[3, 5, 9]]), -np.ones(1, np.int64), 0, 0, 10, None)
    with pytest.raises(ThresholdMismatch, match="decreasing"):
        reconcile("MultiThreshold_2", np.array([[3.0, 5.0, 9.0]]), dec, 0, 10)


def test_ir_thresholds_found_through_probes_for_each_layer_kind():
    """QONNX tensor -> (probe) IR tensor -> the layer computing it: a MatrixVector layer's thresholds
    over its accumulator range, a saturating add's clip, none for a layer without thresholds."""
    from build_flow.finn.exact_thresholds import ir_thresholds

    g = _tiny_graph()
    g.arrays["t1"] = np.array([[-20, 0, 20]] * 16)
    g.arrays["d1"] = np.ones(16, np.int8)
    g.layers[1].attrs.update(thresholds="t1", direction="d1")
    g.tensors["b"] = Tensor("b", (4, 4, 16), "INT4")
    g.tensors["y"] = Tensor("y", (4, 4, 16), "INT4")
    g.layers.append(Layer("Quant_3", "AddSat", ["a", "b"], ["y"]))
    g.meta["probes"] = {"Quant_2_out0": {"ir": "a"}, "Quant_3_out0": {"ir": "y"}, "Gemm_out0": {"ir": "f"}}
    mv = ir_thresholds(g, "Quant_2_out0")
    assert mv.layer == "mv0" and mv.mw == 72 and (mv.lo, mv.hi) == (-72 * 8, 72 * 8) and mv.values.shape == (16, 3)
    assert mv.weights.shape == (16, 72)
    sat = ir_thresholds(g, "Quant_3_out0")
    assert sat.layer == "Quant_3" and sat.values.tolist() == [list(range(-7, 8))] and (sat.lo, sat.hi) == (-16, 14)
    assert ir_thresholds(g, "Gemm_out0") is None and ir_thresholds(g, "unknown") is None


def test_a_negative_channel_scale_moved_into_finns_weights():
    """FINN moves the sign of a negative per-channel scale into the binary weights; the IR keeps the
    weights and counts that channel down (acc <= T). Over -acc the IR's thresholds become increasing
    ones, -T; the step functions agree on every accumulator, also through the popcount domain."""
    from build_flow.finn.exact_thresholds import (IRThresholds, ThresholdMismatch, orient, to_popcount,
                                                  weight_signs)

    rng = np.random.default_rng(1)
    mw, ch = 9, 4
    w_ir = rng.choice([-1, 1], size=(ch, mw))
    t = np.sort(rng.integers(-mw, mw + 1, size=(ch, 3)), axis=1)
    direction = np.array([1, -1, 1, -1])
    ir = IRThresholds("Conv_0", t, direction, 0, -mw, mw, mw, w_ir)
    signs = direction.copy()                                   # FINN flipped the decreasing channels
    w_finn_bits = ((w_ir * signs[:, None]).T + 1) // 2         # (window, out) bits 0/1
    assert weight_signs(ir, w_finn_bits, xnor=True).tolist() == signs.tolist()
    assert weight_signs(ir, (w_ir * signs[:, None]).T, xnor=False).tolist() == signs.tolist()
    o = orient(ir, signs)
    assert np.all(o.direction == 1) and (o.lo, o.hi) == (-mw, mw)
    pc = to_popcount(o)
    p = np.arange(0, mw + 1)
    x = rng.choice([-1, 1], size=(50, mw))
    for c in range(ch):
        acc = x @ w_ir[c]                                       # the IR's accumulator
        want = np.where(direction[c] > 0, (acc[:, None] >= t[c]).sum(1), (acc[:, None] <= t[c]).sum(1))
        acc_finn = x @ (w_ir[c] * signs[c])                     # FINN's, with the sign in the weights
        popcount = (acc_finn + mw) // 2
        assert np.array_equal((popcount[:, None] >= pc.values[c]).sum(1), want)
    # a constant channel (thresholds out of range; the IR calls it increasing) stays constant over -acc
    const = IRThresholds("Conv_0", np.array([[-20, 3, 20], [-20, -15, -12]]), np.array([1, 1]), 0, -mw, mw, mw,
                         w_ir[:2])
    o = orient(const, np.array([-1, -1]))
    assert o.direction.tolist() == [-1, 1]   # channel 0 really is increasing: over -acc it decreases
    acc = np.arange(-mw, mw + 1)
    assert np.array_equal((-acc[:, None] >= o.values[1]).sum(1), np.full(len(acc), 3))   # always 3 levels up
    with pytest.raises(ThresholdMismatch, match="decreasing"):   # channel 0 is not constant: really decreasing
        from build_flow.finn.exact_thresholds import reconcile
        reconcile("MultiThreshold_0", np.zeros((2, 3)), o, -mw, mw)
    scrambled = w_finn_bits.copy()
    scrambled[0, 2] ^= 1
    with pytest.raises(ThresholdMismatch, match="output channel 2 are neither"):
        weight_signs(ir, scrambled, xnor=True)


@pytest.mark.parametrize("kind", ["affine", "rprelu"])
def test_post_add_chains_become_multithresholds_with_the_irs_thresholds(tmp_path, kind):
    """model.post_add: the chain after a residual add (Mul/Add, or Sub/PRelu/Add: FINN has no rule for
    a PRelu) and its quantizer become one MultiThreshold holding the IR's per-channel thresholds on
    the exact sum, before FINN's conversion (step_bnn_prepare). The graph computes the same values
    (qonnx's execution, every quantizer's output), the quantizer's tag moves onto the MultiThreshold,
    and with the operands' scale absorbed (what FINN's streamlining does before AddStreams and
    Thresholding) its thresholds are the IR's exactly; decreasing channels are refused by name."""
    import copy

    import torch
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.util.cleanup import cleanup_model

    from build_flow.compile import compile_model
    from build_flow.finn.exact_thresholds import TAG, ThresholdMismatch, ir_thresholds, reconcile
    from build_flow.finn.post_add import PostAddChainsToMultiThreshold, post_add_chains
    from build_flow.ir import dtype_range
    from build_flow.models import Selected, randomize_batchnorm
    from hw.planner import plan
    from model.student import BiRealStudent

    torch.manual_seed(0)
    model = randomize_batchnorm(BiRealStudent((8, 16), (1, 2), 4, post_add=kind), 3).eval()
    qonnx_model, graph = compile_model(Selected(model, (3, 32, 32), "t", "config"), tmp_path)
    for n in qonnx_model.graph.node:   # step_bnn_prepare's tags
        if n.op_type in ("Quant", "BipolarQuant"):
            n.doc_string = TAG + n.output[0]
    before = copy.deepcopy(qonnx_model)
    assert len(post_add_chains(qonnx_model)) == 3
    after = qonnx_model.transform(PostAddChainsToMultiThreshold(graph))
    ops = [n.op_type for n in after.graph.node]
    assert ops.count("MultiThreshold") == 3 and not {"PRelu", "Sub"} & set(ops)
    assert not post_add_chains(after)
    probes = list(graph.meta["probes"])
    images = np.random.default_rng(1).integers(0, 256, (3, 1, 3, 32, 32)).astype(np.float32)
    iname, oname = before.graph.input[0].name, before.graph.output[0].name
    for x in images:
        want = execute_onnx(before, {iname: x}, return_full_exec_context=True)
        got = execute_onnx(after, {iname: x}, return_full_exec_context=True)
        for name in [oname] + probes:
            assert np.array_equal(want[name], got[name]), name
    cleaned = cleanup_model(after)   # FINN's step_qonnx_to_finn starts with qonnx's cleanup
    assert np.array_equal(execute_onnx(cleaned, {cleaned.graph.input[0].name: images[0]})[cleaned.graph.output[0].name],
                          execute_onnx(before, {iname: images[0]})[oname])
    assert [m.doc_string for m in cleaned.get_nodes_by_op_type("MultiThreshold")] == \
        [m.doc_string for m in after.get_nodes_by_op_type("MultiThreshold")]   # the tags survive the cleanup
    blocks = [b for stage in model.stages for b in stage]
    for mt, block in zip(after.get_nodes_by_op_type("MultiThreshold"), blocks, strict=True):
        assert mt.doc_string.startswith(TAG)
        ir = ir_thresholds(graph, mt.doc_string[len(TAG):])
        layer = next(l for l in graph.layers if l.name == ir.layer)
        add = graph.producer(layer.inputs[0])
        assert layer.op == "Threshold" and add.op == "AddSat"
        t = after.get_initializer(mt.input[1])
        assert t.shape == (graph.tensors[layer.outputs[0]].shape[-1], 15)   # per channel, INT4 out
        sum_lo, sum_hi = dtype_range(graph.tensors[add.outputs[0]].dtype)   # INT5, as FINN's AddStreams types it
        absorbed = t / np.float32(block.quant.act_quant.scale())            # the operands' scale moved in
        new, changed = reconcile(mt.name, absorbed, ir, sum_lo, sum_hi)
        assert changed == 0 and np.array_equal(absorbed, ir.values)
    # the FINN-side plan maps the IR's Threshold layers, the post-add ones included, onto Thresholding nodes
    from build_flow.finn.folding import ordered_plan
    names = [e["ir"] for e in ordered_plan(graph, plan(graph, 100, fps=3000))["elementwise"]["Thresholding"]]
    post = [l for l in graph.layers if l.op == "Threshold" and graph.producer(l.inputs[0]).op == "AddSat"]
    assert len(post) == 3 and all(l.name in names for l in post)
    layer = post[0]
    graph.arrays[layer.attrs["direction"]][1] = -1
    with pytest.raises(ThresholdMismatch, match=rf"Quant '{layer.name}' after the post-add chain .*decreasing channels"):
        before.transform(PostAddChainsToMultiThreshold(graph))


# ---------------------------------------------------------------- rewrites.py (qonnx Transformations, no FINN)

def _pixel_model():
    """input (uint8 values as float) -> Quant(UINT8, scale 1) -> Mul(2) -> output"""
    from onnx import TensorProto, helper
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.basic import qonnx_make_model

    inits = [helper.make_tensor(n, TensorProto.FLOAT, [], [v]) for n, v in
             (("scale", 1.0), ("zeropt", 0.0), ("bits", 8.0), ("two", 2.0))]
    nodes = [helper.make_node("Quant", ["x", "scale", "zeropt", "bits"], ["q"], domain="qonnx.custom_op.general",
                              signed=0, narrow=0, rounding_mode="ROUND", name="pixel_quant"),
             helper.make_node("Mul", ["q", "two"], ["y"], name="mul")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], initializer=inits)
    return ModelWrapper(qonnx_make_model(graph))


def test_pixel_quant_becomes_the_input_type():
    from build_flow.finn.rewrites import PixelQuantToInputType, TagQuantizers

    model = _pixel_model().transform(TagQuantizers())
    assert model.graph.node[0].doc_string.endswith("q")      # tagged with the tensor it produces
    model = model.transform(PixelQuantToInputType())
    assert [n.op_type for n in model.graph.node] == ["Mul"]
    assert model.graph.node[0].input[0] == "x" and model.get_tensor_datatype("x").name == "UINT8"


def test_round_runs_to_a_fixpoint_and_stops_at_its_limit():
    from qonnx.transformation.base import Transformation

    from build_flow.finn.rewrites import Round

    class GrowTo(Transformation):   # appends to the Mul's name until it is n long: changes, then a fixpoint
        def __init__(self, n):
            super().__init__()
            self.n = n

        def apply(self, model):
            node = model.graph.node[-1]
            if len(node.name) < self.n:
                node.name += "x"
            return model, False     # one step per call: only the round repeats it

    r = Round(GrowTo(6))
    model = _pixel_model().transform(r)
    assert model.graph.node[-1].name == "mulxxx" and r.rounds == 4   # three changes, one round to see none
    r = Round(GrowTo(100), max_rounds=5)
    model = _pixel_model().transform(r)
    assert model.graph.node[-1].name == "mul" + "x" * 5 and r.rounds == 5
