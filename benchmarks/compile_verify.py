"""Compile and golden-model speed on this machine.

    python benchmarks/compile_verify.py [--config configs/student-flagship.yaml] [--images 256] [--data ZIP]

Times export (Brevitas -> QONNX) and lowering (QONNX -> IR) of a student (random
weights, randomized BatchNorm), then images/s of PyTorch, QONNX execution and the two
golden models on the same images, and checks they agree (verify.compare's table).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from build_flow.export import export_qonnx_model
from build_flow.lower import lower
from build_flow.models import select_model
from verify.compare import format_table, load_images, run_stages


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="configs/student-flagship.yaml")
    ap.add_argument("--peer")
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--data", default="../shared/datasets/cifar10-jpeg/train.zip")
    args = ap.parse_args()
    sel = select_model(config=None if args.peer else args.config, peer=args.peer, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        qonnx_model = export_qonnx_model(sel.model, Path(tmp) / "model.onnx", input_shape=(1, *sel.input_shape))
        t_export = time.perf_counter() - t0
        t0 = time.perf_counter()
        graph = lower(qonnx_model)
        t_lower = time.perf_counter() - t0
    print(f"{sel.name}: export {t_export:.2f} s, lower {t_lower:.2f} s ({len(graph.layers)} IR layers)")
    images, what = load_images(args.data if Path(args.data).exists() else None, sel.input_shape, args.images, 0)
    print(f"images: {what}")
    results = run_stages(sel.model, qonnx_model, graph, images)
    print(format_table(results))
    speed = {r.stage: r.images / r.seconds for r in results}
    ort, npy = speed["IR onnxruntime"], speed["IR numpy (golden)"]
    print(f"onnxruntime golden model: {ort:.0f} img/s, {ort / npy:.1f}x the numpy one")


if __name__ == "__main__":
    main()
