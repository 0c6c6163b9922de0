"""The deploy package's run script (build_flow/finn/deploy_run.py -> OUT/deploy/run_on_board.py) against a
fake FINN driver: a FINNExampleOverlay that returns the golden labels (or not), no PYNQ and no board.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from build_flow.finn import cli
from build_flow.finn.boards import get_board

FAKE_DRIVER = '''
io_shape_dict = {"ishape_normal": [(1, 4, 4, 3)], "oshape_normal": [(1, 1)]}
'''
# the FINN driver_base API the run script uses: constructor, batch_size (settable), execute(NHWC uint8)
FAKE_DRIVER_BASE = '''
import json, os
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


class FINNExampleOverlay:
    def __init__(self, bitfile_name, platform, io_shape_dict, batch_size=1, fclk_mhz=100.0, device=None,
                 download=True, runtime_weight_dir="runtime_weights/"):
        assert os.path.isfile(bitfile_name) and os.path.isfile(bitfile_name[:-4] + ".hwh")
        assert platform == "zynq-iodma"
        self.batch_size = batch_size
        # "the accelerator": label = the image's first pixel, which the test set to the golden label
        self.offset = int(os.environ.get("FAKE_OFFSET", "0"))

    def execute(self, x):
        assert x.dtype == np.uint8 and x.shape == (self.batch_size, 4, 4, 3), x.shape
        return ((x[:, 0, 0, 0].astype(np.int64) + self.offset) % 10).reshape(-1, 1)
'''


def _package(tmp_path: Path, n=20) -> Path:
    out = tmp_path / "out"
    finn = out / "finn"
    for d in ("bitfile", "driver/runtime_weights"):
        (finn / d).mkdir(parents=True)
    (finn / "bitfile" / "finn-accel.bit").write_text("bit")
    (finn / "bitfile" / "finn-accel.hwh").write_text("hwh")
    (finn / "driver" / "driver.py").write_text(FAKE_DRIVER)
    (finn / "driver" / "driver_base.py").write_text(FAKE_DRIVER_BASE)
    rng = np.random.default_rng(0)
    golden = rng.integers(0, 10, n)
    images = rng.integers(0, 256, (n, 4, 4, 3), dtype=np.uint8)
    images[:, 0, 0, 0] = golden
    truth = golden.copy()
    truth[:3] = (truth[:3] + 1) % 10                 # the golden model is wrong on 3 of 20
    np.save(out / "verify_expected.npy", golden.reshape(-1, 1).astype(np.float32))
    np.save(out / "deploy_images.npy", images)
    np.save(out / "deploy_true_labels.npy", truth)
    return cli.make_deploy_package(out, get_board("Pynq-Z2"))


def _run(dep: Path, *args, offset=0):
    import os

    return subprocess.run([sys.executable, str(dep / "run_on_board.py"), *args], capture_output=True, text=True,
                          cwd=dep, env=dict(os.environ, FAKE_OFFSET=str(offset)))


def test_run_on_board_with_an_overlay_that_returns_the_golden_labels(tmp_path):
    dep = _package(tmp_path)
    assert json.loads((dep / "deploy.json").read_text())["bitfile"] == "resizer.bit"
    r = _run(dep, "--batch", "8", "--repeat", "3")
    assert r.returncode == 0, r.stderr
    assert "labels equal to the golden model's: 20/20 (100.00 %)" in r.stdout
    assert "accuracy: 85.00 % on the board, 85.00 % golden model (20 images)" in r.stdout
    assert "FPS: " in r.stdout and "20 images x 3, batch 8" in r.stdout


def test_run_on_board_reports_labels_that_differ(tmp_path):
    dep = _package(tmp_path)
    r = _run(dep, "--images", "10", offset=1)
    assert r.returncode == 1
    assert "labels equal to the golden model's: 0/10 (0.00 %)" in r.stdout
    assert r.stderr.startswith("error: 10 labels differ from the golden model's")


@pytest.mark.parametrize("args,remove,msg", [
    (["--images", "50"], None, "--images 50: the package holds 20 images"),
    ([], "golden_labels.npy", "golden_labels.npy: missing from the deploy package"),
    ([], "resizer.bit", "resizer.bit: bitfile not found"),
])
def test_run_on_board_bad_input_is_one_line(tmp_path, args, remove, msg):
    dep = _package(tmp_path)
    if remove:
        (dep / remove).unlink()
    r = _run(dep, *args)
    assert r.returncode == 2 and r.stderr.startswith("error: ") and msg in r.stderr
    assert r.stderr.strip().count("\n") == 0


def test_make_deploy_needs_a_package_and_an_address(tmp_path):
    import shutil

    if shutil.which("make") is None:
        pytest.skip("make not installed")
    repo = Path(__file__).resolve().parents[1]
    r = subprocess.run(["make", "--no-print-directory", "deploy", f"OUT={tmp_path}"], capture_output=True, text=True,
                       cwd=repo)
    assert r.returncode != 0 and "error: give PYNQ_IP=" in r.stderr
    r = subprocess.run(["make", "--no-print-directory", "deploy", f"OUT={tmp_path}", "PYNQ_IP=192.168.2.99"],
                       capture_output=True, text=True, cwd=repo)
    assert r.returncode != 0 and f"error: {tmp_path}/deploy: no deploy package" in r.stderr
