"""The whole open flow in one command: a trained student -> verified, simulated, synthesized hardware.

    python -m build_flow.demo [--ckpt C | --config Y] [--data D] [--out build/demo] [--images N]
                              [--fps F | --folding FILE] [--clock-mhz 100] [--val-images N]

Stages (each printed with its name and the elapsed time; tqdm bars on the long ones):

 1. tools + data  the data: --data (DATA=) if given, else data/cifar-10-batches-py, else the
                  shared training zip, else the official release is downloaded into data/
                  (md5-checked); offline and without data it stops here, with one line saying how
                  to pass DATA=, before any long work. Then: verilator and yosys present.
 2. model         --ckpt, else the committed models/student-flagship.pt, else a brief training of
                  --config (default configs/student-small.yaml) into OUT/train
 3. accuracy      top-1 on the checkpoint's validation split (and on the test split when DATA has one)
 4. compile + RTL QONNX export -> integer IR -> folding plan -> RTL (hw.flow.build_rtl)
 5. verify        PyTorch = QONNX = IR numpy = IR onnxruntime on N real images (verify.compare)
 6. rtlsim        Verilator: the same N images through the RTL with random stalls, every output
                  integer compared with the IR golden model; cycles/frame, latency, FPS
 7. synth         Yosys synth_xilinx: LUT/FF/BRAM per layer
 8. report        OUT/report.json (every number), OUT/report.md generated from it, the charts,
                  the training curves, commands.sh and the versions of every tool

Exit status 0 when every stage agrees on every image, 1 on any mismatch, 2 on a user error.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from model.errors import DataError, FlowError, run_cli

COMMITTED_CKPT = "models/student-flagship.pt"  # the GPU-trained flagship (75.52 % validation)
DEFAULT_CONFIG = "configs/student-small.yaml"
DATA_DIR = "data"                                      # where `make data` puts the official release
SHARED_ZIP = "../shared/datasets/cifar10-jpeg/train.zip"
DEFAULT_IMAGES = 64        # real images through every stage, RTL simulation included
DEFAULT_FPS = 2000.0       # the planner target: 43,008 cycles/frame for the flagship (2,325 FPS at 100 MHz)
BRIEF_TRAINING = ["data.limit_per_class=1000", "data.val_size=1000"]  # a few minutes on 2 cores
STAGES = 8


# ------------------------------------------------------------------------------- progress

def _fmt_s(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m} min {s:02d} s" if m else f"{seconds:.1f} s"


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (Verilator's compiler, Yosys)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class Progress:
    """Numbered stage headers with the elapsed time, and each stage's wall and CPU seconds (on a
    shared machine the two differ: the CPU seconds are what the stage costs)."""

    def __init__(self, total: int = STAGES):
        self.total, self.i, self.t0, self.cpu0 = total, 0, time.perf_counter(), cpu_seconds()
        self.seconds: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    @contextlib.contextmanager
    def stage(self, key: str, title: str):
        self.i += 1
        print(f"\n[{self.i}/{self.total}] {title}   (elapsed {_fmt_s(self.elapsed())})", flush=True)
        t, c = time.perf_counter(), cpu_seconds()
        yield
        self.seconds[key] = round(time.perf_counter() - t, 1)
        self.cpu[key] = round(cpu_seconds() - c, 1)
        print(f"[{self.i}/{self.total}] {key}: done in {_fmt_s(self.seconds[key])} "
              f"(CPU {_fmt_s(self.cpu[key])})", flush=True)


@contextlib.contextmanager
def ticking(desc: str):
    """A live elapsed-time bar around a long call with no progress of its own (Verilator, Yosys);
    what the call prints is held back and shown after the bar."""
    from tqdm import tqdm

    bar = tqdm(desc=desc, bar_format="{desc}: {elapsed} elapsed", disable=None, file=sys.stderr)
    stop = threading.Event()

    def tick():
        while not stop.wait(1.0):
            bar.refresh()

    th = threading.Thread(target=tick, daemon=True)
    th.start()
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            yield
    finally:
        stop.set()
        th.join()
        bar.close()
        sys.stdout.write(buf.getvalue())
        sys.stdout.flush()


# ----------------------------------------------------------------------------- stage 1

def check_tools() -> dict[str, str]:
    """verilator and yosys versions; one error line when either is missing."""
    missing = [t for t in ("verilator", "yosys") if shutil.which(t) is None]
    if missing:
        raise FlowError(f"{' and '.join(missing)} not found: run `make tools` (or apt-get install verilator yosys)")
    return {"verilator": _run_version(["verilator", "--version"]), "yosys": _run_version(["yosys", "-V"])}


def resolve_data(data: str | None) -> tuple[str, str]:
    """(path, how it was found), in the order of the Makefile's DATA default; downloads as a last resort."""
    from model import download

    if data:
        if not Path(data).expanduser().exists():
            raise DataError(f"DATA={data}: no such file or directory (pass DATA=<cifar-10-batches-py folder, "
                            "ImageFolder or zip>)")
        return data, "given (DATA=)"
    release = Path(DATA_DIR) / download.RELEASE_DIR
    if download._is_complete(release):
        return str(release), f"the default data folder ({release})"
    if Path(SHARED_ZIP).is_file():
        return SHARED_ZIP, f"the shared training zip ({SHARED_ZIP})"
    print(f"no data at {release} or {SHARED_ZIP}: downloading the official CIFAR-10 release into {DATA_DIR}/ "
          "(163 MB, md5-checked)", flush=True)
    try:
        path = download.ensure_cifar10(DATA_DIR)
    except DataError as exc:
        raise DataError(f"no CIFAR-10 data (nothing at {release} or {SHARED_ZIP}) and {exc}; "
                        "e.g. make demo DATA=path/to/cifar-10-batches-py") from None
    return str(path), f"downloaded into {DATA_DIR}/ (official release, md5-checked)"


