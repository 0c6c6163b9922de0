"""Every RTL module in hw/rtl lints clean with Verilator -Wall and synthesizes with Yosys
`synth_xilinx -family xc7 -flatten` (submodules counted in) for one realistic parameter set, leaving no unmapped cells or latches.

To cover a new module add a row to SYNTH_CASES (module -> parameters); SYNTH_EXPECT optionally
lists Xilinx primitives the netlist must contain (e.g. block RAM for a deep FIFO)."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

RTL = Path(__file__).resolve().parents[1] / "hw" / "rtl"

SYNTH_CASES: dict[str, dict[str, int | str]] = {
    "bnn_fifo": {"W": 32, "DEPTH": 1000},
    "bnn_fork": {"W": 16, "N": 3},
    "bnn_dwc": {"EW": 4, "IN_E": 2, "OUT_E": 6},
    "bnn_addsat": {"E": 4, "IN_EW": 6, "IN_SIGNED": 1, "OUT_EW": 5, "OUT_MIN": -16, "OUT_MAX": 15},
    "bnn_concat": {"E": 2, "EW": 4, "C0": 4, "C1": 6},
    "bnn_swg": {"H": 16, "W": 16, "C": 64, "E": 8, "EW": 1, "K": 3, "S": 1, "PAD": 1, "PAD_VALUE": 0},
    "bnn_pool": {"H": 16, "W": 16, "C": 64, "E": 8, "IN_EW": 4, "OUT_EW": 6, "MODE": 2, "K": 2},
    "bnn_rmw": {"WORDS": 64, "DW": 48, "XW": 32, "AW": 6},  # bnn_pool's partial results, on its own
    "bnn_out_fifo": {"W": 40, "DEPTH": 7},  # bnn_swg's, with READ_REGS = 3
    "bnn_global_sumpool": {"PIXELS": 64, "C": 512, "E": 8, "IN_EW": 5, "OUT_EW": 11},
    "bnn_label_select": {"C": 1000, "E": 4, "IN_EW": 16, "OUT_W": 10},
    "bnn_uart_rx": {"CLKS_PER_BIT": 25},
    "bnn_uart_tx": {"CLKS_PER_BIT": 25},
    "bnn_uart_bridge": {"N_BYTES": 3072, "IN_E": 3, "N_SCORES": 10, "SCORE_E": 1, "SCORE_EW": 18, "LABEL_W": 4},
}



def _memory_cases() -> dict[str, dict[str, int | str]]:
    """bnn_mvtu and bnn_threshold read their ROM contents from memory files: seeded ones, written by
    hw/mvtu_mem.py into a cache directory named by their content (renamed into place whole, so
    parallel workers never see half a file), so synthesis maps real weights and thresholds.
    A conv layer 3x3x64 -> 64 with a BIPOLAR output, and a 64-channel INT8 -> INT4 Threshold (15
    thresholds: the binary-search mode, mvtu_params' default for L = 15)."""
    import hashlib
    import os
    import shutil
    import tempfile

    import numpy as np

    from hw import mvtu_mem
    from hw.sim import cache_dir

    rng = np.random.default_rng(0)
    w = rng.choice([-1, 1], size=(64, 576))
    t1, d1 = rng.integers(-60, 60, size=(64, 1)), rng.choice([-1, 1], size=64)
    t15, d15 = rng.integers(-128, 128, size=(64, 15)), rng.choice([-1, 1], size=64)
    h = hashlib.sha256(b"".join(np.ascontiguousarray(a, np.int64).tobytes() for a in (w, t1, d1, t15, d15)))
    h.update(Path(mvtu_mem.__file__).read_bytes())  # a new file layout or naming gets a new directory
    root = (cache_dir().parent / "mem").resolve()
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"synth-{h.hexdigest()[:16]}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=root))
    cases = {"bnn_mvtu": mvtu_mem.mvtu_params(tmp, "mv", w, "BIPOLAR", "BIPOLAR", 4, 32, t1, d1),
             "bnn_threshold": mvtu_mem.threshold_params(tmp, "th", 64, 4, "INT8", "INT4", t15, d15),
             # a bank of a weight ROM in logic (the ECP5 layout): 16 words of 128 bits
             "bnn_rom": {"W": 128, "DEPTH": 16, "AW": 4,
                         "FILE": str(mvtu_mem.write_mem(tmp / "rom.mem", [int(v) for v in
                                                                          rng.integers(0, 2 ** 62, 16)], 128))}}
    try:
        os.rename(tmp, final)
    except OSError:  # there already (same content)
        shutil.rmtree(tmp, ignore_errors=True)
    th = cases["bnn_threshold"]  # the shared activation alone, at the Threshold case's parameters
    cases["bnn_thres_step"] = {"N": th["E"], "G": th["C"] // th["E"], "X_W": th["IN_EW"] + 1,
                               **{k: th[k] for k in ("N_THRES", "T_W", "THRES_FILE", "DIR_FILE", "THRES_SEARCH",
                                                     "OUT_EW", "OUT_BIPOLAR", "Y_MIN")}}
    return {m: {k: v.replace(str(tmp), str(final)) if isinstance(v, str) else v for k, v in p.items()}
            for m, p in cases.items()}


SYNTH_CASES.update(_memory_cases())

# primitives (regular expressions on cell type names) the synthesized netlist must contain
SYNTH_EXPECT: dict[str, list[str]] = {
    "bnn_fifo": [r"RAMB(18|36)E1"],
    "bnn_addsat": [r"CARRY4"],
    "bnn_swg": [r"RAMB(18|36)E1"],  # the line buffer: 4 rows x 16 x 8 words of 8 bits
    "bnn_mvtu": [r"RAMB(18|36)E1", r"CARRY4"],  # the weight ROM: 288 words of 128 bits
}


def _sources() -> list[Path]:
    return sorted(RTL.glob("*.sv"))


def _yosys_param(value) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    value = int(value)
    if value < 0:  # chparam cannot parse "-16": a 32-bit signed two's complement literal
        return f"32'sh{value & 0xFFFFFFFF:08x}"
    return str(value)


def test_every_module_has_a_synth_case():
    modules = {p.stem for p in _sources()}
    assert {"bnn_fifo", "bnn_fork", "bnn_dwc", "bnn_addsat", "bnn_concat"} <= modules
    assert sorted(modules - set(SYNTH_CASES)) == []
    assert sorted(set(SYNTH_CASES) - modules) == []


def _cell_counts(stat: str) -> dict[str, int]:
    cells = {}
    for m in re.finditer(r"^\s+(\S+)\s+(\d+)\s*$", stat.split("Number of cells:", 1)[-1], re.M):
        cells[m.group(1)] = int(m.group(2))
    return cells


@pytest.mark.parametrize("module", sorted(SYNTH_CASES))
def test_yosys_synth_xilinx(module, tmp_path):
    params = SYNTH_CASES[module]
    reads = "; ".join(f"read_verilog -sv {p}" for p in _sources())
    chparam = " ".join(f"-set {k} {_yosys_param(v)}" for k, v in params.items())
    stat = tmp_path / "stat.txt"
    script = (f"{reads}; chparam {chparam} {module}; synth_xilinx -family xc7 -top {module} -flatten; "
              f"tee -q -o {stat} stat")
    proc = subprocess.run(["yosys", "-q", "-p", script], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, f"yosys failed for {module}:\n{proc.stderr[-3000:]}{proc.stdout[-2000:]}"
    cells = _cell_counts(stat.read_text())
    assert cells, stat.read_text()
    unmapped = sorted(c for c in cells if c.startswith("$"))  # $mem, $dlatch, $alu ... left over
    latches = sorted(c for c in cells if re.fullmatch(r"LD[CP]E?|\$.*latch.*", c))
    assert not unmapped and not latches, f"{module}: unmapped cells {unmapped}, latches {latches}"
    for pattern in SYNTH_EXPECT.get(module, []):
        assert any(re.fullmatch(pattern, c) for c in cells), f"{module}: no {pattern} in {sorted(cells)}"


@pytest.mark.parametrize("module", sorted(SYNTH_CASES))
def test_verilator_lint(module):
    params = [f'-G{k}="{v}"' if isinstance(v, str) else f"-G{k}={int(v)}" for k, v in SYNTH_CASES[module].items()]
    cmd = ["verilator", "--lint-only", "-Wall", "--top-module", module, *params, *map(str, _sources())]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
