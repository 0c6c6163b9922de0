"""Bit-exact check of one model: PyTorch = QONNX = IR numpy = IR onnxruntime on the same images
(verify/compare.py: the class scores and every quantizer's integers inside the network).

    python -m build_flow.verify_model (--ckpt C | --config Y | --peer NAME) [--data D] [--images N] [--seed S]

Prints one table (stage, images, mismatches, max difference, time); exits 1 on any mismatch.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from model.errors import run_cli
from verify.compare import format_table, load_images

from .options import add_model_args, model_args
from .pipeline import ModelChoice, compare_stage, compile_stage


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m build_flow.verify_model", description=__doc__.split("\n\n")[0])
    add_model_args(ap)
    ap.add_argument("--data", help="real images (cifar-10-batches-py, ImageFolder or zip)")
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--out", help="keep the QONNX model and IR here (default: a temp folder)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        t0 = time.perf_counter()
        sel, qonnx_model, graph = compile_stage(ModelChoice(*model_args(args)), out)
        print(f"{sel.name}: exported and lowered in {time.perf_counter() - t0:.1f} s "
              f"({len(graph.layers)} IR layers)")
        images, what = load_images(args.data, sel.input_shape, args.images, args.seed)
        print(f"images: {what}")
        results = compare_stage(sel, qonnx_model, graph, images)
    print(format_table(results))
    bad = sum(r.mismatches for r in results)
    print("bit-exact: every stage agrees on every image" if bad == 0 else f"MISMATCH in {bad} image-stages")
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    run_cli(main)
