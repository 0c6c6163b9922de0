"""The FINN build itself (needs FINN): CNV_1W1A through FINN's Python steps, hw codegen and cppsim, and
the cppsim outputs equal (array_equal) to the golden model.

FINN cannot live in the project's environment (it needs its pinned qonnx), so these tests run the build
in a local FINN venv through the CLI. Skipped unless FINN_VENV names one:

    build_flow/finn/setup_local_finn.sh ~/finn-env          # once (GIT_MIRROR=… for local sources)
    FINN_VENV=~/finn-env .venv/bin/python -m pytest tests/test_finn_build.py      # ~10 min on 2 cores
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


def test_cnv_cppsim_equals_golden(tmp_path):
    data = os.environ.get("BNN_DATA")
    r = subprocess.run([sys.executable, "-m", "build_flow.finn.cli", "estimate", "--peer", "cnv_1w1a",
                        "--out", str(tmp_path), "--finn-venv", FINN_VENV, "--images", "8", "--verify", "cppsim",
                        *(["--data", data] if data else [])], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads((tmp_path / "finn" / "compare.json").read_text())["cppsim"]
    assert rep["images"] == 8 and rep["all_layers_equal"] and rep["all_labels_equal"]
    exact = json.loads((tmp_path / "finn" / "exact_thresholds.json").read_text())["nodes"]
    assert exact and all(r["ir"] for r in exact)   # every MultiThreshold checked against the IR's thresholds
    assert (tmp_path / "finn" / "folding_config.json").exists()
    assert (tmp_path / "finn" / "report" / "estimate_network_performance.json").exists()
