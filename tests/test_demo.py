"""`make demo` (python -m build_flow.demo) end to end on a tiny model and tiny data: a tiny student
trained for seconds by the demo itself, then accuracy, export, IR, every bit-exact stage, Verilator
and Yosys, and the report; report.md's tables hold exactly report.json's numbers; offline and
without data it stops at once with one line saying how to pass DATA=."""
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from helpers import write_cifar_release

ROOT = Path(__file__).resolve().parents[1]
IMAGES = 4
TINY = {
    "name": "tiny-demo",
    "model": {"arch": "bireal", "widths": [8, 16], "blocks": [1, 1], "shortcut_bits": 4},
    "data": {"val_size": 20},
    "train": {"epochs": 2, "batch_size": 16, "lr": 0.003, "bn_recalibration_images": 100},
    "binarize": {"weights_only_epochs": 1},
}
STAGE_NAMES = ["PyTorch (Brevitas, eval)", "QONNX (qonnx execute_onnx)", "IR numpy (golden)", "IR onnxruntime",
               "RTL (Verilator)"]


def demo(*args, cwd=ROOT, env=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "build_flow.demo", *args], capture_output=True, text=True,
                          cwd=cwd, env=env)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    if shutil.which("verilator") is None or shutil.which("yosys") is None:
        pytest.skip("verilator and yosys are needed (make tools)")
    tmp = tmp_path_factory.mktemp("demo")
    release = write_cifar_release(tmp / "data", per_class_train=15)
    config = tmp / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    out = tmp / "run"
    t0 = time.perf_counter()
    r = demo("--config", str(config), "--train-set", "data.val_size=20", "--data", str(release), "--out", str(out),
             "--images", str(IMAGES), "--fps", "1000")
    seconds = time.perf_counter() - t0
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    return out, r, json.loads((out / "report.json").read_text()), seconds


