"""The hardware report of a build folder: report.md with per-layer cycles and resources, and
two bar charts (cycles.png, resources.png), from design.json, rtlsim.json and synth.json.

A measurement is shown only when it was made on the RTL now in the folder (its design_hash
matches), so a report never mixes a new design with an old simulation.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from model.atomic import atomic_write  # noqa: E402


def design_hash(out) -> str:
    h = hashlib.sha256()
    rtl = Path(out) / "rtl"
    for f in sorted(rtl.rglob("*")):
        if f.is_file():
            h.update(f.relative_to(rtl).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _load_current(out: Path, name: str, current: str) -> dict | None:
    path = out / name
    if not path.is_file():
        return None
    doc = json.loads(path.read_text())
    return doc if doc.get("design_hash") == current else None


def write_report(out) -> Path:
    out = Path(out)
    design = json.loads((out / "design.json").read_text())
    current = design_hash(out)
    sim = _load_current(out, "rtlsim.json", current)
    syn = _load_current(out, "synth.json", current)
    pnr = _load_current(out, "pnr.json", current)
    bit = _load_current(out, "bitstream/bitstream.json", current)
    pred = design["predicted"]
    names = [l["name"] for l in design["layers"]]
    clock = design["clock_mhz"]
    _cycles_chart(out / "cycles.png", names, pred["cycles"], sim, clock)
    _resources_chart(out / "resources.png", names, pred["resources"], syn)

    lines = [f"# Hardware report: {out}", "",
             f"Clock {clock:g} MHz. Planner: {pred['frame_cycles']} cycles/frame "
             f"({clock * 1e6 / pred['frame_cycles']:.0f} FPS), bottleneck `{pred['bottleneck']}`.", ""]
    if sim:
        lines += [f"RTL simulation (Verilator): {sim['images']} images ({sim['image_source']}), random stalls "
                  f"p={sim['stall']}: **{sim['mismatches']} mismatches** against the IR golden model. "
                  f"Measured {sim['cycles_per_frame']:.0f} cycles/frame ({100 * sim['prediction_error']:+.1f} % vs the "
                  f"planner), latency {sim['latency_cycles']} cycles, **{sim['fps']:.0f} FPS** at {clock:g} MHz.", ""]
    else:
        lines += ["RTL simulation: not run on this design (`make rtlsim`).", ""]
    if syn:
        t = syn["total"]
        lines += [f"Yosys `synth_xilinx` ({syn['tool']}): **{t['lut']} LUT**, {t['ff']} FF, **{t['bram36']} BRAM36**, "
                  f"{t['dsp']} DSP (Pynq-Z2: {syn['budget']['lut']} LUT, {syn['budget']['bram36']} BRAM36: "
                  f"{'fits' if syn['fits_pynq_z2'] else 'does not fit'}). FIFOs, width converters and output "
                  f"forks: {sum(g['lut'] for g in syn['glue'].values())} LUT, "
                  f"{sum(g['bram36'] for g in syn['glue'].values())} BRAM36.", ""]
    else:
        lines += ["Synthesis: not run on this design (`make synth`).", ""]
    if pnr:
        u, b = pnr["used"], pnr["budget"]
        reached = min(pnr["fmax_mhz"] or 0.0, pnr["target_mhz"])
        crit = next(iter(pnr["critical"].values()), None) if pnr["critical"] else None
        lines += [f"Place and route (nextpnr-ecp5, {pnr['part']}): **Fmax {pnr['fmax_mhz']} MHz** "
                  f"({'meets' if pnr['timing_met'] else 'fails'} {pnr['target_mhz']:g} MHz), {u['lut4']}/{b['lut4']} "
                  f"LUT4, {u['ff']}/{b['ff']} FF, {u['dp16kd']}/{b['dp16kd']} DP16KD; "
                  f"**{reached * 1e6 / pred['frame_cycles']:.0f} FPS at {reached:g} MHz**"
                  + (f"; critical path {crit['delay_ns']} ns, `{crit['source']}` -> `{crit['sink']}`" if crit else "")
                  + f" (yosys {pnr['yosys_s']:.0f} s, nextpnr {pnr['nextpnr_s']:.0f} s).", ""]
    else:
        lines += ["Place and route: not run on this design (`make pnr`).", ""]
    if bit:
        u = bit["used"]
        lines += [f"Bitstream ({bit['board']}, open tools): `bitstream/{bit['bit']}`, PLL **{bit['pll_mhz']:g} MHz** "
                  f"(Fmax {bit['fmax_mhz']} MHz after routing), {u['lut4']} LUT4, {u['ff']} FF, {u['dp16kd']} DP16KD "
                  f"with the UART bridge; the accelerator at that clock: **{bit['accelerator_fps']:.0f} FPS**; the "
                  f"serial link at {bit['baud']} baud carries {bit['link_fps']:.0f} frames/s. Steps (s): "
                  + ", ".join(f"{k[:-2]} {v:g}" for k, v in bit["steps_s"].items()) + ".", ""]
    pipe = pred.get("pipeline") or {}
    if pipe:
        lines += ["Matrix-unit pipeline (hw/planner.py `mvtu_pipeline`): " + "; ".join(
            f"{n} SIMD {p['simd']}: {p['tree_levels_total']} adder levels, "
            f"{p['logic_levels_per_cycle']} levels/cycle, +{p['extra_latency']} cycles"
            + (f", weights in logic banks of {p['weight_logic_bank']} words" if p.get("weight_logic_bank") else "")
            for n, p in pipe.items()) + ".", ""]
    lines += ["![cycles per layer](cycles.png)", "", "![resources per layer](resources.png)", "",
              "| layer | op | PE | SIMD | cycles/frame | LUT (planner) | LUT (Yosys) | FF (Yosys) | BRAM36 (Yosys) |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for l in design["layers"]:
        s = (syn or {}).get("layers", {}).get(l["name"], {})
        lines.append(f"| {l['name']} | {l['op']} | {l['pe']} | {l['simd']} | {pred['cycles'][l['name']]} | "
                     f"{pred['resources'][l['name']]['lut']} | {s.get('lut', '')} | {s.get('ff', '')} | "
                     f"{s.get('bram36', '')} |")
    lines += ["", f"FIFOs: {len(design['fifos'])} ({sum(f['bits'] for f in design['fifos'])} bits); "
              f"width converters: {len(design['dwcs'])}.", ""]
    path = out / "report.md"
    atomic_write(path, lambda tmp: Path(tmp).write_text("\n".join(lines)))
    return path


def _cycles_chart(path: Path, names, cycles: dict, sim, clock: float) -> None:
    fig, ax = plt.subplots(figsize=(max(8, len(names) * 0.35), 4.5))
    values = [cycles[n] for n in names]
    ax.bar(range(len(names)), values, color="tab:blue", label="planner: cycles per frame")
    if sim:
        ax.axhline(sim["cycles_per_frame"], color="tab:red", ls="--",
                   label=f"measured frame interval ({sim['cycles_per_frame']:.0f} cycles = {sim['fps']:.0f} FPS "
                         f"at {clock:g} MHz)")
    ax.set_xticks(range(len(names)), names, rotation=70, ha="right", fontsize=7)
    ax.set_xlabel("layer (IR name, streaming order)")
    ax.set_ylabel("cycles per frame")
    ax.set_title("Cycles per frame by layer (the largest sets the frame rate)")
    ax.set_ylim(0, max(values + [sim["cycles_per_frame"] if sim else 0]) * 1.3)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)


def _resources_chart(path: Path, names, predicted: dict, syn) -> None:
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(max(8, len(names) * 0.35), 7), sharex=True)
    x = range(len(names))
    width = 0.4
    ax1.bar([i - width / 2 for i in x], [predicted[n]["lut"] for n in names], width, label="planner estimate")
    ax2.bar([i - width / 2 for i in x], [predicted[n]["bram36"] for n in names], width, label="planner estimate")
    if syn:
        layers = syn["layers"]
        ax1.bar([i + width / 2 for i in x], [layers.get(n, {}).get("lut", 0) for n in names], width,
                label="Yosys synth_xilinx")
        ax2.bar([i + width / 2 for i in x], [layers.get(n, {}).get("bram36", 0) for n in names], width,
                label="Yosys synth_xilinx")
    ax1.set_ylabel("LUTs")
    ax1.set_title("LUTs by layer")
    ax2.set_ylabel("BRAM36 (RAMB18 = 0.5)")
    ax2.set_title("Block RAM by layer")
    ax2.set_xticks(list(x), names, rotation=70, ha="right", fontsize=7)
    ax2.set_xlabel("layer (IR name, streaming order)")
    for ax in (ax1, ax2):
        ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
