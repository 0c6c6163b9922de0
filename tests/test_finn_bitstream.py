"""`make bitstream` without Docker or Vivado: preflight of Vitis HLS, the docker command (FINN's
run-docker.sh shape), collect() into OUT, Vivado report parsing on report fixtures in Vivado's formats
(tests/fixtures/vivado), the early cppsim/rtlsim stops inside the build, the shared install script, and
the FINN environment's smoke test (in the local FINN venv when FINN_VENV is set).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace as NS

import numpy as np
import pytest

from build_flow.finn import build, cli, preflight, smoke, verify_steps, vivado_reports
from build_flow.finn.boards import get_board
from build_flow.finn.build import BITSTREAM_STEPS, ESTIMATE_STEPS
from build_flow.finn.compare import load_golden, save_golden

REPO = Path(__file__).resolve().parents[1]
FIX = REPO / "tests" / "fixtures" / "vivado"
FINN_VENV = os.environ.get("FINN_VENV")


# ------------------------------------------------------------------ preflight
def _xilinx(tmp_path, *tools):
    for t in tools:
        (tmp_path / t / "2022.2").mkdir(parents=True)
        (tmp_path / t / "2022.2" / "settings64.sh").write_text("")
    return {"FINN_XILINX_PATH": str(tmp_path), "FINN_XILINX_VERSION": "2022.2"}


def test_preflight_needs_vitis_hls(tmp_path):
    env = _xilinx(tmp_path, "Vivado")
    with pytest.raises(preflight.PreflightError, match=r"Vitis HLS 2022.2 not found: .*Vitis_HLS/2022.2/settings64.sh"):
        preflight.check_vivado(get_board("Pynq-Z2"), env=env)
    _xilinx(tmp_path, "Vitis_HLS")
    preflight.check_vivado(get_board("Pynq-Z2"), env=env)


# ------------------------------------------------------------------ docker run
def test_docker_command_as_finns_run_docker(tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / ".Xilinx").mkdir(parents=True)
    lic = tmp_path / "Xilinx.lic"
    lic.write_text("")
    xil = tmp_path / "xilinx"
    env = {"FINN_XILINX_PATH": str(xil), "FINN_XILINX_VERSION": "2022.2",
           "XILINXD_LICENSE_FILE": f"2100@licserver:{lic}"}
    out = tmp_path / "out"
    args = NS(board="Pynq-Z2", image="bnn-flow-finn")
    cmd = cli.docker_command(args, out, ["-m", "build_flow.finn.build", "--out", str(out / "finn")], env=env, home=home)
    line = " ".join(cmd)
    build = (out / "finn_build").resolve()
    assert build.is_dir()                                     # a host folder: logs, IP cache survive --rm
    assert f"FINN_BUILD_DIR={build}" in line and f"VIVADO_IP_CACHE={build}/vivado_ip_cache" in line
    assert f"{out.resolve()}:{out.resolve()}" in line
    for want in ("LD_PRELOAD=/lib/x86_64-linux-gnu/libudev.so.1", "/etc/passwd:/etc/passwd:ro",
                 "/etc/group:/etc/group:ro", "SHELL=/bin/bash", "PYTHONUNBUFFERED=1",
                 f"{home}/.Xilinx:/tmp/home_dir/.Xilinx", f"{lic}:{lic}:ro", f"HLS_PATH={xil}/Vitis_HLS/2022.2"):
        assert want in line, want
    assert "2100@licserver:" not in line.replace(f"XILINXD_LICENSE_FILE=2100@licserver:{lic}", "")  # no mount of a server
    assert "VITIS_PATH" not in line                            # Zynq: Vivado only, no XRT needed
    alveo = " ".join(cli.docker_command(NS(board="U250", image="x"), out, [], env=env, home=home))
    assert f"VITIS_PATH={xil}/Vitis/2022.2" in alveo


# ------------------------------------------------------------------ Vivado reports
def test_timing_summary_met_and_violated():
    t = vivado_reports.parse_timing_summary((FIX / "pynq_z2_timing_summary_routed.rpt").read_text())
    assert t == {"wns_ns": 0.412, "tns_ns": 0.0, "setup_failing_endpoints": 0, "whs_ns": 0.019, "ths_ns": 0.0,
                 "hold_failing_endpoints": 0, "constraints_met": True}
    v = vivado_reports.parse_timing_summary((FIX / "pynq_z2_timing_summary_violated.rpt").read_text())
    assert v["wns_ns"] == -0.873 and v["tns_ns"] == -412.664 and v["setup_failing_endpoints"] == 961
    assert not v["constraints_met"]


def test_utilization_7series_and_ultrascale():
    u = vivado_reports.parse_utilization((FIX / "pynq_z2_utilization_placed.rpt").read_text())
    assert u["Slice LUTs"] == {"used": 24871, "available": 53200, "util_pct": 46.75}
    assert u["Slice Registers"]["used"] == 31208 and u["Block RAM Tile"]["used"] == 88.5
    assert u["DSPs"]["available"] == 220 and "LUT as Memory" not in u and "RAMB18" not in u
    z = vivado_reports.parse_utilization((FIX / "zcu104_utilization_placed.rpt").read_text())
    assert z["CLB LUTs"]["used"] == 46018 and z["URAM"]["available"] == 96 and z["DSPs"]["used"] == 2


def test_check_fails_on_negative_slack_and_over_utilization(tmp_path):
    ok = vivado_reports.summarize(FIX / "pynq_z2_timing_summary_routed.rpt", FIX / "pynq_z2_utilization_placed.rpt")
    assert ok["problems"] == []
    bad = vivado_reports.summarize(FIX / "pynq_z2_timing_summary_violated.rpt", FIX / "pynq_z2_utilization_over.rpt")
    assert bad["problems"][0].startswith("timing not met: worst negative slack -0.873 ns (961 failing endpoints)")
    assert bad["problems"][1] == "does not fit: Slice LUTs 61377 of 53200 (115.4 %)"
    r = subprocess.run([sys.executable, "-m", "build_flow.finn.vivado_reports",
                        str(FIX / "pynq_z2_timing_summary_violated.rpt"), str(FIX / "pynq_z2_utilization_placed.rpt")],
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 1 and "WNS -0.873 ns" in r.stdout and "error: timing not met" in r.stdout
    junk = tmp_path / "junk.rpt"
    junk.write_text("Copyright 1986-2022 Xilinx, Inc.\nnothing here\n")
    with pytest.raises(vivado_reports.ReportError, match="junk.rpt: no 'Design Timing Summary'"):
        vivado_reports.summarize(junk, FIX / "pynq_z2_utilization_placed.rpt")
    with pytest.raises(vivado_reports.ReportError, match="junk.rpt: no LUT/register/BRAM/DSP table"):
        vivado_reports.summarize(FIX / "pynq_z2_timing_summary_routed.rpt", junk)
    with pytest.raises(vivado_reports.ReportError, match="nope.rpt: Vivado report not found"):
        vivado_reports.summarize(tmp_path / "nope.rpt", junk)


def _vivado_proj(tmp_path, timing, util):
    impl = tmp_path / "vivado_zynq_proj" / "finn_zynq_link.runs" / "impl_1"
    impl.mkdir(parents=True)
    (impl / "top_wrapper_timing_summary_routed.rpt").write_text((FIX / timing).read_text())
    (impl / "top_wrapper_utilization_placed.rpt").write_text((FIX / util).read_text())
    return NS(get_metadata_prop=lambda k: str(tmp_path / "vivado_zynq_proj") if k == "vivado_pynq_proj" else None)


def test_vivado_reports_step_copies_checks_and_stops(tmp_path):
    cfg = NS(output_dir=str(tmp_path / "finn"), shell_flow_type=NS(value="vivado_zynq"))
    model = _vivado_proj(tmp_path / "a", "pynq_z2_timing_summary_routed.rpt", "pynq_z2_utilization_placed.rpt")
    assert verify_steps.step_bnn_vivado_reports(model, cfg) is model
    rep = tmp_path / "finn" / "report"
    assert (rep / "post_route_timing.rpt").is_file() and (rep / "post_place_utilization.rpt").is_file()
    assert json.loads((rep / "timing_fit.json").read_text())["timing"]["wns_ns"] == 0.412
    assert vivado_reports.check_reports(rep)["problems"] == []          # what the CLI reads after the build
    model = _vivado_proj(tmp_path / "b", "pynq_z2_timing_summary_violated.rpt", "pynq_z2_utilization_placed.rpt")
    with pytest.raises(verify_steps.TimingOrFitError, match="worst negative slack -0.873 ns"):
        verify_steps.step_bnn_vivado_reports(model, cfg)
    msg = cli.failure_message(tmp_path / "finn", 255)
    assert msg.startswith("timing not met: worst negative slack -0.873 ns") and "\n" not in msg


def test_bitstream_steps_fail_early_and_skip_ooc():
    assert ESTIMATE_STEPS.index("build_flow.finn.verify_steps:step_bnn_check_cppsim") == \
        ESTIMATE_STEPS.index("step_apply_folding_config") + 1
    assert BITSTREAM_STEPS.index("build_flow.finn.verify_steps:step_bnn_check_rtlsim") == \
        BITSTREAM_STEPS.index("step_create_stitched_ip") + 1
    assert BITSTREAM_STEPS.index("build_flow.finn.verify_steps:step_bnn_vivado_reports") == \
        BITSTREAM_STEPS.index("step_synthesize_bitfile") + 1
    assert "step_out_of_context_synthesis" not in BITSTREAM_STEPS
    mk = (REPO / "build_flow" / "finn" / "finn.mk").read_text()
    assert "--verify cppsim,rtlsim" in mk


# ------------------------------------------------------------------ early cppsim stop
def _golden_file(tmp_path, bits_golden, acc_golden, label):
    from tests.test_finn_backend import _ir_two_layers

    graph = _ir_two_layers()
    tmp_path.mkdir(parents=True, exist_ok=True)
    golden = {"t0": np.asarray([bits_golden]), "t1": np.asarray([acc_golden]), "lab": np.asarray([label])}
    return save_golden(tmp_path / "golden.npz", graph, golden)


def test_early_cppsim_stop(tmp_path):
    """FINN saved the cppsim context of one image: the step passes when it equals the golden model and
    stops the build (an exception, which FINN's builder turns into a failed build) when one value differs."""
    from tests.test_finn_backend import _fake_finn_dir

    finn_dir = _fake_finn_dir(tmp_path / "finn", bits=[1, 0, 1], popcounts=[7, 2], label=3)
    cfg = NS(output_dir=str(finn_dir), verify_steps=[NS(name="FOLDED_HLS_CPPSIM")])
    # MVAU_hls_0: bits 1,0,1 = +1,-1,+1; MVAU_hls_1 (MW 8): 2*7-8, 2*2-8
    good = str(_golden_file(tmp_path / "good", [1, -1, 1], [6, -4], 3))
    model = object()
    assert verify_steps.step_bnn_check_cppsim(model, cfg, good) is model
    assert json.loads((finn_dir / "compare_cppsim.json").read_text())["all_layers_equal"] is True
    # as FINN's builder calls it: build.py binds the golden file, the step keeps its name
    step = build.with_context(verify_steps.step_bnn_check_cppsim, ir_dir="unused", golden=good)
    assert step.__name__ == "step_bnn_check_cppsim" and step(model, cfg) is model
    bad = str(_golden_file(tmp_path / "bad", [1, -1, 1], [6, -2], 3))
    with pytest.raises(verify_steps.VerificationMismatch, match="cppsim outputs differ .*stopped after step_apply_folding_config"):
        verify_steps.step_bnn_check_cppsim(model, cfg, bad)
    rep = json.loads((finn_dir / "compare_cppsim.json").read_text())
    assert rep["layers"][1]["differing"] == 1 and rep["layers"][0]["differing"] == 0
    msg = cli.failure_message(finn_dir, 255)
    assert msg.startswith("cppsim outputs differ from the golden model (images [0]): the build stopped there")
    # no golden file or no cppsim verification: nothing to check
    assert verify_steps.step_bnn_check_cppsim(model, cfg) is model
    assert verify_steps.step_bnn_check_cppsim(model, NS(output_dir=str(finn_dir), verify_steps=[]), bad) is model


def test_golden_file_round_trip_and_bad_file(tmp_path):
    g = load_golden(_golden_file(tmp_path, [1, -1], [3], 5))
    assert g["names"] == ["mv0", "mv1"] and g["bipolar"] == [True, False] and g["label"].tolist() == [5]
    assert not list(tmp_path.glob("*.tmp*"))
    bad = tmp_path / "bad.npz"
    bad.write_text("no")
    with pytest.raises(ValueError, match="bad.npz: not a golden-output file"):
        load_golden(bad)


def test_rtlsim_labels_stop(tmp_path):
    from tests.test_finn_backend import _fake_finn_dir

    finn_dir = _fake_finn_dir(tmp_path / "finn", bits=[1], popcounts=[1], label=4)
    src = finn_dir / "verification_output" / "verify_folded_hls_cppsim_0_SUCCESS.npz"
    src.rename(finn_dir / "verification_output" / "verify_stitched_ip_rtlsim_0_SUCCESS.npz")
    cfg = NS(output_dir=str(finn_dir), verify_steps=[NS(name="STITCHED_IP_RTLSIM")])
    assert verify_steps.step_bnn_check_rtlsim("m", cfg, str(_golden_file(tmp_path / "a", [1], [1], 4))) == "m"
    with pytest.raises(verify_steps.VerificationMismatch, match="stitched-IP rtlsim labels differ"):
        verify_steps.step_bnn_check_rtlsim("m", cfg, str(_golden_file(tmp_path / "b", [1], [1], 2)))


def test_rtlsim_cycles_beside_the_planner(tmp_path, monkeypatch):
    import hw.planner

    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "rtlsim_performance.json").write_text(json.dumps(
        {"cycles": 360000, "latency_cycles": 36000, "fclk[mhz]": 100.0, "stable_throughput[images/s]": 3086.4}))
    monkeypatch.setattr(hw.planner, "predict_cycles", lambda g, f: {"a": 32768, "b": 100})
    r = cli.rtlsim_vs_planner(tmp_path, None, NS(clock_mhz=100.0))
    assert r["planned_cycles_per_frame"] == 32768 and abs(r["measured_cycles_per_frame"] - 32400.1) < 1
    assert cli.rtlsim_vs_planner(tmp_path / "none", None, None) is None


