"""Bit-exactness at scale: every stage on thousands of images, for every kind of model.

    python benchmarks/bit_exact.py [--images 2000] [--qonnx-images N] [--data ZIP] [--cases a,b,...] [--out results.json]

--qonnx-images runs QONNX execution (node by node, the slow stage) on the first N images only; PyTorch,
IR numpy and IR onnxruntime (its internal integer tensors compared with IR numpy's) run on all of them.

Cases (each: export, lower, then PyTorch = QONNX = IR numpy = IR onnxruntime on the same
images, verify.compare's checks, internal integers included):

  trained-small   the committed reference student (models/student-small.pt, 4-bit shortcut)
  trained-flagship   the GPU-trained flagship student (models/student-flagship.pt, 6-bit shortcut)
  brief-4, brief-8   small students trained for two short epochs here (4- and 8-bit shortcuts)
  random-4, random-8 the same students with random weights and randomized BatchNorm (negative γ)
  cnv_1w1a        brevitas_examples' CNV_1W1A, random weights and BatchNorm, real images
  tfc_1w1a        brevitas_examples' TFC_1W1A, random weights and BatchNorm, synthetic 28×28 images

Prints one table per case and a summary; exits 1 if any stage mismatches on any image.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from build_flow.compile import compile_model
from build_flow.models import Selected, briefly_trained_student, randomize_batchnorm, select_model
from model.student import BiRealStudent
from verify.compare import format_table, load_images, run_stages

CASES = ("trained-small", "trained-flagship", "brief-4", "brief-8", "random-4", "random-8", "cnv_1w1a", "tfc_1w1a")


def select(case: str, data: str, work: Path) -> Selected:
    if case == "trained-small":
        return select_model(ckpt="models/student-small.pt")
    if case == "trained-flagship":
        return select_model(ckpt="models/student-flagship.pt")
    if case.startswith("brief-"):
        return briefly_trained_student(int(case[6:]), data, work / case)
    if case.startswith("random-"):
        bits = int(case[7:])
        torch.manual_seed(bits)
        model = randomize_batchnorm(BiRealStudent((8, 16), (1, 2), shortcut_bits=bits), seed=bits).eval()
        return Selected(model, (3, 32, 32), case, "config")
    return select_model(peer=case, seed=1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--qonnx-images", type=int, help="QONNX execution on the first N images only (default: all)")
    ap.add_argument("--data", default="../shared/datasets/cifar10-jpeg/train.zip")
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--out", help="also write the figures as JSON here")
    args = ap.parse_args()
    summary = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in args.cases.split(","):
            sel = select(case, args.data, Path(tmp))
            t0 = time.perf_counter()
            qonnx_model, graph = compile_model(sel, Path(tmp) / f"{case}-compiled")
            t_compile = time.perf_counter() - t0
            images, what = load_images(args.data, sel.input_shape, args.images, seed=7)
            results = run_stages(sel.model, qonnx_model, graph, images, progress=True, qonnx_images=args.qonnx_images)
            print(f"\n== {case}: {what}; export + lower {t_compile:.1f} s, {len(graph.layers)} IR layers")
            print(format_table(results), flush=True)
            summary.append({"case": case, "images": what, "compile_s": round(t_compile, 2),
                            "stages": [{"stage": r.stage, "images": r.images, "mismatches": r.mismatches,
                                        "seconds": round(r.seconds, 2),
                                        "images_per_s": round(r.images / max(r.seconds, 1e-9), 1),
                                        "note": r.note} for r in results]})
    print("\ncase            images  mismatches (PyTorch, QONNX, IR numpy, IR onnxruntime)")
    for s in summary:
        print(f"{s['case']:15} {s['stages'][0]['images']:6d}  " + ", ".join(str(r["mismatches"]) for r in s["stages"]))
    if args.out:
        Path(args.out).write_text(json.dumps(summary, indent=1))
    return 0 if all(r["mismatches"] == 0 for s in summary for r in s["stages"]) else 1


if __name__ == "__main__":
    sys.exit(main())
