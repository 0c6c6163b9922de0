"""Yosys synthesis of a generated design for a 7-series part (the Pynq-Z2's xc7z020 family):
LUT / FF / BRAM / DSP per layer and in total, written as JSON.

The design keeps its hierarchy (no -flatten), so every layer's instance is one module of the
netlist and its cells are counted where they are. Counting follows Vivado's utilization report:
LUTs include LUTs used as memory (RAM32M/RAM64M/…), shift registers (SRL16E/SRLC32E) and
Yosys' INV cells (Vivado would fold most into neighbouring LUTs: the count is conservative); a
RAMB18E1 is half a BRAM36.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from model.errors import FlowError

# LUT6-equivalents per Xilinx memory / shift primitive (Vivado counts them as 'LUT as Memory')
_LUTRAM = {"RAM32M": 4, "RAM32M16": 8, "RAM64M": 4, "RAM64M8": 8, "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1D": 4,
           "RAM256X1D": 8, "RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2, "RAM256X1S": 4, "SRL16E": 1, "SRLC32E": 1}
_FF = ("FDRE", "FDSE", "FDCE", "FDPE")
PYNQ_Z2 = {"part": "xc7z020clg400-1", "lut": 53200, "ff": 106400, "bram36": 140, "dsp": 220}


class SynthError(FlowError):
    """Yosys is missing or failed."""


def _count(cells: dict[str, int]) -> dict[str, float]:
    lut = sum(n for t, n in cells.items() if re.fullmatch(r"LUT[1-6]", t)) + \
        sum(n * _LUTRAM[t] for t, n in cells.items() if t in _LUTRAM) + cells.get("INV", 0)
    return {"lut": lut, "ff": sum(cells.get(t, 0) for t in _FF),
            "bram36": cells.get("RAMB36E1", 0) + 0.5 * cells.get("RAMB18E1", 0), "dsp": cells.get("DSP48E1", 0)}


def synthesize(design: dict, out_dir: str | Path, family: str = "xc7", timeout: int = 3600) -> dict:
    """Run `yosys synth_xilinx` on design.json's sources; writes OUT/synth.json (+ yosys.log)."""
    if shutil.which("yosys") is None:
        raise SynthError("yosys not found: install it (apt-get install yosys) or run `make setup`")
    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory() as tmp:
        netlist = Path(tmp) / "netlist.json"
        reads = " ".join(f"read_verilog -sv {s};" for s in design["sources"])
        script = f"{reads} synth_xilinx -family {family} -top {design['top']} -noiopad; write_json {netlist}"
        t0 = time.perf_counter()
        proc = subprocess.run(["yosys", "-q", "-l", str(Path(tmp) / "yosys.log"), "-p", script],
                              capture_output=True, text=True, timeout=timeout)
        seconds = time.perf_counter() - t0
        log = Path(tmp) / "yosys.log"
        if log.exists():
            shutil.copy(log, out_dir / "yosys.log")
        if proc.returncode != 0:
            err = [l for l in (proc.stderr + proc.stdout).splitlines() if "ERROR" in l] or proc.stderr.splitlines()[-5:]
            raise SynthError(f"yosys failed on {design['top']} (log: {out_dir / 'yosys.log'}): {' '.join(err)[:400]}")
        modules = json.loads(netlist.read_text())["modules"]

    def cells_of(module: str) -> dict[str, int]:
        """Primitive counts of `module` with its submodules expanded."""
        counts: dict[str, int] = {}
        for cell in modules[module]["cells"].values():
            t = cell["type"]
            sub = cells_of(t) if _is_design_module(t, modules) else {t: 1}
            for k, n in sub.items():
                counts[k] = counts.get(k, 0) + n
        return counts

    top_cells = modules[design["top"]]["cells"]
    per_instance = {name: cell["type"] for name, cell in top_cells.items()}
    layers, glue = {}, {}
    layer_of = {l["instance"]: l["name"] for l in design["layers"]}
    for inst, module in per_instance.items():
        counts = _count(cells_of(module) if _is_design_module(module, modules) else {module: 1})
        if inst in layer_of:
            layers[layer_of[inst]] = counts
        else:  # FIFOs, width converters, output fork
            glue[inst] = counts
    total = _count(cells_of(design["top"]))
    result = {"tool": _yosys_version(), "family": family, "seconds": round(seconds, 1), "total": total,
              "layers": layers, "glue": glue, "budget": PYNQ_Z2,
              "fits_pynq_z2": total["lut"] <= PYNQ_Z2["lut"] and total["bram36"] <= PYNQ_Z2["bram36"]
              and total["ff"] <= PYNQ_Z2["ff"] and total["dsp"] <= PYNQ_Z2["dsp"]}
    (out_dir / "synth.json").write_text(json.dumps(result, indent=1))
    return result


def _is_design_module(name: str, modules: dict) -> bool:
    """A module of the design (not a Xilinx primitive: the netlist also carries their
    black/white-box simulation models, which must count as one cell each)."""
    attrs = modules.get(name, {}).get("attributes", {})
    return name in modules and not any(k in attrs for k in ("blackbox", "whitebox", "lib_whitebox"))


def _yosys_version() -> str:
    return subprocess.run(["yosys", "-V"], capture_output=True, text=True).stdout.strip()
