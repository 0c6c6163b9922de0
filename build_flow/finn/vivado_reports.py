"""Timing and fit from Vivado's text reports: worst negative slack (report_timing_summary) and utilization
(report_utilization). Pure Python: runs in FINN's environment (step_bnn_vivado_reports) and the project's
(cli.collect).

    python -m build_flow.finn.vivado_reports TIMING.rpt UTILIZATION.rpt     # prints, exit 1 if it fails

A report that cannot be read (missing, no Design Timing Summary / no resource table) raises ReportError
naming the file.
"""
from __future__ import annotations

import sys
from pathlib import Path

# the top-level resources checked for fit (7-series names, then UltraScale+ names)
RESOURCES = ("Slice LUTs", "CLB LUTs", "Slice Registers", "CLB Registers", "Block RAM Tile", "URAM", "DSPs")


class ReportError(ValueError):
    """A Vivado report that is missing or not in the format Vivado writes."""


def _read(path) -> str:
    p = Path(path)
    if not p.is_file():
        raise ReportError(f"{p}: Vivado report not found")
    return p.read_text(errors="replace")


def parse_timing_summary(text: str, name: str = "timing report") -> dict:
    """WNS/TNS/WHS/THS (ns) and failing endpoints from the Design Timing Summary table."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("| Design Timing Summary"):
            break
    else:
        raise ReportError(f"{name}: no 'Design Timing Summary' (not a report_timing_summary report)")
    for j in range(i + 1, min(i + 20, len(lines))):
        if lines[j].split()[:2] == ["WNS(ns)", "TNS(ns)"]:
            # the header, a dashed line, then the values (one per column; headers hold spaces)
            values = lines[j + 2].split() if j + 2 < len(lines) else []
            if len(values) < 8:
                break
            try:
                nums = [float(v) for v in values[:8]]
            except ValueError:
                break
            wns, tns, tns_fail, _, whs, ths, ths_fail, _ = nums
            met = "All user specified timing constraints are met." in text
            return {"wns_ns": wns, "tns_ns": tns, "setup_failing_endpoints": int(tns_fail), "whs_ns": whs,
                    "ths_ns": ths, "hold_failing_endpoints": int(ths_fail), "constraints_met": met}
    raise ReportError(f"{name}: Design Timing Summary without a WNS/TNS value row")


def parse_utilization(text: str, name: str = "utilization report") -> dict:
    """{site type: {used, available, util_pct}} for the top-level rows of every resource table."""
    out = {}
    header = None
    for line in text.splitlines():
        if not line.startswith("|"):
            if not line.startswith("+"):
                header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] == "Site Type":
            header = cells
            continue
        if header is None or len(cells) != len(header) or "Used" not in header or "Available" not in header:
            continue
        raw = line.strip().strip("|").split("|")[0]
        if raw.startswith("   "):      # an indented sub-row (LUT as Logic, RAMB18, …)
            continue
        try:
            used = float(cells[header.index("Used")])
            avail = float(cells[header.index("Available")])
        except ValueError:
            continue
        util = cells[header.index("Util%")] if "Util%" in header else ""
        pct = 0.0 if util.startswith("<") else float(util) if util else (100.0 * used / avail if avail else 0.0)
        out.setdefault(cells[0], {"used": used, "available": avail, "util_pct": pct})
    if not any(k in out for k in RESOURCES):
        raise ReportError(f"{name}: no LUT/register/BRAM/DSP table (not a report_utilization report)")
    return out


def check(timing: dict, util: dict) -> list[str]:
    """What fails: negative setup or hold slack, a resource used beyond what the part has."""
    problems = []
    if timing["wns_ns"] < 0:
        problems.append(f"timing not met: worst negative slack {timing['wns_ns']:.3f} ns "
                        f"({timing['setup_failing_endpoints']} failing endpoints); lower the clock or the folding")
    if timing["whs_ns"] < 0:
        problems.append(f"hold timing not met: worst hold slack {timing['whs_ns']:.3f} ns")
    for res in RESOURCES:
        r = util.get(res)
        if r and (r["used"] > r["available"] or r["util_pct"] > 100.0):
            problems.append(f"does not fit: {res} {r['used']:.0f} of {r['available']:.0f} ({r['util_pct']:.1f} %)")
    return problems


def summarize(timing_path, util_path) -> dict:
    timing = parse_timing_summary(_read(timing_path), str(timing_path))
    util = parse_utilization(_read(util_path), str(util_path))
    fit = {k: v for k, v in util.items() if k in RESOURCES}
    return {"timing": timing, "utilization": fit, "problems": check(timing, util),
            "timing_report": str(timing_path), "utilization_report": str(util_path)}


def check_reports(report_dir) -> dict:
    """The summary of FINN's report folder (post_route_timing.rpt, post_place_utilization.rpt, as
    verify_steps.step_bnn_vivado_reports leaves them), printed."""
    d = Path(report_dir)
    s = summarize(d / "post_route_timing.rpt", d / "post_place_utilization.rpt")
    print(format_summary(s))
    return s


def format_summary(s: dict) -> str:
    t = s["timing"]
    lines = [f"timing: WNS {t['wns_ns']:.3f} ns, TNS {t['tns_ns']:.3f} ns, WHS {t['whs_ns']:.3f} ns "
             f"({'met' if t['wns_ns'] >= 0 and t['whs_ns'] >= 0 else 'NOT met'})"]
    for k, r in s["utilization"].items():
        lines.append(f"  {k:<16} {r['used']:>9.0f} / {r['available']:<9.0f} {r['util_pct']:6.2f} %")
    lines += [f"error: {p}" for p in s["problems"]]
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m build_flow.finn.vivado_reports TIMING.rpt UTILIZATION.rpt", file=sys.stderr)
        return 2
    try:
        s = summarize(*argv)
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_summary(s))
    return 1 if s["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