# ----------------------------------------------------------------------------- stage 2

def pick_model(args, data: str, out: Path) -> tuple[Path, str]:
    """(checkpoint, how it was chosen)."""
    if args.ckpt:
        return Path(args.ckpt), "given (--ckpt)"
    if not args.config and Path(COMMITTED_CKPT).is_file():
        return Path(COMMITTED_CKPT), "the committed reference model"
    from model.train import main as train_main

    config = args.config or DEFAULT_CONFIG
    sets = args.train_set if args.train_set is not None else BRIEF_TRAINING
    argv = ["--config", config, "--data", data, "--out", str(out / "train"), "--epochs", str(args.train_epochs)]
    for s in sets:
        argv += ["--set", s]
    print(f"training {config} briefly: python -m model.train {shlex.join(argv)}", flush=True)
    train_main(argv)
    args.train_command = "python -m model.train " + shlex.join(argv)
    return out / "train" / "checkpoint.pt", f"trained by this run ({args.train_epochs} epochs of {config})"


def training_curves(ckpt: Path, state: dict, dest: Path) -> str:
    """Copy the model's training curves into the run folder; redrawn from the checkpoint's
    recorded metrics when no PNG sits beside it. Returns where they came from."""
    from model.metrics import plot_curves

    for cand in (ckpt.with_suffix(".curves.png"), ckpt.parent / "curves.png"):
        if cand.is_file():
            shutil.copyfile(cand, dest)
            return str(cand)
    rows = state.get("metrics") or []
    if rows and all(k in rows[0] for k in ("train_loss", "val_loss", "train_acc", "val_acc")):
        plot_curves(rows, dest, title=f"training curves ({ckpt})")
        return f"redrawn from the metrics recorded in {ckpt}"
    return ""


# ----------------------------------------------------------------------------- stage 3

