"""The demo's report: report.json holds every number of a run; report.md and the summary table
printed at the end are generated from it alone."""
from __future__ import annotations

import json
from pathlib import Path

from .progress import fmt_s


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def summary_rows(doc: dict) -> list[tuple[str, str]]:
    """(quantity, value) rows of the summary table, all taken from report.json's document."""
    rows = [("model", f"{doc['model']['name']} ({doc['model']['checkpoint']}, {doc['model']['how']})")]
    if doc["model"].get("binary_macs") is not None:
        rows.append(("binary MACs / image", f"{doc['model']['binary_macs']}"))
    for split, label in (("val", "validation top-1 (%)"), ("test", "test top-1 (%)")):
        a = doc["accuracy"].get(split, {})
        if "top1" in a:
            rows.append((label, f"{_pct(a['top1'])} ({a['correct']} of {a['images']} images)"))
        else:
            rows.append((label, f"not measured ({a.get('skipped', 'no data')})"))
    for s in doc["stages"]:
        rows.append((f"{s['stage']}: mismatches", f"{s['mismatches']} of {s['images']} images"))
    h = doc["hardware"]
    rows += [("clock (MHz)", f"{h['clock_mhz']:g}"),
             ("cycles / frame (measured)", f"{h['cycles_per_frame']:g}"),
             ("cycles / frame (planner)", f"{h['predicted_cycles_per_frame']}"),
             ("latency (cycles)", f"{h['latency_cycles']}"),
             ("latency (µs)", f"{h['latency_us']:.2f}"),
             (f"FPS at {h['clock_mhz']:g} MHz", f"{h['fps']:.1f}"),
             ("LUT", f"{h['lut']}"), ("FF", f"{h['ff']}"), ("BRAM36", f"{h['bram36']:g}"), ("DSP", f"{h['dsp']}"),
             ("fits a Pynq-Z2 (xc7z020)", "yes" if h["fits_pynq_z2"] else "no"),
             ("wall time (s)", f"{doc['run']['wall_s']:.1f}"),
             ("CPU time (s)", f"{doc['run']['cpu_s']:.1f}")]
    return rows


def table(rows: list[tuple[str, str]]) -> str:
    return "\n".join(["| quantity | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows])


def plain_table(rows: list[tuple[str, str]]) -> str:
    w = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{w}}  {v}" for k, v in rows)


def render_markdown(doc: dict) -> str:
    """report.md, generated from report.json's document only."""
    run, model, h = doc["run"], doc["model"], doc["hardware"]
    verdict = ("**Bit-exact: every stage computed the same integers on every image.**" if doc["ok"]
               else "**MISMATCH: at least one stage disagrees (see the table).**")
    lines = [f"# bnn-flow demo: {model['name']} from checkpoint to verified hardware", "",
             f"Run folder `{run['folder']}`, {run['date']}, on {run['machine']['cpu']} "
             f"({run['machine']['cpus']} CPUs). Wall time {fmt_s(run['wall_s'])}.", "", verdict, "",
             "## Summary", "", table(summary_rows(doc)), "",
             "## Images checked and mismatches per stage", "",
             f"Images: {doc['images']['source']}. Each stage is compared with the PyTorch model (class scores "
             "and class, `numpy.array_equal`, plus every quantizer's integers inside the network); the RTL with "
             "the IR golden model (every output integer, random stalls on both streams).", "",
             "| stage | images | mismatches | max score difference | time (s) | note |",
             "|---|---:|---:|---:|---:|---|"]
    for s in doc["stages"]:
        diff = "" if s["max_diff"] is None else f"{s['max_diff']:g}"
        lines.append(f"| {s['stage']} | {s['images']} | {s['mismatches']} | {diff} | {s['seconds']:.1f} | "
                     f"{s['note']} |")
    lines += ["", "## Hardware", "",
              f"Folding `{h['folding']}` (target {h['target_fps']:g} FPS at {h['clock_mhz']:g} MHz), "
              f"{h['layers']} layers, bottleneck `{h['bottleneck']}`. Measured in Verilator without stalls: "
              f"{h['cycles_per_frame']:g} cycles/frame (planner {h['predicted_cycles_per_frame']}, "
              f"{100 * h['prediction_error']:+.1f} %), latency {h['latency_cycles']} cycles = "
              f"{h['latency_us']:.2f} µs, {h['fps']:.1f} FPS at {h['clock_mhz']:g} MHz. Yosys `synth_xilinx` "
              f"({h['yosys_seconds']:g} s): {h['lut']} LUT, {h['ff']} FF, {h['bram36']:g} BRAM36, {h['dsp']} DSP. "
              f"Per-layer numbers: [hw/report.md](hw/report.md).", "",
              "![cycles per frame by layer](hw/cycles.png)", "", "![LUT and BRAM by layer](hw/resources.png)", ""]
    if doc["files"].get("training_curves"):
        lines += ["## Training curves of the model", "", f"From {doc['model']['curves_source']}.", "",
                  f"![training curves]({doc['files']['training_curves']})", ""]
    lines += ["## Stage times", "",
              "Wall seconds, and CPU seconds of this process and its children (Verilator's compiler, Yosys): "
              "on a machine shared with other jobs the wall time grows, the CPU time does not.", "",
              "| stage | wall (s) | CPU (s) |", "|---|---:|---:|"]
    lines += [f"| {k} | {v:.1f} | {doc['cpu_seconds'].get(k, 0):.1f} |" for k, v in doc["timings"].items()]
    lines += ["", "## Commands", "", "This run:", "", "```", run["command"], "```", "",
              "Each stage on its own (also in `commands.sh`):", "", "```"] + doc["commands"] + ["```", "",
              "## Versions", "", "| tool | version |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in doc["versions"].items()]
    lines += ["", "## Files", "", "| file | what |", "|---|---|"]
    lines += [f"| `{v}` | {k.replace('_', ' ')} |" for k, v in doc["files"].items() if v]
    return "\n".join(lines) + "\n"


def write_report(out: Path, doc: dict) -> None:
    from model.atomic import atomic_write_text

    atomic_write_text(out / "report.json", json.dumps(doc, indent=1) + "\n")
    atomic_write_text(out / "report.md", render_markdown(json.loads((out / "report.json").read_text())))