def test_demo_runs_the_whole_flow_on_a_tiny_model(run):
    out, r, doc, seconds = run
    print(f"demo on the tiny model: {seconds:.0f} s")
    assert doc["ok"] is True
    # every stage, named and timed, in order
    heads = re.findall(r"^\[(\d)/8\] (.+?)\s{3}\(elapsed", r.stdout, re.M)
    assert [int(i) for i, _ in heads] == list(range(1, 9)), r.stdout
    assert list(doc["timings"]) == ["tools + data", "model", "accuracy", "compile + RTL", "verify", "rtlsim",
                                    "synth", "report"]
    # the model was trained by the run (no checkpoint given), on the tiny data
    assert doc["model"]["name"] == "tiny-demo" and doc["model"]["how"].startswith("trained by this run")
    assert (out / "train" / "checkpoint.pt").is_file()
    assert doc["data"]["how"] == "given (DATA=)"
    # accuracy on both splits (the fixture release has a test batch)
    assert doc["accuracy"]["val"]["images"] == 20 and 0 <= doc["accuracy"]["val"]["top1"] <= 1
    assert doc["accuracy"]["test"]["images"] == 40
    # every stage saw the same real images and agreed
    assert [s["stage"] for s in doc["stages"]] == STAGE_NAMES
    assert [(s["images"], s["mismatches"]) for s in doc["stages"]] == [(IMAGES, 0)] * 5
    assert doc["images"]["source"].startswith(f"{IMAGES} real images")
    h = doc["hardware"]
    assert h["cycles_per_frame"] > 0 and h["fps"] == pytest.approx(h["clock_mhz"] * 1e6 / h["cycles_per_frame"], rel=1e-3)
    assert h["lut"] > 0 and h["ff"] > 0 and h["latency_cycles"] > 0
    # the run folder holds everything it used
    for f in ("config.yaml", "commands.sh", "training_curves.png", "rtl_files.txt", "hw/model.onnx",
              "hw/ir/graph.json", "hw/folding.yaml", "hw/design.json", "hw/rtlsim.json", "hw/synth.json",
              "hw/report.md", "hw/cycles.png", "hw/resources.png"):
        assert (out / f).is_file(), f
    for f in ("training_curves.png", "hw/cycles.png", "hw/resources.png"):
        assert (out / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f
    rtl = (out / "rtl_files.txt").read_text().split()
    assert rtl and all((out / f).is_file() for f in rtl)
    for v in ("python", "torch", "brevitas", "qonnx", "onnxruntime", "verilator", "yosys", "git_commit"):
        assert doc["versions"][v] and doc["versions"][v] != "not found", v
    assert "python -m build_flow.rtl_flow rtlsim" in (out / "commands.sh").read_text()
    assert all(c.startswith("python -m ") for c in doc["commands"])


def _md_table(md: str, header: str) -> list[list[str]]:
    lines = md.splitlines()
    i = lines.index(header)
    rows = []
    for line in lines[i + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


def _num(text: str) -> float:
    return float(re.match(r"[-+]?\d+(\.\d+)?", text).group())


def test_report_tables_hold_the_json_numbers(run):
    out, r, doc, _ = run
    md = (out / "report.md").read_text()
    summary = dict(_md_table(md, "| quantity | value |"))
    h = doc["hardware"]
    for split, label in (("val", "validation top-1 (%)"), ("test", "test top-1 (%)")):
        a = doc["accuracy"][split]
        assert _num(summary[label]) == pytest.approx(100 * a["top1"], abs=0.005)
        assert f"{a['correct']} of {a['images']} images" in summary[label]
    for s in doc["stages"]:
        got = re.fullmatch(r"(\d+) of (\d+) images", summary[f"{s['stage']}: mismatches"])
        assert (int(got[1]), int(got[2])) == (s["mismatches"], s["images"])
    assert _num(summary["cycles / frame (measured)"]) == h["cycles_per_frame"]
    assert _num(summary["cycles / frame (planner)"]) == h["predicted_cycles_per_frame"]
    assert _num(summary["latency (cycles)"]) == h["latency_cycles"]
    assert _num(summary["latency (µs)"]) == pytest.approx(h["latency_cycles"] / h["clock_mhz"], abs=0.005)
    assert _num(summary[f"FPS at {h['clock_mhz']:g} MHz"]) == pytest.approx(h["fps"], abs=0.05)
    for k, key in (("LUT", "lut"), ("FF", "ff"), ("BRAM36", "bram36"), ("DSP", "dsp")):
        assert _num(summary[k]) == h[key], k
    assert summary["fits a Pynq-Z2 (xc7z020)"] == ("yes" if h["fits_pynq_z2"] else "no")
    assert _num(summary["binary MACs / image"]) == doc["model"]["binary_macs"]
    assert _num(summary["wall time (s)"]) == pytest.approx(doc["run"]["wall_s"], abs=0.05)
    assert _num(summary["CPU time (s)"]) == pytest.approx(doc["run"]["cpu_s"], abs=0.05)
    # the per-stage table
    rows = _md_table(md, "| stage | images | mismatches | max score difference | time (s) | note |")
    assert [(row[0], int(row[1]), int(row[2])) for row in rows] == \
        [(s["stage"], s["images"], s["mismatches"]) for s in doc["stages"]]
    # the charts the report shows exist, and the summary printed at the end is the same table
    for img in re.findall(r"!\[[^]]*\]\(([^)]+)\)", md):
        assert (out / img).is_file(), img
    printed = r.stdout[r.stdout.index("bnn-flow demo: "):]
    for k, v in summary.items():
        assert re.search(rf"^{re.escape(k)}\s+{re.escape(v)}$", printed, re.M), (k, v)


def test_offline_without_data_stops_at_once_with_one_line(tmp_path):
    """No DATA=, nothing at data/ or the shared zip, and no network (a proxy that refuses):
    one `error:` line naming DATA=, exit 2, before the model or any build is touched."""
    env = {k: "http://127.0.0.1:9" for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")}
    env.update(no_proxy="", NO_PROXY="")
    t0 = time.perf_counter()
    r = demo("--out", str(tmp_path / "run"), cwd=tmp_path, env=env)
    assert time.perf_counter() - t0 < 60
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    errors = [l for l in r.stderr.splitlines() if l.startswith("error: ")]
    assert len(errors) == 1 and "DATA=" in errors[0] and "could not download" in errors[0], r.stderr
    assert "[2/8]" not in r.stdout and not (tmp_path / "run").exists()
    assert not list((tmp_path / "data").glob("*.part")) if (tmp_path / "data").exists() else True