# ------------------------------------------------------------------ collect() into OUT
def _finished_build(out: Path, alveo=False):
    finn = out / "finn"
    for d in ("bitfile", "report", "driver/finn/util", "driver/runtime_weights"):
        (finn / d).mkdir(parents=True, exist_ok=True)
    for f in (["finn-accel.xclbin"] if alveo else ["finn-accel.bit", "finn-accel.hwh"]):
        (finn / "bitfile" / f).write_text(f)
    (finn / "driver" / "driver.py").write_text("io_shape_dict = {}\n")
    (finn / "driver" / "driver_base.py").write_text("")
    (finn / "report" / "post_route_timing.rpt").write_text((FIX / "pynq_z2_timing_summary_routed.rpt").read_text())
    (finn / "compare.json").write_text("{}")
    np.save(out / "verify_expected.npy", np.array([[3.0], [1.0]], dtype=np.float32))
    np.save(out / "deploy_images.npy", np.zeros((2, 4, 4, 3), np.uint8))
    np.save(out / "deploy_true_labels.npy", np.array([3, 2]))


def test_collect_into_out_replaces_stale_files(tmp_path):
    out = tmp_path / "out"
    _finished_build(out)
    (out / "bitstream" / "bitfile").mkdir(parents=True)
    (out / "bitstream" / "bitfile" / "old.xclbin").write_text("stale")        # from an earlier build
    dest = cli.collect(out, "pynq-z2")
    assert dest == out / "bitstream"
    assert sorted(p.name for p in (dest / "bitfile").iterdir()) == ["finn-accel.bit", "finn-accel.hwh"]
    assert (dest / "report" / "post_route_timing.rpt").is_file() and (dest / "compare.json").is_file()
    assert not (REPO / "build" / "pynq-z2").exists() and not list(out.glob("*.tmp")) and not list(out.glob("*.old"))
    dep = out / "deploy"
    assert {"resizer.bit", "resizer.hwh", "driver.py", "driver_base.py", "run_on_board.py", "test_images.npy",
            "golden_labels.npy", "true_labels.npy", "deploy.json", "finn", "runtime_weights"} <= {p.name for p in dep.iterdir()}
    assert np.load(dep / "golden_labels.npy").tolist() == [3, 1]
    assert json.loads((dep / "deploy.json").read_text())["platform"] == "zynq-iodma"


