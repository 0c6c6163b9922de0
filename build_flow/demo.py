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
 4. compile + RTL QONNX export -> integer IR -> folding plan -> RTL (build_flow.pipeline.build_rtl)
 5. verify        PyTorch = QONNX = IR numpy = IR onnxruntime on N real images (build_flow.verify_model)
 6. rtlsim        Verilator: the same N images through the RTL with random stalls, every output
                  integer compared with the IR golden model; cycles/frame, latency, FPS
 7. synth         Yosys synth_xilinx: LUT/FF/BRAM per layer
 8. report        OUT/report.json (every number), OUT/report.md generated from it, the charts,
                  the training curves, commands.sh and the versions of every tool

Exit status 0 when every stage agrees on every image, 1 on any mismatch, 2 on a user error.
"""
from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

from model.errors import DataError, FlowError, run_cli

from .demo_report import plain_table, summary_rows, write_report
from .options import DEMO_FPS, add_model_args
from .progress import Progress, cpu_seconds, ticking
from .provenance import machine, run_version, sha256, versions

COMMITTED_CKPT = "models/student-flagship.pt"  # the GPU-trained flagship (75.52 % validation)
DEFAULT_CONFIG = "configs/student-small.yaml"
DATA_DIR = "data"                                      # where `make data` puts the official release
SHARED_ZIP = "../shared/datasets/cifar10-jpeg/train.zip"
DEFAULT_IMAGES = 64        # real images through every stage, RTL simulation included
BRIEF_TRAINING = ["data.limit_per_class=1000", "data.val_size=1000"]  # a few minutes on 2 cores
STAGES = 8


# ----------------------------------------------------------------------------- stage 1

def check_tools() -> dict[str, str]:
    """verilator and yosys versions; one error line when either is missing."""
    missing = [t for t in ("verilator", "yosys") if shutil.which(t) is None]
    if missing:
        raise FlowError(f"{' and '.join(missing)} not found: run `make tools` (or apt-get install verilator yosys)")
    return {"verilator": run_version(["verilator", "--version"]), "yosys": run_version(["yosys", "-V"])}


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


# ----------------------------------------------------------------------------- main

def _args(argv):
    ap = argparse.ArgumentParser(prog="python -m build_flow.demo", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 2)[2])
    add_model_args(ap, peer=False,
                   ckpt_help=f"the checkpoint (default: {COMMITTED_CKPT} when present, else train --config)",
                   config_help=f"train this config briefly instead (default when no checkpoint: {DEFAULT_CONFIG})")
    ap.add_argument("--train-epochs", type=int, default=2, help="epochs of that brief training (default 2)")
    ap.add_argument("--train-set", action="append", metavar="KEY=VALUE",
                    help=f"config overrides of that brief training (default: {' '.join(BRIEF_TRAINING)})")
    ap.add_argument("--data", help="CIFAR-10: cifar-10-batches-py folder, ImageFolder or zip (default: see above)")
    ap.add_argument("--out", default="build/demo", help="the run folder (default build/demo)")
    ap.add_argument("--images", type=int, default=DEFAULT_IMAGES,
                    help=f"real images through every stage, RTL simulation included (default {DEFAULT_IMAGES})")
    ap.add_argument("--val-images", type=int, help="evaluate on a seeded subset of the validation split")
    ap.add_argument("--fps", type=float, help=f"target frames/s of the folding plan (default {DEMO_FPS:g})")
    ap.add_argument("--folding", help="a folding file instead of the plan")
    ap.add_argument("--clock-mhz", type=float, default=100.0)
    ap.add_argument("--stall", type=float, default=0.2, help="stall probability per cycle in the RTL simulation")
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
    p = Progress(STAGES)
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

    from .pipeline import ImageRequest, ModelChoice, PlanRequest, build_rtl, compare_stage, rtlsim_stage, synth_stage

    with p.stage("compile + RTL", "QONNX export -> integer IR -> folding plan -> RTL"):
        build = build_rtl(ModelChoice(ckpt=str(ckpt), seed=args.seed),
                          PlanRequest(fps=None if args.folding else (args.fps or DEMO_FPS), folding=args.folding,
                                      clock_mhz=args.clock_mhz), hw)
        sel, qonnx_model, graph, folding, design = build.sel, build.qonnx_model, build.graph, build.folding, build.design
        (out / "rtl_files.txt").write_text("\n".join(os.path.relpath(s, out) for s in design["sources"]) + "\n")

    with p.stage("verify", f"bit-exact checks: PyTorch = QONNX = IR numpy = IR onnxruntime on {args.images} images"):
        from verify.compare import format_table, load_images
        images, what = load_images(data, sel.input_shape, args.images, args.seed)
        print(f"images: {what}")
        results = compare_stage(sel, qonnx_model, graph, images, chunk=16, progress=True)
        print(format_table(results))

    with p.stage("rtlsim", f"Verilator: {args.images} images through the RTL, every output integer vs the golden model"):
        with ticking("verilator build + simulation"):
            sim = rtlsim_stage(build, ImageRequest(args.images, data, args.seed), args.stall)

    with p.stage("synth", "Yosys synth_xilinx: LUT / FF / BRAM per layer"):
        with ticking("yosys synth_xilinx"):
            syn = synth_stage(build)

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
            f"python -m build_flow.verify_model {model_arg} --data {data_arg} --images {args.images} --seed {args.seed}",
            f"python -m build_flow.rtl_flow rtlsim {hw_args} --clock-mhz {folding.clock_mhz:g} --images {args.images} "
            f"--data {data_arg} --seed {args.seed} --stall {args.stall:g}",
            f"python -m build_flow.rtl_flow synth {hw_args} --clock-mhz {folding.clock_mhz:g}"]
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