def accuracy(model, cfg, data: str, val_images: int | None) -> dict:
    """Top-1 on the validation split (the one the checkpoint was trained with) and, when DATA
    holds one, on the test split."""
    import torch
    from tqdm import tqdm

    from model.data import load_cifar10
    from model.errors import ConfigError
    from model.evaluate import evaluate, split_images

    def top1(images, labels, desc):
        correct, chunk = 0, 500
        for i in tqdm(range(0, len(labels), chunk), desc=desc, unit="batch", disable=None):
            _, acc = evaluate(model, images[i:i + chunk], labels[i:i + chunk], chunk)
            correct += round(acc * len(labels[i:i + chunk]))
        return {"top1": correct / len(labels), "correct": correct, "images": len(labels)}

    out = {}
    try:
        images, labels, what = split_images(cfg.data, data, "val")
        if val_images:
            g = torch.Generator().manual_seed(0)
            keep = torch.randperm(len(labels), generator=g)[:val_images].sort().values
            images, labels = images[keep], labels[keep]
            what += f" ({len(labels)} of {cfg.data.val_size} images, seeded subset)"
        out["val"] = {**top1(images, labels, "validation"), "source": what}
        print(f"validation top-1 {100 * out['val']['top1']:.2f} % of {len(labels)} images ({what})")
    except ConfigError as exc:
        out["val"] = {"skipped": str(exc)}
        print(f"validation: skipped ({exc})")
    try:
        ds = load_cifar10(data, "test")
        out["test"] = {**top1(ds.images, ds.labels, "test"), "source": f"test split of {ds.source}"}
        print(f"test top-1 {100 * out['test']['top1']:.2f} % of {len(ds.labels)} images")
    except DataError as exc:
        out["test"] = {"skipped": str(exc)}
        print(f"test: skipped ({exc})")
    return out


# ----------------------------------------------------------------------------- stage 5

def verify_stages(sel, qonnx_model, graph, images, chunk: int = 16):
    """verify.compare.run_stages over `images` in small chunks, with a progress bar."""
    from verify.compare import run_stages

    return run_stages(sel.model, qonnx_model, graph, images, chunk=chunk, progress=True)


# ---------------------------------------------------------------------- provenance