def test_collect_alveo_and_missing_bitfile(tmp_path):
    out = tmp_path / "u250"
    _finished_build(out, alveo=True)
    cli.collect(out, "U250")
    assert (out / "deploy" / "resizer.xclbin").is_file()
    assert json.loads((out / "deploy" / "deploy.json").read_text())["platform"] == "alveo"
    assert (out / "bitstream" / "report" / "post_route_timing.rpt").is_file()   # timing for U250 too
    (out / "finn" / "bitfile" / "finn-accel.xclbin").unlink()
    with pytest.raises(cli.FinnBuildError, match="finn-accel.xclbin: missing after the FINN build"):
        cli.collect(out, "U250")


# ------------------------------------------------------------------ image files
def test_dockerfile_and_dockerignore():
    df = (REPO / "Dockerfile").read_text()
    assert "ARG XIL_BDF_COMMIT=20bbb1210350982586fc3e42e9a15ee531417fea" in df      # 2022.2 branch: TUL pynq-z2
    assert "boards/TUL/pynq-z2" in df and "XRT_DEB_VERSION=xrt_202220.2.14.354_22.04-amd64-xrt" in df
    assert "install_finn_python.sh python3 $FINN_ROOT --rtlsim" in df
    assert "python -m build_flow.finn.smoke --image" in df and "PYTHONUNBUFFERED=1" in df
    ignore = (REPO / ".dockerignore").read_text().split()
    assert {".venv", "build", "runs", ".git"} <= set(ignore)
    ep = (REPO / "build_flow" / "finn" / "docker-entrypoint.sh").read_text()
    assert "LD_PRELOAD=/lib/x86_64-linux-gnu/libudev.so.1" in ep and "error: XRT not found" in ep


