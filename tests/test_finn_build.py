"""The FINN build itself (needs FINN): CNV_1W1A, a tiny Bi-Real student with the L-XNOR block order
(``model.block_order: bn_sign_conv``) and one with 2-bit integer activations (``model.act_bits: 2``)
through FINN's Python steps, hw codegen and cppsim, and the cppsim outputs equal (array_equal) to the
golden model.

FINN cannot live in the project's environment (it needs its pinned qonnx), so these tests run the build
in a local FINN venv through the CLI. Skipped unless FINN_VENV names one:

    build_flow/finn/setup_local_finn.sh ~/finn-env          # once (GIT_MIRROR=… for local sources)
    FINN_VENV=~/finn-env .venv/bin/python -m pytest tests/test_finn_build.py      # ~7 min on 2 cores (2026-12-01),
                                                                                  # + 2 min for the 2-bit student (2026-12-02)
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FINN_VENV = os.environ.get("FINN_VENV")


def _finn_importable() -> bool:
    if not FINN_VENV or not Path(FINN_VENV, "bin", "python").exists():
        return False
    r = subprocess.run([str(Path(FINN_VENV, "bin", "python")), "-c", "import finn.builder.build_dataflow"],
                       capture_output=True)
    return r.returncode == 0


pytestmark = pytest.mark.skipif(not _finn_importable(),
                                reason="FINN not importable: set FINN_VENV to a venv from build_flow/finn/setup_local_finn.sh")


def _estimate(out: Path, *model_args: str, images: int = 8) -> subprocess.CompletedProcess:
    data = os.environ.get("BNN_DATA")
    return subprocess.run([sys.executable, "-m", "build_flow.finn.cli", "estimate", *model_args,
                           "--out", str(out), "--finn-venv", FINN_VENV, "--images", str(images), "--verify", "cppsim",
                           *(["--data", data] if data else [])], cwd=REPO, capture_output=True, text=True)


def _check_build(out: Path, images: int) -> dict:
    """cppsim array_equal on every MVAU output and the label, every MultiThreshold checked against the IR's
    thresholds, FINN's folding and estimate files written. Returns the cppsim comparison."""
    rep = json.loads((out / "finn" / "compare.json").read_text())["cppsim"]
    assert rep["images"] == images and rep["all_layers_equal"] and rep["all_labels_equal"]
    assert rep["layers"] and all(r["differing"] == 0 for r in rep["layers"])
    early = json.loads((out / "finn" / "compare_cppsim.json").read_text())   # the check inside the build
    assert early["all_layers_equal"] and early["all_labels_equal"] and early["images"] == images
    exact = json.loads((out / "finn" / "exact_thresholds.json").read_text())["nodes"]
    assert exact and all(r["ir"] for r in exact)   # every MultiThreshold checked against the IR's thresholds
    assert (out / "finn" / "folding_config.json").exists()
    assert (out / "finn" / "report" / "estimate_network_performance.json").exists()
    return rep


def test_cnv_cppsim_equals_golden(tmp_path):
    r = _estimate(tmp_path, "--peer", "cnv_1w1a")
    assert r.returncode == 0, r.stderr[-2000:]
    _check_build(tmp_path, 8)


TINY_LXNOR = """name: tiny-lxnor
model:
  arch: bireal
  widths: [8, 16, 32]
  blocks: [1, 1, 1]
  shortcut_bits: 4
  stem_kernel: 3
  sign_bias: false
  block_order: bn_sign_conv
"""


def _build_tiny_student(tmp_path: Path, config_text: str) -> Path:
    """A tiny student config through the FINN build (4 images, 500 FPS), checked as _check_build does;
    returns the build folder."""
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(config_text)
    out = tmp_path / "out"
    r = _estimate(out, "--config", str(cfg), "--fps", "500", images=4)
    assert r.returncode == 0, r.stderr[-2000:]
    rep = _check_build(out, 4)
    assert [x["ir"] for x in rep["layers"]] == ["Conv_0", "Conv_1", "Conv_2", "Conv_3", "MatMul_0"]
    return out


def test_bn_sign_conv_student_cppsim_equals_golden(tmp_path):
    """The L-XNOR block order (x -> BN -> sign -> binary conv·α + b -> Q; random weights): one dataflow
    partition (only the input Transpose on the host), cppsim equal to the golden model."""
    import onnx

    out = _build_tiny_student(tmp_path, TINY_LXNOR)
    parent = onnx.load(str(out / "finn" / "intermediate_models" / "dataflow_parent.onnx"))
    assert [n.op_type for n in parent.graph.node] == ["Transpose", "StreamingDataflowPartition"]


TINY_ACT2 = """name: tiny-act2
model:
  arch: bireal
  widths: [8, 16]
  blocks: [1, 2]
  shortcut_bits: 4
  act_bits: 2
  act_signed: true
"""


def test_integer_activation_student_cppsim_equals_golden(tmp_path):
    """2-bit signed activations where the signs are (model.act_bits; random weights): FINN's MVAUs take
    INT2 inputs, their MultiThresholds make them, cppsim equal to the golden model."""
    import onnx

    out = _build_tiny_student(tmp_path, TINY_ACT2)
    built = onnx.load(str(out / "finn" / "intermediate_models" / "step_generate_estimate_reports.onnx"))
    in_types = [next(a.s.decode() for a in n.attribute if a.name == "inputDataType")
                for n in built.graph.node if n.op_type.startswith("MVAU")]
    assert in_types == ["UINT8", "INT2", "INT2", "INT2", "INT12"]   # the binary convs take INT2, not bits