def _run_version(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "not found"


def versions(tools: dict) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("torch", "brevitas", "qonnx", "onnx", "onnxruntime", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    out.update(tools)
    commit = _run_version(["git", "rev-parse", "HEAD"])
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                           text=True).stdout.strip() if commit != "not found" else ""
    out["git_commit"] = commit + (" (with uncommitted changes)" if dirty else "")
    return out


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"host": platform.node(), "os": platform.platform(), "cpu": cpu,
            "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()}


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --------------------------------------------------------------------------- report

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
             f"({run['machine']['cpus']} CPUs). Wall time {_fmt_s(run['wall_s'])}.", "", verdict, "",
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


# ----------------------------------------------------------------------------- main

def _args(argv):
    ap = argparse.ArgumentParser(prog="python -m build_flow.demo", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 2)[2])
    ap.add_argument("--ckpt", help=f"the checkpoint (default: {COMMITTED_CKPT} when present, else train --config)")
    ap.add_argument("--config", help=f"train this config briefly instead (default when no checkpoint: {DEFAULT_CONFIG})")
    ap.add_argument("--train-epochs", type=int, default=2, help="epochs of that brief training (default 2)")
    ap.add_argument("--train-set", action="append", metavar="KEY=VALUE",
                    help=f"config overrides of that brief training (default: {' '.join(BRIEF_TRAINING)})")
    ap.add_argument("--data", help="CIFAR-10: cifar-10-batches-py folder, ImageFolder or zip (default: see above)")
    ap.add_argument("--out", default="build/demo", help="the run folder (default build/demo)")
    ap.add_argument("--images", type=int, default=DEFAULT_IMAGES,
                    help=f"real images through every stage, RTL simulation included (default {DEFAULT_IMAGES})")
    ap.add_argument("--val-images", type=int, help="evaluate on a seeded subset of the validation split")
    ap.add_argument("--fps", type=float, help=f"target frames/s of the folding plan (default {DEFAULT_FPS:g})")
    ap.add_argument("--folding", help="a folding file instead of the plan")
    ap.add_argument("--clock-mhz", type=float, default=100.0)
    ap.add_argument("--stall", type=float, default=0.2, help="stall probability per cycle in the RTL simulation")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.ckpt and args.config:
        ap.error("give --ckpt or --config, not both")
    if args.images < 1:
        ap.error("--images must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    command = "python -m build_flow.demo " + shlex.join(sys.argv[1:] if argv is None else argv)
    out = Path(args.out)
    hw = out / "hw"
    p = Progress()
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    with p.stage("tools + data", "tools and data"):
        data, data_how = resolve_data(args.data)
        tools = check_tools()
        print(f"verilator: {tools['verilator']}; yosys: {tools['yosys']}")
        print(f"data: {data} ({data_how})")
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("report.md", "report.json"):
        (out / stale).unlink(missing_ok=True)

    with p.stage("model", "model"):
        from model.checkpoint import load_trained_model
        args.train_command = None
        ckpt, how = pick_model(args, data, out)
        model, cfg, state = load_trained_model(ckpt)
        print(f"{cfg.name}: {ckpt} ({how}), epoch {state['epoch']}, phase {state['phase']}")
        if out.resolve() not in ckpt.resolve().parents:
            shutil.copyfile(ckpt, out / "model.pt")
        import yaml
        (out / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        curves_from = training_curves(ckpt, state, out / "training_curves.png")
        macs = None
        if cfg.model.arch == "bireal":
            from model.student import complexity
            macs = complexity(model).binary_macs

    with p.stage("accuracy", "accuracy on the validation split (and the test split when DATA has one)"):
        acc = accuracy(model, cfg, data, args.val_images)

    ns = argparse.Namespace(ckpt=str(ckpt), config=None, peer=None, seed=args.seed, out=str(hw),
                            fps=None if args.folding else (args.fps or DEFAULT_FPS), lut_budget=None,
                            folding=args.folding, clock_mhz=args.clock_mhz, images=args.images, data=data,
                            stall=args.stall)
    with p.stage("compile + RTL", "QONNX export -> integer IR -> folding plan -> RTL"):
        from hw.flow import build_rtl
        sel, qonnx_model, graph, folding, design = build_rtl(ns)
        (out / "rtl_files.txt").write_text("\n".join(os.path.relpath(s, out) for s in design["sources"]) + "\n")

    with p.stage("verify", f"bit-exact checks: PyTorch = QONNX = IR numpy = IR onnxruntime on {args.images} images"):
        from verify.compare import format_table, load_images
        images, what = load_images(data, sel.input_shape, args.images, args.seed)
        print(f"images: {what}")
        results = verify_stages(sel, qonnx_model, graph, images)
        print(format_table(results))

    with p.stage("rtlsim", f"Verilator: {args.images} images through the RTL, every output integer vs the golden model"):
        from hw.flow import run_rtlsim
        with ticking("verilator build + simulation"):
            run_rtlsim(ns, sel, graph, design)
        sim = json.loads((hw / "rtlsim.json").read_text())

    with p.stage("synth", "Yosys synth_xilinx: LUT / FF / BRAM per layer"):
        from hw.flow import run_synth
        with ticking("yosys synth_xilinx"):
            run_synth(ns, design)
        syn = json.loads((hw / "synth.json").read_text())

    with p.stage("report", "report"):
        from hw.report import write_report as write_hw_report
        write_hw_report(hw)
        stages = [{"stage": r.stage, "images": r.images, "mismatches": r.mismatches, "max_diff": r.max_diff,
                   "seconds": round(r.seconds, 2), "note": r.note} for r in results]
        stages.append({"stage": "RTL (Verilator)", "images": sim["images"], "mismatches": sim["mismatches"],
                       "max_diff": None, "seconds": sim["sim_s"],
                       "note": f"every output integer vs IR numpy; random stalls p={sim['stall']}; "
                               f"labels equal golden: {sim['labels_equal_golden']}"})
        tot = syn["total"]
        pred = design["predicted"]
        hardware = {"clock_mhz": folding.clock_mhz, "target_fps": folding.target_fps or 0,
                    "folding": os.path.relpath(hw / "folding.yaml", out), "layers": len(design["layers"]),
                    "bottleneck": pred["bottleneck"], "cycles_per_frame": sim["cycles_per_frame"],
                    "predicted_cycles_per_frame": pred["frame_cycles"], "prediction_error": sim["prediction_error"],
                    "latency_cycles": sim["latency_cycles"],
                    "latency_us": round(sim["latency_cycles"] / folding.clock_mhz, 3), "fps": sim["fps"],
                    "lut": tot["lut"], "ff": tot["ff"], "bram36": tot["bram36"], "dsp": tot["dsp"],
                    "fits_pynq_z2": syn["fits_pynq_z2"], "yosys_seconds": syn["seconds"],
                    "verilator_build_s": sim["verilator_build_s"], "design_hash": sim["design_hash"]}
        data_arg = shlex.quote(data)
        model_arg = f"--ckpt {shlex.quote(str(ckpt))}"
        hw_args = f"{model_arg} --folding {shlex.quote(str(hw / 'folding.yaml'))} --out {shlex.quote(str(hw))}"
        commands = ([args.train_command] if args.train_command else []) + [
            f"python -m model.evaluate {model_arg} --data {data_arg} --split val",
            f"python -m verify.compare {model_arg} --data {data_arg} --images {args.images} --seed {args.seed}",
            f"python -m hw.flow rtlsim {hw_args} --clock-mhz {folding.clock_mhz:g} --images {args.images} "
            f"--data {data_arg} --seed {args.seed} --stall {args.stall:g}",
            f"python -m hw.flow synth {hw_args} --clock-mhz {folding.clock_mhz:g}"]
        (out / "commands.sh").write_text("#!/bin/sh\n# what produced this run folder (from the repository root)\n"
                                         f"# the whole run:\n#   {command}\nset -e\n" + "\n".join(commands) + "\n")
        files = {"report_json": "report.json", "report_md": "report.md", "commands": "commands.sh",
                 "model_config": "config.yaml",
                 "checkpoint": "model.pt" if (out / "model.pt").is_file() else os.path.relpath(ckpt, out),
                 "training_curves": "training_curves.png" if curves_from else "",
                 "qonnx_model": "hw/model.onnx", "integer_ir": "hw/ir", "folding": "hw/folding.yaml",
                 "rtl_file_list": "rtl_files.txt", "rtl": "hw/rtl", "design": "hw/design.json",
                 "rtlsim_result": "hw/rtlsim.json", "synth_result": "hw/synth.json", "yosys_log": "hw/yosys.log",
                 "hardware_report": "hw/report.md", "cycles_chart": "hw/cycles.png",
                 "resources_chart": "hw/resources.png"}
        ok = all(s["mismatches"] == 0 for s in stages)
        doc = {"ok": ok,
               "run": {"folder": str(out), "date": date, "command": command, "machine": machine(),
                       "wall_s": round(p.elapsed(), 1), "cpu_s": round(cpu_seconds() - p.cpu0, 1)},
               "data": {"path": data, "how": data_how},
               "model": {"name": cfg.name, "checkpoint": str(ckpt), "how": how, "sha256": sha256(ckpt),
                         "epoch": state["epoch"], "phase": state["phase"], "binary_macs": macs,
                         "curves_source": curves_from},
               "accuracy": acc, "images": {"count": len(images), "source": what, "seed": args.seed},
               "stages": stages, "hardware": hardware, "timings": dict(p.seconds), "cpu_seconds": dict(p.cpu),
               "commands": commands,
               "versions": versions(tools), "files": files}
        doc["timings"]["report"] = doc["cpu_seconds"]["report"] = 0.0
        write_report(out, doc)

    doc["timings"]["report"], doc["cpu_seconds"]["report"] = p.seconds["report"], p.cpu["report"]
    doc["run"]["wall_s"] = round(p.elapsed(), 1)
    doc["run"]["cpu_s"] = round(cpu_seconds() - p.cpu0, 1)
    write_report(out, doc)
    print(f"\n{'=' * 72}\nbnn-flow demo: {out}/report.md (numbers in {out}/report.json)\n{'=' * 72}")
    print(plain_table(summary_rows(doc)))
    if ok:
        print("\nbit-exact: PyTorch = QONNX = IR numpy = IR onnxruntime = RTL on every image")
        return 0
    bad = [f"{s['stage']} ({s['mismatches']})" for s in stages if s["mismatches"]]
    print(f"\nMISMATCH in: {', '.join(bad)}")
    return 1


if __name__ == "__main__":
    run_cli(main)