def test_entrypoint_refuses_vitis_without_xrt(tmp_path):
    vitis = tmp_path / "Vitis"
    vitis.mkdir()
    (vitis / "settings64.sh").write_text("")
    env = dict(os.environ, VITIS_PATH=str(vitis), HOME=str(tmp_path / "h"), FINN_BUILD_DIR=str(tmp_path / "b"),
               OHMYXILINX="")
    r = subprocess.run(["bash", str(REPO / "build_flow/finn/docker-entrypoint.sh"), "true"], env=env,
                       capture_output=True, text=True)
    if Path("/opt/xilinx/xrt/setup.sh").exists():
        pytest.skip("XRT is installed here")
    assert r.returncode == 2 and r.stderr.startswith("error: XRT not found at /opt/xilinx/xrt")


# ------------------------------------------------------------------ smoke test and install script
def test_smoke_board_parts_and_board_files(tmp_path):
    tpl = '''if {$BOARD == "ZCU104"} {
    set_property board_part xilinx.com:zcu104:part0:1.1 [current_project]
    set ZYNQ_TYPE "zynq_us+"
} elseif {$BOARD == "Pynq-Z2"} {
    set ZYNQ_TYPE "zynq_7000"
    set_property board_part tul.com.tw:pynq-z2:part0:1.0 [current_project]
}'''
    assert smoke.board_parts(tpl) == {"ZCU104": "xilinx.com:zcu104:part0:1.1", "Pynq-Z2": "tul.com.tw:pynq-z2:part0:1.0"}
    d = tmp_path / "pynq-z2" / "A.0"
    d.mkdir(parents=True)
    (d / "board.xml").write_text('<board schema_version="2.0" vendor="tul.com.tw" name="pynq-z2">'
                                 "<file_version>1.0</file_version></board>")
    assert smoke.find_board_files(tmp_path, "tul.com.tw:pynq-z2:part0:1.0") == d / "board.xml"
    with pytest.raises(smoke.SmokeError, match="board files for xilinx.com:zcu104:part0:1.1 not found .*tul.com.tw:pynq-z2:1.0"):
        smoke.find_board_files(tmp_path, "xilinx.com:zcu104:part0:1.1")


def test_install_script_bad_input(tmp_path):
    script = REPO / "build_flow" / "finn" / "install_finn_python.sh"
    r = subprocess.run(["bash", str(script), sys.executable, str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip() == f"error: FINN_ROOT={tmp_path}: no FINN source tree (no setup.py)"
    r = subprocess.run(["bash", str(script), sys.executable, str(tmp_path), "--fast"], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown option '--fast'" in r.stderr


def _venv_ok() -> bool:
    return bool(FINN_VENV) and Path(FINN_VENV, "bin", "python").exists() and Path(FINN_VENV, "env.sh").exists()


needs_venv = pytest.mark.skipif(not _venv_ok(), reason="set FINN_VENV to a venv from build_flow/finn/setup_local_finn.sh")


def _in_venv(cmd: str, timeout=900) -> subprocess.CompletedProcess:
    line = f". {FINN_VENV}/env.sh && {cmd}"
    return subprocess.run(["bash", "-c", line], capture_output=True, text=True, cwd=REPO, timeout=timeout,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))


@needs_venv
def test_smoke_in_the_local_finn_venv():
    r = _in_venv(f"{FINN_VENV}/bin/python -m build_flow.finn.smoke")
    assert r.returncode == 0, r.stderr
    assert "ok: FINN's builder imports (torchvision: the documented stub; protobuf 5.29.6)" in r.stdout
    assert "ok: Pynq-Z2: tul.com.tw:pynq-z2:part0:1.0" in r.stdout and "ok: ZCU104: xilinx.com:zcu104:part0:1.1" in r.stdout
    assert "build steps resolve" in r.stdout


@needs_venv
def test_install_script_in_the_local_finn_venv():
    """The shared install path re-run over the local venv (pip finds everything installed): the same pins."""
    r = _in_venv(f"TORCH_INDEX=${{TORCH_INDEX:-none}} bash build_flow/finn/install_finn_python.sh "
                 f"{FINN_VENV}/bin/python {FINN_VENV}/finn")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "ok: FINN builder imports, protobuf 5.29.6" in r.stdout
    freeze = subprocess.run([f"{FINN_VENV}/bin/python", "-m", "pip", "freeze", "--all"], capture_output=True, text=True).stdout
    pins = [l.strip() for l in (REPO / "build_flow/finn/requirements-finn.txt").read_text().splitlines()
            if l.strip() and not l.startswith("#")]
    from packaging.version import Version

    norm = lambda n: n.lower().replace("_", "-")  # noqa: E731
    have = {norm(l.split("==")[0]): Version(l.split("==")[1]) for l in freeze.splitlines() if "==" in l and not l.startswith("#")}
    for pin in pins:
        name, version = pin.split("==")
        assert have.get(norm(name)) == Version(version), (pin, have.get(norm(name)))


def test_run_finn_clears_results_of_an_earlier_build(tmp_path):
    """A stale compare_cppsim.json (mismatch) in a reused OUT must not be blamed for a new failure."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "env.sh").write_text("")
    (venv / "bin" / "python").write_text("#!/bin/sh\nexit 3\n")
    (venv / "bin" / "python").chmod(0o755)
    out = tmp_path / "out"
    (out / "finn" / "verification_output").mkdir(parents=True)
    (out / "finn" / "verification_output" / "verify_folded_hls_cppsim_9_FAIL.npz").write_text("")
    (out / "finn" / "compare_cppsim.json").write_text(json.dumps(
        {"all_layers_equal": False, "all_labels_equal": True, "rows": [{"image": 0, "layers_equal": False, "label_equal": True}]}))
    args = NS(command="estimate", finn_venv=str(venv), verify="cppsim", board="Pynq-Z2")
    with pytest.raises(cli.FinnBuildError, match=r"^the FINN build failed \(exit 3\): see .*build_dataflow.log$"):
        cli.run_finn(args, out)
    assert not (out / "finn" / "compare_cppsim.json").exists() and not (out / "finn" / "verification_output").exists()
